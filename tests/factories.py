"""factory_boy factories for the platform's models.

Each factory builds a consistent graph: a row's tenant is the tenant of the project,
table or user it hangs from, so tenant ids never disagree across a foreign key.
Where that parent is nullable (ApiKey.project, File.uploaded_by, UserTwoFactor.user)
pass the tenant (and user) yourself when you set the parent to None.
"""

import datetime
from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from cfg.models import Currency, ExchangeRate, Language, Translation
from core.models import (
    API_KEY_PREFIX,
    ApiKey,
    File,
    Project,
    TableMetadata,
    Tenant,
    User,
    UserSession,
    UserTwoFactor,
)
from generic_data.models import GenericData
from hzm.secrets import encrypt, hash_api_key


def _letters(n: int, width: int) -> str:
    """The n-th string of `width` upper-case letters (AA, AB, ...): unique codes for tests."""
    chars = []
    for _ in range(width):
        n, rest = divmod(n, 26)
        chars.append(chr(ord("A") + rest))
    return "".join(reversed(chars))


class LanguageFactory(DjangoModelFactory):
    class Meta:
        model = Language
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"x-{_letters(n, 3).lower()}")
    name = factory.LazyAttribute(lambda o: f"Language {o.code}")
    native_name = factory.SelfAttribute("name")


class CurrencyFactory(DjangoModelFactory):
    class Meta:
        model = Currency
        django_get_or_create = ("code",)

    # X-prefixed, unlike the national currencies (USD, EUR) tests name explicitly.
    code = factory.Sequence(lambda n: f"X{_letters(n, 2)}")
    name = factory.LazyAttribute(lambda o: f"Currency {o.code}")
    symbol = factory.SelfAttribute("code")


def ensure_tenant_defaults() -> None:
    """Create the language and currency that core.tenants' column defaults refer to."""
    LanguageFactory(code="en", name="English", native_name="English")
    CurrencyFactory(code="USD", name="US Dollar", symbol="$")


class TenantFactory(DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda n: f"Tenant {n}")
    slug = factory.Sequence(lambda n: f"tenant-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # default_language/default_currency default to 'en'/'USD' in the database and
        # are foreign keys, so those rows must exist before the tenant does.
        ensure_tenant_defaults()
        return super()._create(model_class, *args, **kwargs)


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User

    tenant = factory.SubFactory(TenantFactory)
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Sequence(lambda n: f"User {n}")
    # Unusable unless a password is given (UserFactory(password="...") hashes it),
    # which spares every test the cost of Argon2.
    password = factory.django.Password(None)


class ProjectFactory(DjangoModelFactory):
    class Meta:
        model = Project

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory, tenant=factory.SelfAttribute("..tenant"))
    name = factory.Sequence(lambda n: f"Project {n}")
    api_key = factory.Sequence(lambda n: f"project-key-{n}")


class TableMetadataFactory(DjangoModelFactory):
    class Meta:
        model = TableMetadata

    project = factory.SubFactory(ProjectFactory)
    tenant = factory.SelfAttribute("project.tenant")
    table_name = factory.Sequence(lambda n: f"table_{n}")
    physical_table_name = factory.Sequence(lambda n: f"physical_table_{n}")
    fields = factory.LazyFunction(lambda: [{"name": "title", "type": "text"}])


class ApiKeyFactory(DjangoModelFactory):
    """An API key of a project; with project=None pass tenant and user explicitly.

    Stored as ApiKey.objects.issue() stores a key: prefix, SHA-256 and ciphertext of
    `plaintext`, so ApiKey.objects.verify(plaintext) finds it.
    """

    class Meta:
        model = ApiKey

    class Params:
        plaintext = factory.Sequence(lambda n: f"{API_KEY_PREFIX}{n:012x}_test-key-{n}")

    project = factory.SubFactory(ProjectFactory)
    tenant = factory.SelfAttribute("project.tenant")
    user = factory.SelfAttribute("project.user")
    name = factory.Sequence(lambda n: f"Key {n}")
    key_prefix = factory.LazyAttribute(lambda o: o.plaintext.rpartition("_")[0])
    key_hash = factory.LazyAttribute(lambda o: hash_api_key(o.plaintext))
    key_encrypted = factory.LazyAttribute(lambda o: encrypt(o.plaintext))


class FileFactory(DjangoModelFactory):
    """A file uploaded by a user; with uploaded_by=None pass tenant explicitly."""

    class Meta:
        model = File

    uploaded_by = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("uploaded_by.tenant")
    original_filename = factory.Sequence(lambda n: f"upload-{n}.txt")
    filename = factory.Sequence(lambda n: f"stored-{n}.txt")
    mime_type = "text/plain"
    file_size = 12


class UserSessionFactory(DjangoModelFactory):
    class Meta:
        model = UserSession

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")
    token = factory.Sequence(lambda n: f"session-token-{n}")
    expires_at = factory.LazyFunction(lambda: timezone.now() + datetime.timedelta(days=1))


class UserTwoFactorFactory(DjangoModelFactory):
    class Meta:
        model = UserTwoFactor

    user = factory.SubFactory(UserFactory)
    tenant = factory.SelfAttribute("user.tenant")

    class Params:
        secret = "JBSWY3DPEHPK3PXP"  # base32, as TOTP secrets are

    method = "totp"
    secret_encrypted = factory.LazyAttribute(lambda o: encrypt(o.secret))


class TranslationFactory(DjangoModelFactory):
    """A global translation (tenant_id NULL) in English unless told otherwise."""

    class Meta:
        model = Translation

    language = factory.SubFactory(LanguageFactory, code="en", name="English")
    translation_key = factory.Sequence(lambda n: f"key.{n}")
    translation_value = factory.Sequence(lambda n: f"Text {n}")


class ExchangeRateFactory(DjangoModelFactory):
    """USD -> EUR on a different day each time (the date is part of the primary key)."""

    class Meta:
        model = ExchangeRate

    from_currency = factory.SubFactory(CurrencyFactory, code="USD", name="US Dollar")
    to_currency = factory.SubFactory(CurrencyFactory, code="EUR", name="Euro")
    rate = Decimal("0.912345")
    rate_date = factory.Sequence(lambda n: datetime.date(2020, 1, 1) + datetime.timedelta(days=n))


class GenericDataFactory(DjangoModelFactory):
    class Meta:
        model = GenericData

    table = factory.SubFactory(TableMetadataFactory)
    project = factory.SelfAttribute("table.project")
    tenant = factory.SelfAttribute("table.tenant")
    data = factory.Sequence(lambda n: {"title": f"Row {n}", "position": n})
