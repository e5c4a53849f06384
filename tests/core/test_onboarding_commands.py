"""The onboarding commands through call_command: what they write, print, audit and refuse.

(As an operator runs them, under the production logins: tests/production/test_onboarding.py.)
"""

import datetime
import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.utils import timezone

from core.models import ApiKey, Project, Tenant, User
from hzm.deploy.connection import MigrationConnectionCommand
from ops.models import AuditLog
from tests.factories import ProjectFactory, TenantFactory, UserFactory, ensure_tenant_defaults

pytestmark = pytest.mark.django_db

COMMANDS = (
    "create_tenant",
    "create_tenant_user",
    "create_project",
    "issue_api_key",
    "revoke_api_key",
)


def run(*args: str, stdin: str | None = None, **options: Any) -> tuple[str, str]:
    """(stdout, stderr) of the command."""
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        options["stdin"] = io.StringIO(stdin)
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def refusal(*args: str) -> str:
    with pytest.raises(CommandError) as error:
        run(*args)
    return str(error.value)


def audit_of(table: str, entity_id: Any) -> AuditLog:
    return AuditLog.objects.get(entity_type=table, entity_id=str(entity_id), action="INSERT")


@pytest.fixture
def tenant(db: None) -> Tenant:
    ensure_tenant_defaults()
    return TenantFactory(slug="acme")


@pytest.mark.parametrize("name", COMMANDS)
def test_each_is_an_owner_command_with_help_for_every_argument(name):
    command = load_command_class(get_commands()[name], name)
    assert isinstance(command, MigrationConnectionCommand)
    assert command.owner_needs({}) == {"bypass_rls": True}
    parser = command.create_parser("manage.py", name)
    ours = [
        action
        for action in parser._actions
        if action.dest not in {"help", "version", "verbosity", "settings", "pythonpath"}
        and action.dest not in {"traceback", "no_color", "force_color", "skip_checks"}
    ]
    assert ours and all(action.help for action in ours), [a.dest for a in ours if not a.help]
    assert "examples:" in parser.format_help()


# --- Tenants, users, projects --------------------------------------------------------------


def test_create_tenant_prints_only_the_id_and_is_audited(db):
    ensure_tenant_defaults()
    out, err = run("create_tenant", "Acme Corp", "--timezone", "Europe/Istanbul")
    tenant = Tenant.objects.get(pk=int(out))
    assert (tenant.name, tenant.slug, tenant.timezone) == (
        "Acme Corp",
        "acme-corp",
        "Europe/Istanbul",
    )
    assert "Created tenant 'Acme Corp'" in err
    audit = audit_of("core.tenants", tenant.pk)
    assert (audit.tenant_id, audit.user_id) == (tenant.pk, None)
    assert audit.user_agent.startswith("manage.py create_tenant (by ")
    assert audit.request_id.startswith("cmd-")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["Acme", "--slug", "Not A Slug"], "--slug 'Not A Slug': use lower-case letters"),
        (["Acme", "--slug", "acme"], "--slug 'acme': taken by tenant"),
        (["Acme 2", "--default-language", "xx"], "--default-language 'xx': not in cfg.languages"),
        (["Acme 2", "--timezone", "Mars/Base"], "--timezone 'Mars/Base': not an IANA time zone"),
        (["  "], "name: give the tenant's name"),
    ],
)
def test_create_tenant_refuses_naming_the_argument(tenant, args, words):
    assert words in refusal("create_tenant", *args)


def test_create_tenant_user_without_a_password(tenant):
    out, _ = run(
        "create_tenant_user", "--tenant", "acme", "--email", "Ada@Acme.test", "--name", "Ada"
    )
    user = User.objects.get(pk=int(out))
    assert (user.tenant_id, user.email, user.role) == (tenant.pk, "Ada@acme.test", "user")
    assert not user.has_usable_password()
    assert audit_of("core.users", user.pk).tenant_id == tenant.pk


def test_create_tenant_user_reads_the_password_from_stdin(tenant):
    out, err = run(
        "create_tenant_user",
        "--tenant",
        str(tenant.pk),
        "--email",
        "ada@acme.test",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long passphrase\n",
    )
    user = User.objects.get(pk=int(out))
    assert user.check_password("a long passphrase") and user.role == "admin"
    assert "with a password" in err
    assert audit_of("core.users", user.pk).new_values["password_hash"] == "[redacted]"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tenant", "nobody", "--email", "a@b.test"], "--tenant 'nobody': no such tenant"),
        (["--tenant", "acme", "--email", "not-an-email"], "not an email address"),
        (["--tenant", "acme", "--email", "taken@x.test"], "already in use"),
        (
            ["--tenant", "acme", "--email", "a@b.test", "--role", "platform_admin"],
            "createsuperuser",
        ),
        (["--tenant", "acme", "--email", "a@b.test", "--role", "Boss"], "--role 'Boss'"),
    ],
)
def test_create_tenant_user_refuses_naming_the_argument(tenant, args, words):
    UserFactory(email="taken@x.test")
    assert words in refusal("create_tenant_user", *args)


def test_create_project(tenant):
    owner = UserFactory(tenant=tenant, email="owner@acme.test")
    out, _ = run("create_project", "--tenant", "acme", "--owner", "OWNER@acme.test", "Shop")
    project = Project.objects.get(pk=int(out))
    assert (project.tenant_id, project.user_id, project.name) == (tenant.pk, owner.pk, "Shop")
    assert len(project.api_key) >= 32
    assert audit_of("core.projects", project.pk).new_values["api_key"] == "[redacted]"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tenant", "acme", "--owner", "nobody@x.test", "Shop"], "--owner 'nobody@x.test'"),
        (["--tenant", "acme", "--owner", "stranger@x.test", "Shop"], "belongs to another tenant"),
        (["--tenant", "acme", "--owner", "owner@acme.test", "Old"], "has a project of that name"),
        (["--tenant", "acme", "--owner", "owner@acme.test", "Third"], "max_projects 2"),
    ],
)
def test_create_project_refuses_naming_the_argument(tenant, args, words):
    owner = UserFactory(tenant=tenant, email="owner@acme.test")
    UserFactory(email="stranger@x.test")
    Tenant.objects.filter(pk=tenant.pk).update(max_projects=2)
    ProjectFactory(tenant=tenant, user=owner, name="Old")
    if "Third" in args:
        ProjectFactory(tenant=tenant, user=owner, name="Second")
    assert words in refusal("create_project", *args)


# --- API keys ------------------------------------------------------------------------------------


@pytest.fixture
def project(tenant: Tenant) -> Project:
    owner = UserFactory(tenant=tenant, email="owner@acme.test")
    return ProjectFactory(tenant=tenant, user=owner, name="Shop")


def test_issue_api_key_prints_the_key_alone_and_stores_only_its_hash(project):
    out, err = run("issue_api_key", "--project", str(project.pk), "--name", "backend")
    plaintext = out.strip()
    assert out == plaintext + "\n"
    api_key = ApiKey.objects.verify(plaintext)
    assert api_key is not None and plaintext not in err
    assert (api_key.project_id, api_key.user_id, api_key.tenant_id) == (
        project.pk,
        project.user_id,
        project.tenant_id,
    )
    assert api_key.scopes == ["read", "write", "define"]
    assert (api_key.rate_limit_per_minute, api_key.rate_limit_per_day) == (60, 10000)
    assert api_key.key_hash != plaintext and plaintext not in api_key.key_encrypted
    audit = audit_of("core.api_keys", api_key.pk)
    assert audit.new_values["key_hash"] == audit.new_values["key_encrypted"] == "[redacted]"
    assert audit.tenant_id == project.tenant_id


def test_issue_api_key_with_every_option(project):
    ops = UserFactory(tenant=project.tenant, email="ops@acme.test")
    out, _ = run(
        "issue_api_key",
        "--tenant",
        "acme",
        "--tenant-wide",
        "--user",
        "ops@acme.test",
        "--name",
        "reporting",
        "--scope",
        "read",
        "--scope",
        "write:orders,define:orders",
        "--allow-ip",
        "203.0.113.7",
        "--allow-ip",
        "10.0.0.0/8",
        "--allow-origin",
        "https://shop.acme.test",
        "--allow-origin",
        "*.acme.test",
        "--rate-limit-per-minute",
        "10",
        "--rate-limit-per-day",
        "none",
        "--expires-in",
        "30",
    )
    api_key = ApiKey.objects.verify(out.strip())
    assert (api_key.project_id, api_key.user_id) == (None, ops.pk)
    assert api_key.scopes == ["read", "write:orders", "define:orders"]
    assert api_key.allowed_ips == ["203.0.113.7/32", "10.0.0.0/8"]
    assert api_key.allowed_domains == ["https://shop.acme.test", "*.acme.test"]
    assert (api_key.rate_limit_per_minute, api_key.rate_limit_per_day) == (10, None)
    expected = timezone.now() + datetime.timedelta(days=30)
    assert abs(api_key.expires_at - expected) < datetime.timedelta(minutes=1)


def test_a_project_can_be_named_with_its_tenant(project):
    out, _ = run("issue_api_key", "--tenant", "acme", "--project", "Shop", "--name", "k")
    assert ApiKey.objects.verify(out.strip()).project_id == project.pk


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--name", "k"], "one of the arguments --project --tenant-wide is required"),
        (["--name", "k", "--project", "999999"], "--project '999999': no such project"),
        (["--name", "k", "--project", "Shop"], "a name needs --tenant"),
        (["--name", "k", "--tenant-wide", "--tenant", "acme"], "give --tenant and --user"),
        (["--name", "k", "--project", "P", "--scope", "delete"], "'delete' is not a scope"),
        (["--name", "k", "--project", "P", "--allow-ip", "10.0.0.999"], "not an IP address"),
        (["--name", "k", "--project", "P", "--allow-origin", "ftp://x.test"], "not a host"),
        (["--name", "k", "--project", "P", "--rate-limit-per-minute", "0"], "at least 1"),
        (["--name", "k", "--project", "P", "--rate-limit-per-day", "lots"], "a whole number"),
        (["--name", "k", "--project", "P", "--expires-at", "tomorrow"], "not an ISO 8601 time"),
        (["--name", "k", "--project", "P", "--expires-at", "2030-01-01T00:00"], "time zone"),
        (["--name", "k", "--project", "P", "--expires-at", "2001-01-01T00:00Z"], "in the future"),
        (["--name", "k", "--project", "P", "--user", "stranger@x.test"], "another tenant"),
    ],
)
def test_issue_api_key_refuses_naming_the_argument(project, args, words):
    UserFactory(email="stranger@x.test")
    args = [str(project.pk) if arg == "P" else arg for arg in args]
    assert words in refusal("issue_api_key", *args)
    assert not ApiKey.objects.filter(name="k").exists()


def test_revoke_api_key_by_prefix_with_a_reason(project):
    plaintext, _ = run("issue_api_key", "--project", str(project.pk), "--name", "k")
    api_key = ApiKey.objects.verify(plaintext.strip())
    out, _ = run("revoke_api_key", api_key.key_prefix, "--reason", "leaked in a log")
    api_key.refresh_from_db()
    assert (api_key.revoke_reason, api_key.revoked_by) == ("leaked in a log", None)
    assert api_key.revoked_at is not None and not api_key.is_usable()
    assert f"Revoked API key 'k' ({api_key.key_prefix})" in out
    update = AuditLog.objects.filter(
        entity_type="core.api_keys", entity_id=str(api_key.pk), action="UPDATE"
    ).get()
    assert update.new_values["revoke_reason"] == "leaked in a log"
    assert update.user_agent.startswith("manage.py revoke_api_key")
    # By id or by the whole key too, and never twice.
    assert "already revoked" in refusal("revoke_api_key", str(api_key.pk), "--reason", "again")
    assert "already revoked" in refusal("revoke_api_key", plaintext.strip(), "--reason", "again")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["hzm_000000000000", "--reason", "x"], "no such API key"),
        (["nonsense", "--reason", "x"], "no such API key"),
        (["K", "--reason", "  "], "reason: say why"),
    ],
)
def test_revoke_api_key_refuses_naming_the_argument(project, args, words):
    api_key, _ = ApiKey.objects.issue(
        tenant=project.tenant, user=project.user, project=project, name="k"
    )
    args = [api_key.key_prefix if arg == "K" else arg for arg in args]
    assert words in refusal("revoke_api_key", *args)
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
