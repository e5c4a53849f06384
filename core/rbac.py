"""Schema core, guide's 003: role-based access control.

- core.permissions: the platform's catalogue of permission codes ("projects.create"),
  global, defined by the platform (code checks them by name), read-only to tenants.
- core.roles: a named set of permissions; global (tenant_id NULL: the default roles
  of the fixture 004_default_rbac, offered to every tenant) or a tenant's own.
- core.role_permissions: which permissions a role has; global for a global role,
  the tenant's for its own roles.
- core.user_roles: a role granted to a user, for the whole tenant (organization
  NULL) or for one organization, optionally until a date.

The answer to "may user U do P (in organization O)?" is one SQL function,
app.has_permission(), so the database and Python agree; has_permission() below
calls it. It runs as the caller, so row level security applies: inside a tenant
context only that tenant's grants count.
"""

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.models import Q

from hzm.db import fields
from hzm.db.columns import LIVE, Authored, LiveManager, SoftDeletable, Versioned

PERMISSION_CODE = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z"
ROLE_CODE = r"^[a-z][a-z0-9_]*\Z"


class PermissionManager(models.Manager):
    def get_by_natural_key(self, code: str) -> "Permission":
        return self.get(code=code)


class Permission(Versioned):
    """core.permissions: a permission code (<area>.<action>, e.g. projects.create) and its meaning.

    Global: no tenant column, written by platform staff (fixture, admin), read by
    everyone. Touch and audit triggers; code is the natural key.
    """

    code = models.CharField(max_length=100)
    description = models.TextField(null=True, blank=True)

    objects = PermissionManager()

    class Meta:
        db_table = 'core"."permissions'
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="permissions_code_key"),
            models.CheckConstraint(
                condition=Q(code__regex=PERMISSION_CODE), name="permissions_code_format"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def natural_key(self) -> tuple[str]:
        return (self.code,)


class RoleManager(LiveManager):
    def get_by_natural_key(self, code: str, tenant_slug: str | None = None) -> "Role":
        """A role by code, global if `tenant_slug` is None; deleted ones too, as fixtures need."""
        roles = self.model.all_objects.db_manager(self.db)
        if tenant_slug is None:
            return roles.get(code=code, tenant__isnull=True)
        return roles.get(code=code, tenant__slug=tenant_slug)


class Role(Versioned, SoftDeletable, Authored):
    """core.roles: a named set of permissions, global (tenant_id NULL) or a tenant's own.

    Columns: code (unique per tenant among live roles, and among global roles),
    name, description. Every tenant reads the global roles and its own (a tenant
    policy, and a read-only one for the global rows) and writes only its own. Touch,
    soft-delete and audit triggers; a soft-deleted role grants nothing. Natural key:
    (code, tenant slug).
    """

    tenant = fields.ForeignKey(
        "core.Tenant", db_on_delete=fields.CASCADE, null=True, blank=True, related_name="+"
    )
    code = models.CharField(max_length=50)
    name = models.CharField(max_length=100)
    description = models.TextField(null=True, blank=True)
    permissions = models.ManyToManyField(
        Permission, through="RolePermission", related_name="roles", blank=True
    )

    objects = RoleManager()

    class Meta:
        db_table = 'core"."roles'
        ordering = ["code"]
        constraints = [
            # NULLS NOT DISTINCT: two global roles cannot share a code either.
            models.UniqueConstraint(
                fields=["tenant", "code"],
                condition=LIVE,
                nulls_distinct=False,
                name="unique_role_code_per_tenant",
            ),
            models.CheckConstraint(condition=Q(code__regex=ROLE_CODE), name="roles_code_format"),
        ]
        indexes = [models.Index(fields=["tenant"], name="idx_roles_tenant")]

    def __str__(self) -> str:
        return self.name if self.tenant_id is None else f"{self.name} (tenant {self.tenant_id})"

    def natural_key(self) -> tuple[str, str | None]:
        return (self.code, self.tenant.slug if self.tenant_id is not None else None)

    natural_key.dependencies = ["core.tenant"]


class RolePermissionManager(models.Manager):
    def get_by_natural_key(
        self, role_code: str, tenant_slug: str | None, permission_code: str
    ) -> "RolePermission":
        role = Role.objects.db_manager(self.db).get_by_natural_key(role_code, tenant_slug)
        return self.get(role=role, permission__code=permission_code)


class RolePermission(Versioned):
    """core.role_permissions: a permission a role has.

    tenant_id is the role's tenant (NULL for a global role), and the database refuses
    any other value (trg_role_permissions_role_tenant), so a tenant reads the
    permissions of the global roles and writes only its own roles'. One row per
    (role, permission). Touch and audit triggers; no soft delete (taking a permission
    away deletes the row, which is audited). Adding through the many-to-many field
    needs the tenant: role.permissions.add(p, through_defaults={"tenant": role.tenant}).
    """

    tenant = fields.ForeignKey(
        "core.Tenant", db_on_delete=fields.CASCADE, null=True, blank=True, related_name="+"
    )
    role = fields.ForeignKey(Role, db_on_delete=fields.CASCADE, related_name="+")
    permission = fields.ForeignKey(Permission, db_on_delete=fields.CASCADE, related_name="+")

    objects = RolePermissionManager()

    class Meta:
        db_table = 'core"."role_permissions'
        constraints = [
            # With tenant_id (NULLS NOT DISTINCT for the global roles' rows): a duplicate
            # is found among the tenant's own rows, never another tenant's.
            models.UniqueConstraint(
                fields=["tenant", "role", "permission"],
                nulls_distinct=False,
                name="unique_role_permission",
            )
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_role_permissions_tenant"),
            models.Index(fields=["role"], name="idx_role_permissions_role"),
            models.Index(fields=["permission"], name="idx_role_permissions_perm"),
        ]

    def __str__(self) -> str:
        return f"role {self.role_id} may {self.permission_id}"

    def natural_key(self) -> tuple[str, str | None, str]:
        return (*self.role.natural_key(), self.permission.code)

    natural_key.dependencies = ["core.role", "core.permission"]


class UserRole(Versioned):
    """core.user_roles: a role granted to a user, tenant-wide or for one organization.

    Columns: user, role (a global role or one of the user's tenant's, which the
    database checks: trg_user_roles_role_tenant), organization (NULL: the whole
    tenant), granted_by, expires_at (NULL: no end). One row per (user, role,
    organization). An organization grant counts only while the user is a joined,
    live member of that organization. Touch and audit triggers; revoking deletes.
    """

    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    user = fields.ForeignKey("core.User", db_on_delete=fields.CASCADE, related_name="user_roles")
    role = fields.ForeignKey(Role, db_on_delete=fields.CASCADE, related_name="user_roles")
    organization = fields.ForeignKey(
        "core.Organization",
        db_on_delete=fields.CASCADE,
        null=True,
        blank=True,
        related_name="user_roles",
    )
    granted_by = fields.ForeignKey(
        "core.User",
        db_column="granted_by",
        db_on_delete=fields.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = 'core"."user_roles'
        constraints = [
            # NULLS NOT DISTINCT: a tenant-wide grant (organization NULL) is unique too.
            models.UniqueConstraint(
                fields=["tenant", "user", "role", "organization"],
                nulls_distinct=False,
                name="unique_user_role",
            )
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_user_roles_tenant"),
            models.Index(fields=["user"], name="idx_user_roles_user"),
            models.Index(fields=["role"], name="idx_user_roles_role"),
            models.Index(fields=["organization"], name="idx_user_roles_organization"),
            models.Index(fields=["granted_by"], name="idx_user_roles_granted_by"),
        ]

    def __str__(self) -> str:
        where = f" in organization {self.organization_id}" if self.organization_id else ""
        return f"user {self.user_id} has role {self.role_id}{where}"


def has_permission(
    user: Any,
    permission: str,
    organization: Any = None,
    *,
    using: str = DEFAULT_DB_ALIAS,
) -> bool:
    """Whether `user` has `permission` (a code), in `organization` if given.

    Users and organizations may be given as instances or ids. Answered by the
    database (app.has_permission), under the caller's role and tenant context.
    """
    user_id = getattr(user, "pk", user)
    organization_id = getattr(organization, "pk", organization)
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT app.has_permission(%s, %s, %s)", [user_id, permission, organization_id]
        )
        return bool(cursor.fetchone()[0])
