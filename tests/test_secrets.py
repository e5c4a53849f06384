"""Secrets at rest: encrypted columns, API keys as prefix + hash, start-up checks."""

import base64
import datetime
import secrets as stdlib_secrets

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from core.models import ApiKey
from hzm import secrets
from tests.factories import ProjectFactory, UserTwoFactorFactory


class TestEncryptionKeySetting:
    def test_missing_key_is_a_clear_error(self):
        with pytest.raises(ImproperlyConfigured, match="HZM_ENCRYPTION_KEY is not set"):
            secrets.parse_encryption_keys("")

    def test_malformed_key_names_its_position(self):
        good = Fernet.generate_key().decode()
        with pytest.raises(ImproperlyConfigured, match="key 2 of 2 is not a Fernet key"):
            secrets.parse_encryption_keys(f"{good}, not-a-key")

    def test_rotation_old_tokens_still_decrypt_new_ones_use_the_first_key(self, settings):
        old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
        settings.HZM_ENCRYPTION_KEY = old
        token = secrets.encrypt("s3cret")
        settings.HZM_ENCRYPTION_KEY = f"{new},{old}"
        assert secrets.decrypt(token) == "s3cret"
        assert Fernet(new.encode()).decrypt(secrets.encrypt("x").encode()) == b"x"
        settings.HZM_ENCRYPTION_KEY = new
        with pytest.raises(secrets.SecretDecryptionError, match="cannot be decrypted"):
            secrets.decrypt(token)

    def test_settings_refuse_to_start_without_a_key(self):
        """A fresh interpreter loading the settings with no key fails at start-up."""
        import os
        import subprocess
        import sys

        env = {**os.environ, "HZM_ENCRYPTION_KEY": "", "DEBUG": "true"}
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django, os; "
                "os.environ['DJANGO_SETTINGS_MODULE'] = 'hzm.settings'; django.setup()",
            ],
            env=env,
            capture_output=True,
            text=True,
            cwd=secrets.settings.BASE_DIR,
        )
        # .env could provide a key; the environment's empty value wins (overwrite=False).
        assert result.returncode != 0
        assert "HZM_ENCRYPTION_KEY is not set" in result.stderr


class TestContextKeySetting:
    def test_missing_key_is_a_clear_error(self):
        with pytest.raises(ImproperlyConfigured, match="HZM_CONTEXT_KEY is not set"):
            secrets.parse_context_keys(" , ")

    @pytest.mark.parametrize(
        ("key", "found"),
        [
            ("c2hvcnQ", "5 bytes"),
            ("not base64!" * 4, "not url-safe base64"),
            ("A" * 40, "30 bytes"),
        ],
    )
    def test_malformed_key_names_its_position_and_the_fault(self, key, found):
        good = stdlib_secrets.token_urlsafe(32)
        with pytest.raises(ImproperlyConfigured, match=f"key 2 of 2 .*\\({found}\\)"):
            secrets.parse_context_keys(f"{good},{key}")

    def test_keys_are_derived_the_first_signs_and_the_same_key_twice_is_refused(self):
        first, second = stdlib_secrets.token_urlsafe(32), stdlib_secrets.token_urlsafe(48)
        keys = secrets.parse_context_keys(f"{first}, {second}")
        assert len(keys) == 2 and all(len(key) == 32 for key in keys)
        assert keys[0] == secrets.parse_context_keys(first)[0]
        assert base64.urlsafe_b64decode(first + "=") not in keys  # the setting is not used as is
        with pytest.raises(ImproperlyConfigured, match="the same key twice"):
            secrets.parse_context_keys(f"{first},{first}")


class TestSealedPasswordHashes:
    KEY = bytes(32)

    def seal(self, text: str, key: bytes, iv: bytes = bytes(range(16))) -> str:
        """What app.auth_login() returns, made here with the same primitives."""
        padder = padding.PKCS7(128).padder()
        data = padder.update(text.encode()) + padder.finalize()
        encryptor = Cipher(algorithms.AES(secrets.seal_key(key)), modes.CBC(iv)).encryptor()
        return "s1." + base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()

    def test_a_sealed_hash_opens_with_any_configured_key(self):
        sealed = self.seal("argon2$v=19$abc", self.KEY)
        assert secrets.unseal_password_hash(sealed, (self.KEY,)) == "argon2$v=19$abc"
        assert secrets.unseal_password_hash(sealed, (bytes([1]) * 32, self.KEY)) == (
            "argon2$v=19$abc"
        )

    @pytest.mark.parametrize(
        ("sealed", "message"),
        [
            ("argon2$v=19$abc", "not a sealed value"),
            ("s1.***", "not base64"),
            ("s1." + base64.b64encode(bytes(20)).decode(), "wrong length"),
        ],
    )
    def test_what_is_not_a_sealed_value_is_refused(self, sealed, message):
        with pytest.raises(secrets.SealError, match=message):
            secrets.unseal_password_hash(sealed, (self.KEY,))

    def test_a_value_sealed_with_another_key_does_not_open(self):
        sealed = self.seal("argon2$v=19$abc", bytes([9]) * 32)
        with pytest.raises(secrets.SealError, match="no key of HZM_CONTEXT_KEY opens it"):
            secrets.unseal_password_hash(sealed, (self.KEY,))


@pytest.mark.django_db
class TestApiKeys:
    def test_issue_stores_prefix_hash_and_ciphertext_never_the_key(self):
        project = ProjectFactory()
        api_key, plaintext = ApiKey.objects.issue(
            tenant=project.tenant, user=project.user, project=project, name="ci"
        )
        assert plaintext.startswith(api_key.key_prefix + "_")
        assert len(plaintext) > 40
        with connection.cursor() as cursor:
            cursor.execute(
                'SELECT row_to_json(k)::text FROM "core"."api_keys" k WHERE id = %s', [api_key.pk]
            )
            stored_row = cursor.fetchone()[0]
        assert plaintext not in stored_row
        assert plaintext.rpartition("_")[2] not in stored_row
        assert api_key.key_hash == secrets.hash_api_key(plaintext)
        assert secrets.decrypt(api_key.key_encrypted) == plaintext

    def test_verify_accepts_the_key_and_refuses_anything_else(self):
        project = ProjectFactory()
        api_key, plaintext = ApiKey.objects.issue(
            tenant=project.tenant, user=project.user, name="ci"
        )
        assert ApiKey.objects.verify(plaintext) == api_key
        # Secrets are url-safe base64 and may contain '_' themselves.
        api_key.key_hash = secrets.hash_api_key(f"{api_key.key_prefix}_a_b")
        api_key.save()
        assert ApiKey.objects.verify(f"{api_key.key_prefix}_a_b") == api_key
        assert (
            ApiKey.objects.verify(plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
        )
        assert ApiKey.objects.verify("garbage") is None
        assert ApiKey.objects.verify(api_key.key_prefix + "_") is None

    def test_revoked_or_expired_keys_do_not_verify(self):
        from django.utils import timezone

        project = ProjectFactory()
        _, revoked_key = ApiKey.objects.issue(
            tenant=project.tenant, user=project.user, name="a", revoked_at=timezone.now()
        )
        _, expired_key = ApiKey.objects.issue(
            tenant=project.tenant,
            user=project.user,
            name="b",
            expires_at=timezone.now() - datetime.timedelta(seconds=1),
        )
        _, inactive_key = ApiKey.objects.issue(
            tenant=project.tenant, user=project.user, name="c", is_active=False
        )
        assert ApiKey.objects.verify(revoked_key) is None
        assert ApiKey.objects.verify(expired_key) is None
        assert ApiKey.objects.verify(inactive_key) is None


@pytest.mark.django_db
def test_two_factor_secret_and_backup_codes_are_encrypted():
    two_factor = UserTwoFactorFactory()
    two_factor.set_secret("JBSWY3DPEHPK3PXP")
    two_factor.set_backup_codes(["111-111", "222-222"])
    two_factor.save()
    two_factor.refresh_from_db()
    assert "JBSWY3DPEHPK3PXP" not in two_factor.secret_encrypted
    assert not {"111-111", "222-222"} & set(two_factor.backup_codes_encrypted)
    assert two_factor.secret == "JBSWY3DPEHPK3PXP"
    assert two_factor.backup_codes == ["111-111", "222-222"]
