"""Schema core: tenants, their users, sessions, 2FA, projects, table definitions, API keys, files.

Column for column the seed's 001_initial_schema. Foreign keys carry the seed's
ON DELETE rule in the database (hzm.db.fields.ForeignKey); the seed's indexes are
declared by their own names; triggers and row level security are attached by
core/migrations/0001_initial_schema.py.
"""

import hashlib
import secrets as secrets_module
from datetime import datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone
from django.utils.crypto import salted_hmac

from cfg.models import Currency, Language
from hzm.db import fields
from hzm.db.columns import (
    ACTIVE,
    ACTIVE_AND_LIVE,
    LIVE,
    Authored,
    LiveManager,
    SoftDeletable,
    SoftDeleteQuerySet,
    Versioned,
    jsonb_default,
    text_array_default,
)
from hzm.db.expressions import GenRandomUUID, Now
from hzm.secrets import api_key_matches, decrypt, encrypt, hash_api_key


class TenantManager(LiveManager):
    """Live tenants, as for every soft-delete model; a tenant's natural key is its slug."""

    def get_by_natural_key(self, slug: str) -> "Tenant":
        # Deleted tenants too: a fixture naming one must update it, not collide with its slug.
        return self.model.all_objects.db_manager(self.db).get(slug=slug)


class Tenant(Versioned, SoftDeletable):
    """core.tenants: a customer of the platform, with its branding, locale, plan and limits."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, db_index=False)
    domain = models.CharField(max_length=255, null=True, blank=True)
    logo_url = models.URLField(max_length=500, null=True, blank=True)
    favicon_url = models.URLField(max_length=500, null=True, blank=True)
    primary_color = models.CharField(max_length=7, null=True, blank=True)
    secondary_color = models.CharField(max_length=7, null=True, blank=True)
    default_language = fields.ForeignKey(
        Language, db_column="default_language", null=True, db_default="en", related_name="+"
    )
    supported_languages = ArrayField(
        models.TextField(), null=True, db_default=text_array_default("en")
    )
    timezone = models.CharField(max_length=50, null=True, db_default="UTC")
    date_format = models.CharField(max_length=20, null=True, db_default="YYYY-MM-DD")
    time_format = models.CharField(max_length=20, null=True, db_default="HH:mm:ss")
    default_currency = fields.ForeignKey(
        Currency, db_column="default_currency", null=True, db_default="USD", related_name="+"
    )
    supported_currencies = ArrayField(
        models.TextField(), null=True, db_default=text_array_default("USD")
    )
    auto_convert_currency = models.BooleanField(null=True, db_default=False)
    decimal_separator = models.CharField(max_length=1, null=True, db_default=".")
    thousands_separator = models.CharField(max_length=1, null=True, db_default=",")
    features = models.JSONField(null=True, db_default=jsonb_default("{}"))
    limits = models.JSONField(null=True, db_default=jsonb_default("{}"))
    plan = models.CharField(max_length=50, null=True, db_default="free")
    subscription_status = models.CharField(max_length=20, null=True, db_default="active")
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    subscription_ends_at = models.DateTimeField(null=True, blank=True)
    max_projects = models.IntegerField(null=True, db_default=3)
    max_tables_per_project = models.IntegerField(null=True, db_default=10)
    max_records = models.IntegerField(null=True, db_default=10000)
    settings = models.JSONField(null=True, db_default=jsonb_default("{}"))
    is_active = models.BooleanField(null=True, db_default=True)

    objects = TenantManager()

    class Meta:
        db_table = 'core"."tenants'
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["slug"], name="tenants_slug_key"),
            models.UniqueConstraint(fields=["domain"], name="tenants_domain_key"),
        ]
        indexes = [
            models.Index(fields=["slug"], name="idx_tenants_slug"),
            models.Index(fields=["is_active"], name="idx_tenants_active", condition=LIVE),
        ]

    def __str__(self) -> str:
        return self.name

    def natural_key(self) -> tuple[str]:
        return (self.slug,)


# Platform staff: users of the platform tenant whose role is platform_admin. They, and
# only they, sign in to the Django admin (User.is_staff is derived from the role).
PLATFORM_ADMIN_ROLE = "platform_admin"
PLATFORM_TENANT_SLUG = "platform"


class UserManager(BaseUserManager.from_queryset(SoftDeleteQuerySet)):
    """Creates platform users; an email is the username. Soft-deleted users are hidden.

    As the default manager it is what authentication looks users up with, so a
    soft-deleted user can neither sign in nor keep a session; `User.all_objects`
    still reaches them.
    """

    use_in_migrations = True

    def get_queryset(self) -> SoftDeleteQuerySet:
        return super().get_queryset().filter(LIVE)

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> "User":
        if not email:
            raise ValueError("a user needs an email address")
        user = self.model(email=self.normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> "User":
        """A platform admin in the platform tenant, which is created when missing.

        What `manage.py createsuperuser` calls; a failure leaves neither tenant nor user.
        """
        role = extra.setdefault("role", PLATFORM_ADMIN_ROLE)
        if role != PLATFORM_ADMIN_ROLE:
            raise ValueError(f"a superuser has role {PLATFORM_ADMIN_ROLE!r}, not {role!r}")
        with transaction.atomic(using=self.db):
            if "tenant" not in extra and "tenant_id" not in extra:
                extra["tenant"] = self._platform_tenant()
            return self.create_user(email, password, **extra)

    def _platform_tenant(self) -> Tenant:
        tenants = Tenant.all_objects.db_manager(self.db)
        try:
            return tenants.get(slug=PLATFORM_TENANT_SLUG)
        except Tenant.DoesNotExist:
            pass
        try:
            with transaction.atomic(using=self.db):
                return tenants.create(name="HZM Platform", slug=PLATFORM_TENANT_SLUG)
        except IntegrityError as error:
            # The tenant's default language and currency ('en', 'USD') are foreign keys.
            raise ValidationError(
                f"cannot create the platform tenant {PLATFORM_TENANT_SLUG!r}: {error}".strip()
                + " -- load the reference data first: python manage.py loaddata "
                "001_default_languages 002_default_currencies"
            ) from error


DEFAULT_USER_ROLE = "user"
_NOT_LOADED = object()


class User(AbstractBaseUser, Versioned, SoftDeletable, Authored):
    """core.users: a person who signs in, belonging to one tenant. Django's AUTH_USER_MODEL."""

    tenant = fields.ForeignKey(Tenant, related_name="users")
    email = fields.CIEmailField()
    # Django's password and last_login, stored in the seed's columns.
    password = models.CharField("password", max_length=255, db_column="password_hash")
    email_verified = models.BooleanField(null=True, db_default=False)
    email_verification_token = models.CharField(max_length=255, null=True, blank=True)
    phone = models.CharField(max_length=50, null=True, blank=True)
    phone_verified = models.BooleanField(null=True, db_default=False)
    name = models.CharField(max_length=200, null=True, blank=True)
    role = models.CharField(max_length=50, null=True, db_default=DEFAULT_USER_ROLE)
    timezone = models.CharField(max_length=50, null=True, db_default="UTC")
    is_active = models.BooleanField(null=True, db_default=True)
    last_login = models.DateTimeField(
        "last login", null=True, blank=True, db_column="last_login_at"
    )
    login_count = models.IntegerField(null=True, db_default=0)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = 'core"."users'
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["email"], name="users_email_key"),
            # Target of the composite foreign keys that keep references within a tenant.
            models.UniqueConstraint(fields=["tenant", "id"], name="users_tenant_id_id_key"),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_users_tenant"),
            models.Index(fields=["email"], name="idx_users_email"),
            models.Index(fields=["tenant"], name="idx_users_active", condition=ACTIVE_AND_LIVE),
        ]

    def __str__(self) -> str:
        return str(self.email)

    # Django's admin and permission checks, derived from `role`: the seed's users table
    # has no is_staff/is_superuser columns, and no per-user permission tables.
    @property
    def is_platform_admin(self) -> bool:
        return self.role == PLATFORM_ADMIN_ROLE

    @property
    def is_staff(self) -> bool:
        """May sign in to the admin: a platform admin who is active and not deleted."""
        return self.is_platform_admin and self.is_active is not False and not self.is_deleted

    @property
    def is_superuser(self) -> bool:
        return self.is_staff

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return self.is_superuser

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return all(self.has_perm(perm, obj) for perm in perm_list)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_superuser

    # The runtime role may write every column of core.users but `role` (hzm 0005: a tenant
    # must not make its own user a platform admin). So the ORM leaves `role` out of what it
    # writes unless it is really set: out of an INSERT while it is the database's default,
    # out of an UPDATE while it is what was read. Platform staff change it as they please.
    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> "User":
        user = super().from_db(db, field_names, values)
        user._loaded_role = user.__dict__.get("role", _NOT_LOADED)
        return user

    def _role_unchanged(self) -> bool:
        return self.__dict__.get("role", _NOT_LOADED) == getattr(self, "_loaded_role", _NOT_LOADED)

    def _do_update(self, base_qs, using, pk_val, values, update_fields, forced_update):
        if self._role_unchanged():
            values = [value for value in values if value[0].attname != "role"]
        return super()._do_update(base_qs, using, pk_val, values, update_fields, forced_update)

    def _save_table(self, *args: Any, **kwargs: Any) -> bool:
        updated = super()._save_table(*args, **kwargs)
        # What the row now holds (an INSERT's defaults are read back by then).
        self._loaded_role = self.__dict__.get("role", _NOT_LOADED)
        return updated

    def _do_insert(self, manager, using, fields, returning_fields, raw):
        role = self.__dict__.get("role")
        if isinstance(role, DatabaseDefault) or role == DEFAULT_USER_ROLE:
            fields = [f for f in fields if f.attname != "role"]
        return super()._do_insert(manager, using, fields, returning_fields, raw)

    # A session stores an HMAC of the password's fingerprint (SHA-256 of the stored hash),
    # not of the hash itself: app.auth_user() hands the web login the fingerprint only, and
    # a password change still ends every other session, as with Django's own.
    @property
    def password_fingerprint(self) -> str:
        known = self.__dict__.get("_password_fingerprint")
        if known is not None:
            return known
        return hashlib.sha256(self.password.encode()).hexdigest()

    def set_password(self, raw_password: str | None) -> None:
        self.__dict__.pop("_password_fingerprint", None)
        super().set_password(raw_password)

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        return salted_hmac(
            "core.User.session_auth_hash",
            self.password_fingerprint,
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    def get_full_name(self) -> str:
        return self.name or str(self.email)

    def get_short_name(self) -> str:
        return self.name or str(self.email)


class UserSession(Versioned):
    """core.user_sessions: a signed-in device of a user (token, device, expiry)."""

    tenant = fields.ForeignKey(Tenant, related_name="+")
    user = fields.ForeignKey(User, related_name="sessions")
    token = models.CharField(max_length=500)
    device_id = models.CharField(max_length=255, null=True, blank=True)
    device_name = models.CharField(max_length=255, null=True, blank=True)
    device_type = models.CharField(max_length=50, null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(null=True, blank=True)
    location = models.JSONField(null=True, blank=True)
    expires_at = models.DateTimeField()
    last_activity_at = models.DateTimeField(null=True, db_default=Now())
    is_active = models.BooleanField(null=True, db_default=True)

    class Meta:
        db_table = 'core"."user_sessions'
        constraints = [models.UniqueConstraint(fields=["token"], name="user_sessions_token_key")]
        indexes = [
            models.Index(fields=["user"], name="idx_sessions_user"),
            models.Index(fields=["token"], name="idx_sessions_token"),
            models.Index(fields=["expires_at"], name="idx_sessions_expire"),
        ]

    def __str__(self) -> str:
        return f"{self.device_name or 'session'} of user {self.user_id}"


class UserTwoFactor(Versioned):
    """core.user_2fa: a user's second factor (method, encrypted secret and backup codes)."""

    tenant = fields.ForeignKey(Tenant, related_name="+")
    user = fields.ForeignKey(User, null=True, related_name="two_factor")
    method = models.CharField(max_length=20)
    secret_encrypted = models.TextField()
    backup_codes_encrypted = ArrayField(models.TextField(), null=True, blank=True)
    is_enabled = models.BooleanField(null=True, db_default=False)
    enabled_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def set_secret(self, secret: str) -> None:
        """Store the second factor's shared secret, encrypted."""
        self.secret_encrypted = encrypt(secret)

    @property
    def secret(self) -> str:
        return decrypt(self.secret_encrypted)

    def set_backup_codes(self, codes: list[str]) -> None:
        """Store one-time backup codes, each encrypted."""
        self.backup_codes_encrypted = [encrypt(code) for code in codes]

    @property
    def backup_codes(self) -> list[str]:
        return [decrypt(token) for token in self.backup_codes_encrypted or []]

    class Meta:
        db_table = 'core"."user_2fa'
        constraints = [models.UniqueConstraint(fields=["user"], name="user_2fa_user_id_key")]

    def __str__(self) -> str:
        return f"{self.method} for user {self.user_id}"


class Project(Versioned, SoftDeletable, Authored):
    """core.projects: a tenant's project, the container of its user-defined tables."""

    tenant = fields.ForeignKey(Tenant, db_on_delete=fields.CASCADE, related_name="projects")
    user = fields.ForeignKey(User, db_on_delete=fields.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    description = models.TextField(null=True, blank=True)
    template_type = models.CharField(max_length=100, null=True, blank=True)
    template_config = models.JSONField(null=True, db_default=jsonb_default("{}"))
    api_key = models.CharField(max_length=100)
    api_key_password = models.CharField(max_length=255, null=True, blank=True)
    is_active = models.BooleanField(null=True, db_default=True)

    class Meta:
        db_table = 'core"."projects'
        constraints = [
            models.UniqueConstraint(fields=["api_key"], name="projects_api_key_key"),
            # Only live projects: a soft-deleted project's name can be used again.
            models.UniqueConstraint(
                fields=["tenant", "name"], condition=LIVE, name="unique_project_name_per_tenant"
            ),
            models.UniqueConstraint(fields=["tenant", "id"], name="projects_tenant_id_id_key"),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_projects_tenant"),
            models.Index(fields=["user"], name="idx_projects_user"),
            models.Index(fields=["api_key"], name="idx_projects_api_key"),
            models.Index(fields=["tenant"], name="idx_projects_active", condition=ACTIVE_AND_LIVE),
        ]

    def __str__(self) -> str:
        return self.name


class TableMetadata(Versioned, SoftDeletable, Authored):
    """core.table_metadata: the definition of a tenant's user table (its fields as JSON)."""

    tenant = fields.ForeignKey(Tenant, db_on_delete=fields.CASCADE, related_name="+")
    project = fields.ForeignKey(Project, db_on_delete=fields.CASCADE, related_name="tables")
    table_name = models.CharField(max_length=100)
    physical_table_name = models.CharField(max_length=255)
    fields = models.JSONField(db_default=jsonb_default("[]"))
    from_template = models.BooleanField(null=True, db_default=False)
    template_table_name = models.CharField(max_length=100, null=True, blank=True)
    is_active = models.BooleanField(null=True, db_default=True)

    class Meta:
        db_table = 'core"."table_metadata'
        verbose_name_plural = "table metadata"
        constraints = [
            models.UniqueConstraint(
                fields=["physical_table_name"], name="table_metadata_physical_table_name_key"
            ),
            # Only live tables: a soft-deleted table's name can be used again.
            models.UniqueConstraint(
                fields=["tenant", "project", "table_name"],
                condition=LIVE,
                name="unique_table_per_project",
            ),
            models.UniqueConstraint(
                fields=["tenant", "project", "id"], name="table_metadata_tenant_project_id_key"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_table_metadata_tenant"),
            models.Index(fields=["project"], name="idx_table_metadata_project"),
            models.Index(fields=["physical_table_name"], name="idx_table_metadata_physical"),
            models.Index(
                fields=["project"], name="idx_table_metadata_active", condition=ACTIVE_AND_LIVE
            ),
        ]

    def __str__(self) -> str:
        return self.table_name


API_KEY_PREFIX = "hzm_"


# issue() makes keys hzm_<12 hex digits>_<secret>; the first part is the public prefix.
API_KEY_PREFIX_LENGTH = len(API_KEY_PREFIX) + 12


def api_key_prefix(presented: str) -> str | None:
    """The public prefix of a presented key ('hzm_0123456789ab_<secret>'), or None if malformed.

    The secret itself may contain '_' (it is URL-safe base64), so the prefix is cut by
    its length, not at an '_'.
    """
    prefix = presented[:API_KEY_PREFIX_LENGTH]
    separator = presented[API_KEY_PREFIX_LENGTH : API_KEY_PREFIX_LENGTH + 1]
    secret = presented[API_KEY_PREFIX_LENGTH + 1 :]
    if not prefix.startswith(API_KEY_PREFIX) or separator != "_" or not secret:
        return None
    if not all(c in "0123456789abcdef" for c in prefix[len(API_KEY_PREFIX) :]):
        return None
    return prefix


class ApiKeyManager(models.Manager):
    def issue(
        self,
        *,
        tenant: Tenant,
        user: "User",
        name: str,
        project: "Project | None" = None,
        **fields: Any,
    ) -> tuple["ApiKey", str]:
        """Create a key; return it with its plaintext, which is shown this once and never stored.

        The row keeps a public prefix (to find the key), the SHA-256 of the whole key
        (to verify it) and the key encrypted with HZM_ENCRYPTION_KEY.
        """
        api_key = self.model(tenant=tenant, user=user, project=project, name=name, **fields)
        plaintext = api_key.set_new_key()
        api_key.save(force_insert=True, using=self._db)
        return api_key, plaintext

    def verify(self, presented: str) -> "ApiKey | None":
        """The active, unexpired, unrevoked key whose hash matches `presented`, or None."""
        prefix = api_key_prefix(presented)
        if prefix is None:
            return None
        api_key = self.filter(key_prefix=prefix).first()
        if api_key is None or not api_key_matches(presented, api_key.key_hash):
            return None
        if not api_key.is_usable():
            return None
        return api_key


class ApiKey(Versioned):
    """core.api_keys: a key a tenant's client authenticates with (prefix + hash, scopes, limits)."""

    tenant = fields.ForeignKey(Tenant, db_on_delete=fields.CASCADE, related_name="+")
    project = fields.ForeignKey(
        Project, db_on_delete=fields.CASCADE, null=True, blank=True, related_name="api_keys"
    )
    user = fields.ForeignKey(User, db_on_delete=fields.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    key_prefix = models.CharField(max_length=20, null=True, blank=True)
    key_hash = models.CharField(max_length=255)
    key_encrypted = models.TextField()
    permissions = models.JSONField(null=True, db_default=jsonb_default("{}"))
    scopes = ArrayField(models.TextField(), null=True, db_default=text_array_default())
    rate_limit_per_minute = models.IntegerField(null=True, db_default=60)
    rate_limit_per_day = models.IntegerField(null=True, db_default=10000)
    allowed_ips = ArrayField(models.TextField(), null=True, db_default=text_array_default())
    allowed_domains = ArrayField(models.TextField(), null=True, db_default=text_array_default())
    last_used_at = models.DateTimeField(null=True, blank=True)
    total_requests = models.BigIntegerField(null=True, db_default=0)
    total_errors = models.IntegerField(null=True, db_default=0)
    expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(null=True, db_default=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.IntegerField(null=True, blank=True)
    revoke_reason = models.TextField(null=True, blank=True)

    objects = ApiKeyManager()

    class Meta:
        db_table = 'core"."api_keys'
        constraints = [
            models.UniqueConstraint(fields=["key_prefix"], name="api_keys_key_prefix_key")
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_api_keys_tenant"),
            models.Index(fields=["project"], name="idx_api_keys_project"),
            models.Index(fields=["key_prefix"], name="idx_api_keys_prefix"),
            models.Index(fields=["tenant"], name="idx_api_keys_active", condition=ACTIVE),
            # Foreign keys to core.users get an index, so that purging users does not
            # scan every referencing table once per user (core 0007).
            models.Index(fields=["user"], name="idx_api_keys_user"),
        ]

    def __str__(self) -> str:
        return self.name

    def set_new_key(self) -> str:
        """Give this unsaved key a secret: return its plaintext; keep prefix, hash, ciphertext."""
        prefix = f"{API_KEY_PREFIX}{secrets_module.token_hex(6)}"
        plaintext = f"{prefix}_{secrets_module.token_urlsafe(32)}"
        self.key_prefix = prefix
        self.key_hash = hash_api_key(plaintext)
        self.key_encrypted = encrypt(plaintext)
        return plaintext

    def is_usable(self, at: "datetime | None" = None) -> bool:
        """Active, not revoked, not expired."""
        at = at or timezone.now()
        return bool(
            self.is_active
            and self.revoked_at is None
            and (self.expires_at is None or self.expires_at > at)
        )


class File(Versioned):
    """core.files: an uploaded file's metadata (where it is stored, type, size, hash, scan)."""

    id = models.UUIDField(primary_key=True, db_default=GenRandomUUID(), editable=False)
    tenant = fields.ForeignKey(Tenant, related_name="+")
    uploaded_by = fields.ForeignKey(
        User, db_column="uploaded_by", null=True, blank=True, related_name="+"
    )
    original_filename = models.CharField(max_length=500, null=True, blank=True)
    filename = models.CharField(max_length=500, null=True, blank=True)
    storage_path = models.TextField(null=True, blank=True)
    storage_provider = models.CharField(max_length=50, null=True, blank=True)
    mime_type = models.CharField(max_length=100, null=True, blank=True)
    file_size = models.BigIntegerField(null=True, blank=True)
    file_hash = models.CharField(max_length=64, null=True, blank=True)
    width = models.IntegerField(null=True, blank=True)
    height = models.IntegerField(null=True, blank=True)
    is_public = models.BooleanField(null=True, db_default=False)
    virus_scan_status = models.CharField(max_length=20, null=True, blank=True)
    virus_scan_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    is_deleted = models.BooleanField(null=True, db_default=False)

    class Meta:
        db_table = 'core"."files'
        indexes = [
            models.Index(fields=["tenant"], name="idx_files_tenant"),
            models.Index(fields=["file_hash"], name="idx_files_hash"),
            models.Index(fields=["uploaded_by"], name="idx_files_uploaded_by"),
        ]

    def __str__(self) -> str:
        return self.original_filename or str(self.id)


# Later migrations of the guide (002 organizations, 003 RBAC, 006 image variants) and the
# API keys' usage counts.
class SignInFailure(models.Model):
    """app.sign_in_failures: failed tenant sign-ins, per email and client address.

    The throttle of /api/v1/auth/login (core/sign_in_throttle.py), the tenants' side of
    what django-axes does for the admin: AXES_FAILURE_LIMIT failures of one email from one
    address, each within AXES_COOLOFF_TIME of the last, lock that pair out until
    `locked_until`. Kept only by SECURITY DEFINER functions (core 0008); the runtime role
    has no privilege on the table, so no request reads who failed to sign in where. No
    tenant_id and no foreign key: most failures name no user at all.
    """

    email = models.TextField()
    ip_address = models.TextField()
    failures = models.IntegerField()
    last_failure = models.DateTimeField()
    locked_until = models.DateTimeField(null=True)

    class Meta:
        db_table = 'app"."sign_in_failures'
        constraints = [
            models.UniqueConstraint(
                fields=["email", "ip_address"], name="sign_in_failures_email_ip_key"
            ),
            models.CheckConstraint(
                condition=models.Q(failures__gte=1), name="sign_in_failures_failures_check"
            ),
        ]
        indexes = [models.Index(fields=["last_failure"], name="idx_sign_in_failures_last")]

    def __str__(self) -> str:
        return f"{self.failures} failed sign-ins of {self.email} from {self.ip_address or '?'}"


from core import api_keys, organizations, rbac, storage  # noqa: E402,F401
