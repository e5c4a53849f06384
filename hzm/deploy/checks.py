"""System checks of the deployment rules (registered by hzm.deploy's AppConfig)."""

import sys
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, register
from django.db.migrations.loader import MigrationLoader

from hzm.deploy.naming import migration_files, migration_name_problem


def project_migration_directories() -> dict[str, Path]:
    """app label -> migrations folder, for the project's own apps (not Django's, not PyPI's)."""
    base = Path(settings.BASE_DIR).resolve()
    installed = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}  # a .venv inside
    found = {}
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if not path.is_relative_to(base) or any(path.is_relative_to(p) for p in installed):
            continue
        module_name, _ = MigrationLoader.migrations_module(config.label)
        if module_name is None:
            continue
        directory = Path(config.path) / module_name.rpartition(".")[2]
        if directory.is_dir():
            found[config.label] = directory
    return found


@register("migrations")
def check_migration_names(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every migration file of the project is named <sequence>_<description>.py, no dates."""
    errors = []
    for label, directory in sorted(project_migration_directories().items()):
        for filename in migration_files(directory):
            problem = migration_name_problem(filename)
            if problem:
                errors.append(
                    Error(
                        f"migration {label}/{problem}",
                        hint="The seed's rule: a sequence, then a descriptive snake_case "
                        "name, no dates (docs/deployment.md).",
                        id="hzm_deploy.E001",
                    )
                )
    return errors
