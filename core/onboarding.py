"""A new tenant, its users, projects and API keys: what the onboarding commands do.

The commands (core/management/commands/: create_tenant, create_tenant_user,
create_project, issue_api_key, revoke_api_key) run as the owner, through
MIGRATION_DATABASE_URL, outside any tenant context. Each write runs in one transaction
that names its tenant and the command to the audit trail (`audited`): ops.audit_logs
records it with no user (no one signed in), the tenant, a request id of its own and, as
the user agent, the command and the operating system user who ran it.

Every refusal is an OnboardingError whose message names the argument and the reason.
"""

import getpass
import os
import re
import secrets
import uuid
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django.utils.text import slugify

from cfg.models import Currency, Language
from core.api_keys import (
    ALL_SCOPES,
    KeySettingError,
    parse_allowed_domains,
    parse_allowed_ips,
    parse_scopes,
    revoke,
)
from core.models import (
    API_KEY_PREFIX_LENGTH,
    PLATFORM_ADMIN_ROLE,
    ApiKey,
    Project,
    Tenant,
    User,
    api_key_prefix,
)
from hzm.db.context import set_audit_actor

SLUG = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*\Z")
# What the admin's own pages allow a tenant user's role to be (core.users.role is text).
ROLE = re.compile(r"[a-z][a-z0-9_]{0,49}\Z")


class OnboardingError(ValueError):
    """Bad input or a missing reference; the message names the argument."""


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return f"uid {os.getuid()}"


@contextmanager
def audited(command: str, tenant_id: int | None, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """One transaction whose writes the audit trail records as `command`'s, for `tenant_id`."""
    with transaction.atomic(using=using):
        set_audit_actor(None, tenant_id, using=using)
        with connections[using].cursor() as cursor:
            cursor.execute(
                "SELECT app.set_request_context(%s, NULL, %s)",
                [f"cmd-{uuid.uuid4().hex}", f"manage.py {command} (by {_operator()})"],
            )
        yield


# --- Finding what the arguments name ---------------------------------------------------------


def find_tenant(reference: str) -> Tenant:
    """A live tenant by its slug or id."""
    reference = str(reference).strip()
    found = Tenant.objects.filter(slug=reference).first()
    if found is None and reference.isdigit():
        found = Tenant.objects.filter(pk=int(reference)).first()
    if found is None:
        raise OnboardingError(f"--tenant {reference!r}: no such tenant (give its slug or id)")
    return found


def find_user(tenant: Tenant, email: str, argument: str = "--user") -> User:
    """A live user of `tenant` by email (any case)."""
    found = User.objects.filter(email=email.strip()).first()
    if found is None:
        raise OnboardingError(f"{argument} {email!r}: no such user")
    if found.tenant_id != tenant.pk:
        raise OnboardingError(
            f"{argument} {email!r}: that user belongs to another tenant, not to {tenant.slug!r}"
        )
    if found.is_active is False:
        raise OnboardingError(f"{argument} {email!r}: that user is deactivated")
    return found


def find_project(reference: str, tenant: Tenant | None) -> Project:
    """A live project by id, or by name within `tenant`."""
    reference = str(reference).strip()
    projects = Project.objects.filter(is_deleted=False)
    found = projects.filter(pk=int(reference)).first() if reference.isdigit() else None
    if found is None and tenant is not None:
        found = projects.filter(tenant=tenant, name=reference).first()
    if found is None:
        where = f" of tenant {tenant.slug!r}" if tenant is not None else " (a name needs --tenant)"
        raise OnboardingError(f"--project {reference!r}: no such project{where}")
    if tenant is not None and found.tenant_id != tenant.pk:
        raise OnboardingError(
            f"--project {reference!r}: that project belongs to another tenant, not to "
            f"{tenant.slug!r}"
        )
    return found


def find_api_key(reference: str) -> ApiKey:
    """A key by its prefix (hzm_0123456789ab), the whole key, or its id."""
    reference = reference.strip()
    prefix = api_key_prefix(reference) or (
        reference if len(reference) == API_KEY_PREFIX_LENGTH else None
    )
    found = None
    if prefix is not None:
        found = ApiKey.objects.filter(key_prefix=prefix).first()
    elif reference.isdigit():
        found = ApiKey.objects.filter(pk=int(reference)).first()
    if found is None:
        raise OnboardingError(
            f"key {reference[:API_KEY_PREFIX_LENGTH]!r}: no such API key "
            "(give its prefix, hzm_ and 12 hex digits, or its id)"
        )
    return found


# --- Tenants, users, projects ----------------------------------------------------------------


def create_tenant(
    name: str,
    *,
    slug: str | None = None,
    domain: str | None = None,
    default_language: str | None = None,
    default_currency: str | None = None,
    time_zone: str | None = None,
) -> Tenant:
    name = name.strip()
    if not name:
        raise OnboardingError("name: give the tenant's name")
    if len(name) > 200:
        raise OnboardingError(f"name: at most 200 characters, got {len(name)}")
    slug = (slug or slugify(name)).strip()
    if not SLUG.match(slug) or len(slug) > 100:
        raise OnboardingError(
            f"--slug {slug!r}: use lower-case letters and digits, joined by - or _ "
            "(at most 100), e.g. acme-corp"
        )
    taken = Tenant.all_objects.filter(slug=slug).first()
    if taken is not None:
        raise OnboardingError(f"--slug {slug!r}: taken by tenant {taken.name!r} (id {taken.pk})")
    fields: dict[str, Any] = {"name": name, "slug": slug}
    if domain:
        domain = domain.strip().lower()
        if Tenant.all_objects.filter(domain=domain).exists():
            raise OnboardingError(f"--domain {domain!r}: another tenant has it")
        fields["domain"] = domain
    language = default_language or "en"
    if not Language.objects.filter(code=language).exists():
        raise OnboardingError(
            f"--default-language {language!r}: not in cfg.languages (load the reference "
            "data: python manage.py loaddata 001_default_languages 002_default_currencies)"
        )
    currency = default_currency or "USD"
    if not Currency.objects.filter(code=currency).exists():
        raise OnboardingError(
            f"--default-currency {currency!r}: not in cfg.currencies (load the reference "
            "data: python manage.py loaddata 001_default_languages 002_default_currencies)"
        )
    if default_language:
        fields.update(default_language_id=language, supported_languages=[language])
    if default_currency:
        fields.update(default_currency_id=currency, supported_currencies=[currency])
    if time_zone:
        if time_zone not in zoneinfo.available_timezones():
            raise OnboardingError(
                f"--timezone {time_zone!r}: not an IANA time zone (e.g. UTC, Europe/Istanbul)"
            )
        fields["timezone"] = time_zone
    with audited("create_tenant", None):
        tenant = Tenant.objects.create(**fields)
    return Tenant.objects.get(pk=tenant.pk)


def create_tenant_user(
    tenant: Tenant,
    email: str,
    *,
    name: str | None = None,
    role: str = "user",
    password: str | None = None,
) -> User:
    """A user of `tenant`; without a password it can use API keys but not sign in."""
    email = User.objects.normalize_email(email.strip())
    try:
        validate_email(email)
    except ValidationError:
        raise OnboardingError(f"--email {email!r}: not an email address") from None
    if User.all_objects.filter(email=email).exists():
        raise OnboardingError(
            f"--email {email!r}: already in use (an email address is unique across the platform)"
        )
    if role == PLATFORM_ADMIN_ROLE:
        raise OnboardingError(
            f"--role {role!r}: platform admins are made with python manage.py createsuperuser"
        )
    if not ROLE.match(role):
        raise OnboardingError(
            f"--role {role!r}: lower-case letters, digits and _ (user, admin, member, ...)"
        )
    if password is not None and len(password) < 8:
        raise OnboardingError("password: at least 8 characters")
    with audited("create_tenant_user", tenant.pk):
        user = User.objects.create_user(email, password, tenant=tenant, name=name, role=role)
    return user


def create_project(
    tenant: Tenant, owner: User, name: str, *, description: str | None = None
) -> Project:
    name = name.strip()
    if not name or len(name) > 200:
        raise OnboardingError("name: give the project's name (at most 200 characters)")
    projects = Project.objects.filter(tenant=tenant, is_deleted=False)
    if projects.filter(name=name).exists():
        raise OnboardingError(f"name {name!r}: tenant {tenant.slug!r} has a project of that name")
    if tenant.max_projects is not None and projects.count() >= tenant.max_projects:
        raise OnboardingError(
            f"tenant {tenant.slug!r} has {projects.count()} projects, its limit "
            f"(max_projects {tenant.max_projects}): raise it in the admin first"
        )
    with audited("create_project", tenant.pk):
        return Project.objects.create(
            tenant=tenant,
            user=owner,
            name=name,
            description=description or None,
            # The guide's projects.api_key: a unique random value. Not a credential: API
            # keys are core.api_keys (issue_api_key).
            api_key=secrets.token_urlsafe(32),
        )


# --- API keys --------------------------------------------------------------------------------


def issue_api_key(
    tenant: Tenant,
    user: User,
    name: str,
    *,
    project: Project | None,
    scopes: Any = None,
    allowed_ips: Any = None,
    allowed_domains: Any = None,
    rate_limit_per_minute: int | str | None = "default",
    rate_limit_per_day: int | str | None = "default",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A key (and its plaintext, shown once) of `project`, or of the whole tenant (None)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise OnboardingError("--name: give the key a name (at most 100 characters)")
    if project is not None and project.tenant_id != tenant.pk:
        raise OnboardingError(f"--project {project.pk}: not a project of tenant {tenant.slug!r}")
    if user.tenant_id != tenant.pk:
        raise OnboardingError(f"--user {user.email}: not a user of tenant {tenant.slug!r}")
    if expires_at is not None and expires_at <= timezone.now():
        raise OnboardingError(f"expiry {expires_at.isoformat()}: must be in the future")
    try:
        fields: dict[str, Any] = {
            "scopes": parse_scopes(scopes) if scopes is not None else list(ALL_SCOPES),
            "allowed_ips": parse_allowed_ips(allowed_ips),
            "allowed_domains": parse_allowed_domains(allowed_domains),
            "expires_at": expires_at,
        }
    except KeySettingError as error:
        raise OnboardingError(str(error)) from None
    if not fields["scopes"]:
        raise OnboardingError("--scope: give at least one (read, write, define)")
    # "default": the column's default (60 a minute, 10,000 a day); None: no limit.
    if rate_limit_per_minute != "default":
        fields["rate_limit_per_minute"] = rate_limit_per_minute
    if rate_limit_per_day != "default":
        fields["rate_limit_per_day"] = rate_limit_per_day
    with audited("issue_api_key", tenant.pk):
        return ApiKey.objects.issue(tenant=tenant, user=user, name=name, project=project, **fields)


def revoke_api_key(api_key: ApiKey, reason: str, *, by_user_id: int | None = None) -> ApiKey:
    with audited("revoke_api_key", api_key.tenant_id):
        try:
            revoke(api_key, reason, by_user_id)
        except KeySettingError as error:
            raise OnboardingError(str(error)) from None
    return api_key
