"""Secrets at rest: encryption of stored secrets and hashing of API keys.

Encrypted columns (api_keys.key_encrypted, user_2fa.secret_encrypted and
backup_codes_encrypted) hold Fernet tokens (AES-128-CBC + HMAC-SHA256, from the
`cryptography` package) made with HZM_ENCRYPTION_KEY. The setting takes one or more
comma-separated keys: the first encrypts, all decrypt, so a key can be rotated by
putting the new one first and re-encrypting at leisure.
"""

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def parse_encryption_keys(value: str) -> MultiFernet:
    """Build the cipher from the setting's text; a missing or malformed key is a clear error."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise ImproperlyConfigured(
            "HZM_ENCRYPTION_KEY is not set: secrets (API keys, 2FA secrets) are stored "
            'encrypted with it. Generate one with `python -c "from cryptography.fernet '
            'import Fernet; print(Fernet.generate_key().decode())"` and set it in the '
            "environment or .env (./dev does this for a new checkout)."
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError) as error:
            raise ImproperlyConfigured(
                f"HZM_ENCRYPTION_KEY: key {position} of {len(keys)} is not a Fernet key "
                f"(32 url-safe base64-encoded bytes): {str(error).rstrip('.')}. Generate one "
                "with `python -c \"from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())\"` and put it first in HZM_ENCRYPTION_KEY "
                "(environment or .env), keeping the old keys after it if secrets were stored "
                "with them."
            ) from error
    return MultiFernet(fernets)


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


def encrypt(plaintext: str) -> str:
    return parse_encryption_keys(settings.HZM_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return parse_encryption_keys(settings.HZM_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise SecretDecryptionError(
            "a stored secret cannot be decrypted with any key in HZM_ENCRYPTION_KEY "
            "(was the key rotated without keeping the old one?)"
        ) from error


def hash_api_key(key: str) -> str:
    """SHA-256 of an API key. Keys carry 256 random bits, so a fast hash is safe here."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)
