"""Secrets at rest: encryption of stored secrets and hashing of API keys.

Encrypted columns (api_keys.key_encrypted, user_2fa.secret_encrypted and
backup_codes_encrypted) hold Fernet tokens (AES-128-CBC + HMAC-SHA256, from the
`cryptography` package) made with HZM_ENCRYPTION_KEY. The setting takes one or more
comma-separated keys: the first encrypts, all decrypt, so a key can be rotated by
putting the new one first and re-encrypting at leisure.

HZM_CONTEXT_KEY signs tenant contexts (hzm/db/context_tokens.py); the same way, the first
key signs and all verify.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
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
                'with `python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"` and put it first in HZM_ENCRYPTION_KEY '
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


# --- Tenant-context keys -----------------------------------------------------------------

CONTEXT_KEY_HELP = (
    'Generate one with `python -c "import secrets; print(secrets.token_urlsafe(32))"` and put '
    "it first in HZM_CONTEXT_KEY (environment or .env), keeping the old keys after it until "
    "every process signs with the new one; `migrate` copies the keys into the database."
)
# What the database stores and both sides sign with: a key of its own derived from each
# configured key, so the setting's text is used for nothing else.
CONTEXT_KEY_PURPOSE = b"hzm tenant context v1"
MIN_CONTEXT_KEY_BYTES = 32


@functools.lru_cache(maxsize=8)
def parse_context_keys(value: str) -> tuple[bytes, ...]:
    """The context-signing keys (derived, 32 bytes each) from HZM_CONTEXT_KEY's text.

    One or more comma-separated keys, url-safe base64 of at least 32 random bytes: the
    first signs, all verify. A missing or malformed key is a clear error.
    """
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise ImproperlyConfigured(
            "HZM_CONTEXT_KEY is not set: the database accepts a tenant context only with a "
            f"token signed by it (README: Security model). {CONTEXT_KEY_HELP}"
        )
    derived = []
    for position, key in enumerate(keys, start=1):
        raw = _urlsafe_b64decode(key)
        if raw is None or len(raw) < MIN_CONTEXT_KEY_BYTES:
            found = "not url-safe base64" if raw is None else f"{len(raw)} bytes"
            raise ImproperlyConfigured(
                f"HZM_CONTEXT_KEY: key {position} of {len(keys)} must be url-safe base64 of "
                f"at least {MIN_CONTEXT_KEY_BYTES} random bytes ({found}). {CONTEXT_KEY_HELP}"
            )
        derived.append(hmac.new(raw, CONTEXT_KEY_PURPOSE, hashlib.sha256).digest())
    if len(set(derived)) != len(derived):
        raise ImproperlyConfigured("HZM_CONTEXT_KEY names the same key twice")
    return tuple(derived)


def _urlsafe_b64decode(text: str) -> bytes | None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return None


def context_keys() -> tuple[bytes, ...]:
    """The keys of settings.HZM_CONTEXT_KEY, the first one signing."""
    return parse_context_keys(settings.HZM_CONTEXT_KEY)


# --- Sealed password hashes ---------------------------------------------------------------

SEAL_PREFIX = "s1."
SEAL_PURPOSE = b"password seal"


class SealError(Exception):
    """A sealed value that no configured context key opens."""


def seal_key(context_key: bytes) -> bytes:
    """The AES-256 key app.auth_login() seals with, derived as the database derives it."""
    return hmac.new(context_key, SEAL_PURPOSE, hashlib.sha256).digest()


def unseal_password_hash(sealed: str, keys: tuple[bytes, ...] | None = None) -> str:
    """The password hash app.auth_login() returned sealed: 's1.' + base64(iv || AES-CBC).

    Only the application holds the keys, so what the sign-in lookup hands the runtime
    role is of no use to SQL run as it. Every configured key is tried (the database seals
    with its first, which during a rotation may be this process's second).
    """
    if not sealed.startswith(SEAL_PREFIX):
        raise SealError("not a sealed value")
    try:
        raw = base64.b64decode(sealed[len(SEAL_PREFIX) :], validate=True)
    except binascii.Error as error:
        raise SealError("a sealed value that is not base64") from error
    iv, ciphertext = raw[:16], raw[16:]
    if len(iv) != 16 or not ciphertext or len(ciphertext) % 16:
        raise SealError("a sealed value of the wrong length")
    for key in keys if keys is not None else context_keys():
        decryptor = Cipher(algorithms.AES(seal_key(key)), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            text = (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
        except ValueError:
            continue  # another key's (wrong padding or not text)
        if text.isprintable():
            return text
    raise SealError("no key of HZM_CONTEXT_KEY opens it: the database's keys differ (run migrate)")
