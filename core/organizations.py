"""Schema core, guide's 002: organizations inside a tenant and their members.

A tenant (the customer) groups its users into organizations (teams, departments,
client companies). Membership says who belongs and how far they may manage the
membership itself; what a member may do is RBAC's (core.rbac): a role granted for an
organization counts only while its holder is a joined member of it.
"""

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from hzm.db import fields
from hzm.db.columns import (
    ACTIVE_AND_LIVE,
    LIVE,
    Authored,
    LiveManager,
    SoftDeletable,
    SoftDeleteQuerySet,
    Versioned,
    jsonb_default,
)


class Organization(Versioned, SoftDeletable, Authored):
    """core.organizations: a group of a tenant's users, named by a slug unique in the tenant.

    Columns: name, slug (unique among the tenant's live organizations, so a deleted
    one's slug can be reused), description, settings (jsonb), is_active; version,
    timestamps and soft delete as every core entity. Touch, soft-delete and audit
    triggers; row level security by tenant.
    """

    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, db_index=False)
    description = models.TextField(null=True, blank=True)
    settings = models.JSONField(null=True, blank=True, db_default=jsonb_default("{}"))
    is_active = models.BooleanField(null=True, db_default=True)

    class Meta:
        db_table = 'core"."organizations'
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "slug"],
                condition=LIVE,
                name="unique_organization_slug_per_tenant",
            ),
            # Target of the composite foreign keys that keep references within a tenant.
            models.UniqueConstraint(fields=["tenant", "id"], name="organizations_tenant_id_id_key"),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_organizations_tenant"),
            models.Index(
                fields=["tenant"], name="idx_organizations_active", condition=ACTIVE_AND_LIVE
            ),
        ]

    def __str__(self) -> str:
        return self.name


MEMBER_ROLES = [
    ("owner", "Owner"),  # manages the organization and its members, owners included
    ("admin", "Admin"),  # manages members
    ("member", "Member"),
]


class OrganizationMemberQuerySet(SoftDeleteQuerySet):
    def joined(self) -> "OrganizationMemberQuerySet":
        """Members who accepted (joined_at set); invitations still open are left out."""
        return self.filter(joined_at__isnull=False)

    def invited(self) -> "OrganizationMemberQuerySet":
        """Invitations not accepted yet."""
        return self.filter(joined_at__isnull=True)

    def add(self, organization: Organization, user: Any, role: str = "member") -> Any:
        """Make `user` a member of `organization` now, without an invitation."""
        return self.create(
            tenant_id=organization.tenant_id,
            organization=organization,
            user=user,
            role=role,
            joined_at=timezone.now(),
        )

    def invite(
        self, organization: Organization, user: Any, invited_by: Any = None, role: str = "member"
    ) -> Any:
        """Invite `user` to `organization`; the membership starts when accept() is called."""
        return self.create(
            tenant_id=organization.tenant_id,
            organization=organization,
            user=user,
            role=role,
            invited_by=invited_by,
            invited_at=timezone.now(),
        )


class OrganizationMember(Versioned, SoftDeletable, Authored):
    """core.organization_members: a user's membership of an organization, or an invitation to it.

    Columns: organization, user, role (owner, admin or member: who manages the
    membership, not what the member may do, which RBAC decides), invited_at and
    invited_by for an invitation, joined_at once it is accepted (or at once for a
    member added directly); a row is an invitation or a membership, never neither.
    One live row per (organization, user); removing a member soft-deletes the row,
    so the history stays and the user can be invited again.
    """

    tenant = fields.ForeignKey("core.Tenant", db_on_delete=fields.CASCADE, related_name="+")
    organization = fields.ForeignKey(
        Organization, db_on_delete=fields.CASCADE, related_name="members"
    )
    user = fields.ForeignKey(
        "core.User", db_on_delete=fields.CASCADE, related_name="organization_memberships"
    )
    role = models.CharField(max_length=20, choices=MEMBER_ROLES, db_default="member")
    invited_by = fields.ForeignKey(
        "core.User",
        db_column="invited_by",
        db_on_delete=fields.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    invited_at = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(null=True, blank=True)

    objects = LiveManager.from_queryset(OrganizationMemberQuerySet)()
    all_objects = models.Manager.from_queryset(OrganizationMemberQuerySet)()

    class Meta:
        db_table = 'core"."organization_members'
        ordering = ["organization", "user"]
        constraints = [
            # tenant_id first, as in every unique key of a tenant table here: a duplicate
            # is looked for among the tenant's own rows only, so a refusal never tells
            # anything about another tenant's.
            models.UniqueConstraint(
                fields=["tenant", "organization", "user"],
                condition=LIVE,
                name="unique_organization_member",
            ),
            models.CheckConstraint(
                condition=Q(role__in=[value for value, _label in MEMBER_ROLES]),
                name="organization_members_role_check",
            ),
            models.CheckConstraint(
                condition=Q(invited_at__isnull=False) | Q(joined_at__isnull=False),
                name="organization_members_invited_or_joined",
            ),
            models.CheckConstraint(
                condition=Q(joined_at__isnull=True)
                | Q(invited_at__isnull=True)
                | Q(joined_at__gte=models.F("invited_at")),
                name="organization_members_joined_after_invited",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant"], name="idx_org_members_tenant"),
            models.Index(fields=["organization"], name="idx_org_members_org"),
            models.Index(fields=["user"], name="idx_org_members_user"),
            models.Index(fields=["invited_by"], name="idx_org_members_invited_by"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} in organization {self.organization_id} ({self.role})"

    @property
    def has_joined(self) -> bool:
        return self.joined_at is not None

    def accept(self) -> None:
        """Accept the invitation: the membership starts now."""
        if self.joined_at is None:
            self.joined_at = timezone.now()
            self.save(update_fields=["joined_at"])
