"""Fixtures of the production-path tests: the README's deployment (deployment.py)."""

from tests.production.deployment import deployment  # noqa: F401
