"""RBAC: app.has_permission() and its helper, constraints, triggers, isolation, fixture, admin."""

import datetime

import psycopg
import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import User
from core.organizations import Organization
from core.rbac import Permission, Role, RolePermission, UserRole, has_permission
from hzm.db.columns import purge
from hzm.db.context import tenant_context
from tests.factories import TenantFactory, UserFactory
from tests.factories_platform import (
    OrganizationFactory,
    OrganizationMemberFactory,
    PermissionFactory,
    RoleFactory,
    RolePermissionFactory,
    UserRoleFactory,
)
from tests.platform_support import (
    assert_admin_pages_open,
    assert_reference_refused,
    assert_tenant_isolated,
    query,
    sign_in_platform_admin,
)
from tests.support import refused, run

pytestmark = pytest.mark.django_db


def grant(permission: str, *, organization=None, user=None, role_tenant="user's", **values):
    """A user holding a role that has `permission` (tenant-wide unless `organization`)."""
    user = user or (UserFactory(tenant=organization.tenant) if organization else UserFactory())
    tenant = user.tenant if role_tenant == "user's" else role_tenant
    role = RoleFactory(tenant=tenant)
    RolePermissionFactory(role=role, tenant=tenant, permission=PermissionFactory(code=permission))
    UserRoleFactory(user=user, role=role, organization=organization, **values)
    return user


def sql_has_permission(user_id, permission, organization_id=None) -> bool:
    return query("SELECT app.has_permission(%s, %s, %s)", [user_id, permission, organization_id])[
        0
    ][0]


# --- app.has_permission ----------------------------------------------------------------------


def test_a_tenant_wide_role_grants_its_permissions_everywhere_in_the_tenant():
    user = grant("projects.create")
    organization = OrganizationFactory(tenant=user.tenant)
    assert has_permission(user, "projects.create")
    assert has_permission(user, "projects.create", organization)
    assert has_permission(user.pk, "projects.create", organization.pk)
    assert not has_permission(user, "projects.delete")


def test_the_python_helper_is_the_sql_function():
    user = grant("projects.create")
    for permission in ("projects.create", "projects.delete"):
        assert has_permission(user, permission) is sql_has_permission(user.pk, permission)


def test_an_organization_role_counts_only_there_and_only_for_a_joined_member():
    organization = OrganizationFactory()
    user = UserFactory(tenant=organization.tenant)
    grant("data.write", organization=organization, user=user)
    other = OrganizationFactory(tenant=organization.tenant)

    assert not has_permission(user, "data.write", organization)  # not a member yet
    member = OrganizationMemberFactory(
        organization=organization, user=user, joined_at=None, invited_at=timezone.now()
    )
    assert not has_permission(user, "data.write", organization)  # only invited
    member.accept()
    assert has_permission(user, "data.write", organization)
    assert not has_permission(user, "data.write", other)
    assert not has_permission(user, "data.write")  # not tenant-wide
    member.delete()  # removed from the organization
    assert not has_permission(user, "data.write", organization)


def test_a_global_role_works_for_every_tenant():
    role = RoleFactory(tenant=None, code="auditor")
    RolePermissionFactory(role=role, tenant=None, permission=PermissionFactory(code="audit.view"))
    users = [UserFactory(), UserFactory()]
    for user in users:
        UserRoleFactory(user=user, role=role)
    assert [has_permission(user, "audit.view") for user in users] == [True, True]


@pytest.mark.parametrize(
    "withdraw",
    [
        pytest.param(lambda user, role: role.delete(), id="role soft-deleted"),
        pytest.param(
            lambda user, role: UserRole.objects.filter(user=user).update(
                expires_at=timezone.now() - datetime.timedelta(seconds=1)
            ),
            id="grant expired",
        ),
        pytest.param(lambda user, role: user.delete(), id="user soft-deleted"),
        pytest.param(
            lambda user, role: type(user).objects.filter(pk=user.pk).update(is_active=False),
            id="user inactive",
        ),
        pytest.param(lambda user, role: UserRole.objects.filter(user=user).delete(), id="revoked"),
    ],
)
def test_a_permission_goes_with_its_grant(withdraw):
    user = grant("projects.create")
    role = UserRole.objects.get(user=user).role
    assert has_permission(user, "projects.create")
    withdraw(user, role)
    assert not has_permission(user, "projects.create")


def test_a_future_expiry_keeps_the_grant():
    user = grant("projects.create", expires_at=timezone.now() + datetime.timedelta(days=1))
    assert has_permission(user, "projects.create")


def test_an_organization_of_another_tenant_grants_nothing():
    user = grant("projects.create")
    assert not has_permission(user, "projects.create", OrganizationFactory())


def test_a_deleted_or_inactive_organization_grants_nothing():
    user = grant("projects.create")
    organization = OrganizationFactory(tenant=user.tenant)
    organization.delete()
    assert not has_permission(user, "projects.create", organization)


def test_inside_a_tenant_context_only_that_tenants_grants_count():
    user = grant("projects.create")
    with tenant_context(user.tenant_id, user.pk):
        assert has_permission(user, "projects.create")
    with tenant_context(TenantFactory().pk):
        assert not has_permission(user, "projects.create")


def test_the_function_is_stable_and_runs_as_its_caller():
    assert query(
        "SELECT provolatile, prosecdef, proconfig FROM pg_proc "
        "WHERE oid = 'app.has_permission(int, text, int)'::regprocedure"
    ) == [("s", False, ["search_path=pg_catalog, pg_temp"])]


# --- Constraints -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["projects", "Projects.create", "projects.", "projects create"])
def test_a_permission_code_is_area_dot_action(code):
    with pytest.raises(IntegrityError, match="permissions_code_format"), transaction.atomic():
        PermissionFactory(code=code)


def test_permission_codes_are_unique():
    PermissionFactory(code="a.b")
    with pytest.raises(IntegrityError, match="permissions_code_key"), transaction.atomic():
        Permission.objects.create(code="a.b")


def test_role_codes_are_unique_per_tenant_and_among_global_roles():
    tenant = TenantFactory()
    RoleFactory(tenant=tenant, code="editor")
    RoleFactory(tenant=None, code="editor")
    RoleFactory(code="editor")  # another tenant's
    for owner in (tenant, None):
        with pytest.raises(IntegrityError, match="unique_role_code_per_tenant"):
            with transaction.atomic():
                RoleFactory(tenant=owner, code="editor")


def test_a_deleted_roles_code_can_be_used_again():
    role = RoleFactory(code="editor")
    role.delete()
    RoleFactory(tenant=role.tenant, code="editor")


@pytest.mark.parametrize("code", ["Editor", "2nd", "chief-editor"])
def test_a_role_code_is_a_lower_case_word(code):
    with pytest.raises(IntegrityError, match="roles_code_format"), transaction.atomic():
        RoleFactory(code=code)


def test_a_grant_is_unique_also_when_tenant_wide():
    grant_ = UserRoleFactory()
    with pytest.raises(IntegrityError, match="unique_user_role"), transaction.atomic():
        UserRoleFactory(user=grant_.user, role=grant_.role)


def test_a_global_roles_permission_is_listed_once():
    role_permission = RolePermissionFactory(role=RoleFactory(tenant=None), tenant=None)
    with pytest.raises(IntegrityError, match="unique_role_permission"), transaction.atomic():
        RolePermissionFactory(
            role=role_permission.role, tenant=None, permission=role_permission.permission
        )


# --- The role's tenant (trg_*_role_tenant) and composite keys ------------------------------------


def role_tenant_refusal(action) -> str:
    error = refused(action)
    assert isinstance(error, psycopg.errors.ForeignKeyViolation), error
    return error.diag.message_primary


def test_a_user_cannot_be_granted_another_tenants_role():
    user, role = UserFactory(), RoleFactory()
    message = role_tenant_refusal(lambda: UserRoleFactory(user=user, role=role))
    assert message == (
        f"core.user_roles: role {role.pk} belongs to tenant {role.tenant_id}, "
        f"the row to tenant {user.tenant_id}"
    )


def test_a_role_permission_has_exactly_its_roles_tenant():
    role, other = RoleFactory(), TenantFactory()
    message = role_tenant_refusal(lambda: RolePermissionFactory(role=role, tenant=other))
    assert message.startswith(f"core.role_permissions: role {role.pk} belongs to tenant")
    global_role = RoleFactory(tenant=None)
    message = role_tenant_refusal(lambda: RolePermissionFactory(role=global_role, tenant=other))
    assert message == (
        f"core.role_permissions: role {global_role.pk} belongs to no tenant (a global role), "
        f"the row to tenant {other.pk}"
    )
    tenant_role = RoleFactory()
    message = role_tenant_refusal(lambda: RolePermissionFactory(role=tenant_role, tenant=None))
    assert message.endswith("the row to no tenant")


def test_a_tenant_cannot_grant_a_role_of_another_tenant_it_cannot_see():
    user, role = UserFactory(), RoleFactory()
    with tenant_context(user.tenant_id):
        message = role_tenant_refusal(lambda: UserRoleFactory(user=user, role=role))
    assert message == f"core.user_roles: role {role.pk} does not exist"


@pytest.mark.parametrize(
    ("field", "constraint"),
    [
        ("organization", "fk_user_roles_tenant_organization"),
        ("granted_by", "fk_user_roles_tenant_granted_by"),
    ],
)
def test_a_grant_cannot_point_into_another_tenant(field, constraint):
    user = UserFactory()
    stranger = OrganizationFactory() if field == "organization" else UserFactory()
    role = RoleFactory(tenant=user.tenant)
    values = {"user": user, "role": role, field: stranger}
    assert_reference_refused(lambda: UserRoleFactory(**values), constraint)


def test_a_grant_cannot_name_a_user_of_another_tenant():
    user, tenant = UserFactory(), TenantFactory()
    role = RoleFactory(tenant=None)
    assert_reference_refused(
        lambda: UserRoleFactory(user=user, tenant=tenant, role=role), "fk_user_roles_tenant_user"
    )


def test_the_triggers():
    def triggers(table):
        return set(
            query(
                "SELECT tgname, tgfoid::regproc::text FROM pg_trigger "
                "WHERE tgrelid = %s::regclass AND NOT tgisinternal",
                [table],
            )
        )

    assert triggers("core.permissions") == {
        ("trg_permissions_touch", "app.touch_row"),
        ("trg_permissions_audit", "ops.log_audit"),
    }
    assert triggers("core.roles") == {
        ("trg_roles_touch", "app.touch_row"),
        ("trg_roles_softdel", "app.soft_delete"),
        ("trg_roles_audit", "ops.log_audit"),
    }
    for stem in ("role_permissions", "user_roles"):
        assert triggers(f"core.{stem}") == {
            (f"trg_{stem}_touch", "app.touch_row"),
            (f"trg_{stem}_audit", "ops.log_audit"),
            (f"trg_{stem}_role_tenant", "core.check_role_tenant"),
        }


def test_purging_a_user_or_an_organization_removes_the_grants_and_empties_granted_by():
    organization = OrganizationFactory()
    granter, holder = (UserFactory(tenant=organization.tenant) for _ in range(2))
    role = RoleFactory(tenant=organization.tenant)
    given = UserRoleFactory(user=holder, role=role, granted_by=granter)
    held = UserRoleFactory(user=granter, role=role)
    scoped = UserRoleFactory(user=holder, role=role, organization=organization)
    purge(User.all_objects.filter(pk=granter.pk))
    assert not UserRole.objects.filter(pk=held.pk).exists()
    given.refresh_from_db()
    assert given.granted_by_id is None
    purge(Organization.all_objects.filter(pk=organization.pk))
    assert list(UserRole.objects.filter(user=holder)) == [given]
    assert not UserRole.objects.filter(pk=scoped.pk).exists()


# --- Isolation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "factory"),
    [(Role, RoleFactory), (RolePermission, RolePermissionFactory), (UserRole, UserRoleFactory)],
)
def test_a_tenant_sees_and_writes_only_its_own(model, factory):
    assert_tenant_isolated(model, factory(), factory(), writable=True)


def test_every_tenant_reads_the_global_roles_and_changes_none():
    role = RoleFactory(tenant=None)
    permission = RolePermissionFactory(role=role, tenant=None)
    tenant, another_permission = TenantFactory(), PermissionFactory()
    with tenant_context(tenant.pk):
        assert Role.objects.filter(pk=role.pk).exists()
        assert RolePermission.objects.filter(pk=permission.pk).exists()
        assert Role.objects.filter(pk=role.pk).update(name="Mine now") == 0
        assert run("DELETE FROM core.role_permissions WHERE id = %s", [permission.pk]) == 0
        assert run("DELETE FROM core.roles WHERE id = %s", [role.pk]) == 0
        for action in (
            lambda: RoleFactory(tenant=None),
            lambda: RolePermissionFactory(role=role, tenant=None, permission=another_permission),
        ):
            assert "row-level security" in refused(action).diag.message_primary
    role.refresh_from_db()
    assert (role.name, role.is_deleted) == (Role.objects.get(pk=role.pk).name, False)
    assert RolePermission.objects.filter(pk=permission.pk).exists()


def test_the_policies_of_the_shared_tables():
    for table in ("roles", "role_permissions"):
        assert query(
            "SELECT policyname, cmd, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'core' AND tablename = %s ORDER BY policyname",
            [table],
        ) == [
            (f"rls_{table}_shared", "SELECT", "(tenant_id IS NULL)", None),
            # The tenant read once per statement (hzm 0005).
            (
                f"rls_{table}_tenant",
                "ALL",
                "(tenant_id = ( SELECT app.current_tenant() AS current_tenant))",
                "(tenant_id = ( SELECT app.current_tenant() AS current_tenant))",
            ),
        ]


def test_the_runtime_role_only_reads_permissions():
    permission = PermissionFactory()
    with tenant_context(TenantFactory().pk):
        assert Permission.objects.filter(pk=permission.pk).exists()
        error = refused(lambda: Permission.objects.filter(pk=permission.pk).update(code="x.y"))
        assert error.diag.message_primary == "permission denied for table permissions"


# --- The default roles -------------------------------------------------------------------------


def test_the_default_rbac_fixture_loads_twice_without_duplicates():
    counts = []
    for _ in range(2):
        call_command("loaddata", "004_default_rbac", verbosity=0)
        counts.append(
            (Permission.objects.count(), Role.objects.count(), RolePermission.objects.count())
        )
    assert counts[0] == counts[1]
    assert counts[0][:2] == (28, 4)
    owner = Role.objects.get(code="owner", tenant=None)
    assert set(owner.permissions.values_list("code", flat=True)) == set(
        Permission.objects.values_list("code", flat=True)
    )


@pytest.mark.parametrize(
    ("role", "permission", "expected"),
    [
        ("owner", "billing.manage", True),
        ("admin", "billing.manage", False),
        ("admin", "roles.assign", True),
        ("member", "data.write", True),
        ("member", "users.manage", False),
        ("viewer", "data.read", True),
        ("viewer", "data.write", False),
    ],
)
def test_the_default_roles_grant_what_they_say(role, permission, expected):
    call_command("loaddata", "004_default_rbac", verbosity=0)
    user = UserFactory()
    UserRoleFactory(user=user, role=Role.objects.get(code=role, tenant=None))
    assert has_permission(user, permission) is expected


# --- Admin --------------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client):
    return sign_in_platform_admin(client)


def test_the_admin_pages_open(signed_in):
    role_permission = RolePermissionFactory()
    assert_admin_pages_open(signed_in, role_permission.permission)
    assert_admin_pages_open(signed_in, role_permission.role)
    assert_admin_pages_open(signed_in, UserRoleFactory())


def test_the_admin_refuses_a_grant_of_another_tenants_role(signed_in):
    user, role = UserFactory(), RoleFactory()
    response = signed_in.post("/admin/core/userrole/add/", {"user": user.pk, "role": role.pk})
    assert response.status_code == 200
    assert (
        f"role: {role} belongs to tenant {role.tenant_id}, not to tenant {user.tenant_id}"
    ) in response.content.decode()
    assert not UserRole.objects.filter(user=user).exists()


def test_the_admin_grants_a_global_role_in_the_users_tenant(signed_in):
    user, role = UserFactory(), RoleFactory(tenant=None)
    response = signed_in.post("/admin/core/userrole/add/", {"user": user.pk, "role": role.pk})
    assert response.status_code == 302
    assert UserRole.objects.get(user=user).tenant_id == user.tenant_id
