"""Webhook signatures: HMAC-SHA256 of the payload's canonical JSON with the webhook's secret.

The payload is stored as jsonb, which keeps neither key order nor spacing, so what is
signed and sent is the payload's canonical encoding (keys sorted, no spaces, UTF-8):
the bytes can be made again from the stored row and the signature checked against
them. The signature reads 'sha256=<hex digest>', as GitHub's X-Hub-Signature-256.
"""

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_PREFIX = "sha256="


def canonical_payload(payload: Any) -> bytes:
    """The bytes a webhook receives: JSON with sorted keys and no spaces, UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_payload(secret: str, payload: Any) -> str:
    """'sha256=' + the hex HMAC-SHA256 of canonical_payload(payload) keyed with `secret`."""
    digest = hmac.new(secret.encode(), canonical_payload(payload), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_PREFIX}{digest}"


def verify_signature(secret: str, body: bytes, signature: str) -> bool:
    """Whether `signature` signs the received `body` with `secret` (constant-time compare)."""
    expected = SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)
