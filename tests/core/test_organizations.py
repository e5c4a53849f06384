"""core.organizations and core.organization_members: constraints, triggers, isolation, admin."""

import datetime
import re

import pytest
from django.db import IntegrityError, connection, transaction

from core.models import User
from core.organizations import Organization, OrganizationMember
from hzm.db.columns import purge
from hzm.db.context import sign_context
from ops.models import AuditLog
from tests.factories import TenantFactory, UserFactory
from tests.factories_platform import OrganizationFactory, OrganizationMemberFactory
from tests.platform_support import (
    assert_admin_pages_open,
    assert_reference_refused,
    assert_tenant_isolated,
    query,
    sign_in_platform_admin,
)
from tests.support import run

pytestmark = pytest.mark.django_db

JAN_1 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
JAN_2 = datetime.datetime(2030, 1, 2, tzinfo=datetime.UTC)


def triggers(table: str) -> set[tuple[str, str]]:
    return set(
        query(
            "SELECT tgname, tgfoid::regproc::text FROM pg_trigger "
            "WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [table],
        )
    )


def test_the_tables_have_the_touch_soft_delete_and_audit_triggers():
    for table, stem in (
        ("core.organizations", "organizations"),
        ("core.organization_members", "org_members"),
    ):
        assert triggers(table) == {
            (f"trg_{stem}_touch", "app.touch_row"),
            (f"trg_{stem}_softdel", "app.soft_delete"),
            (f"trg_{stem}_audit", "ops.log_audit"),
        }


# --- Organizations ---------------------------------------------------------------------------


def test_a_slug_is_unique_among_a_tenants_live_organizations():
    first = OrganizationFactory(slug="sales")
    with pytest.raises(IntegrityError, match="unique_organization_slug_per_tenant"):
        with transaction.atomic():
            OrganizationFactory(tenant=first.tenant, slug="sales")
    OrganizationFactory(slug="sales")  # another tenant's
    first.delete()
    assert first.is_deleted
    OrganizationFactory(tenant=first.tenant, slug="sales")  # the deleted one's slug is free


def test_delete_keeps_the_row_marked_by_the_context_user_and_audits_it():
    organization = OrganizationFactory()
    with connection.cursor() as cursor:
        sign_context(cursor, organization.tenant_id, 42)
    assert run("DELETE FROM core.organizations WHERE id = %s", [organization.pk]) == 0
    organization.refresh_from_db()
    assert (organization.is_deleted, organization.deleted_by) == (True, 42)
    actions = AuditLog.objects.filter(
        entity_type="core.organizations", entity_id=str(organization.pk)
    ).values_list("action", "tenant_id")
    assert list(actions.order_by("id")) == [
        ("INSERT", organization.tenant_id),
        ("UPDATE", organization.tenant_id),
    ]


def test_an_update_bumps_version_and_updated_at():
    organization = OrganizationFactory()
    run(
        "UPDATE core.organizations SET version = 7, updated_at = '2000-01-01' WHERE id = %s",
        [organization.pk],
    )
    organization.refresh_from_db()
    assert organization.version == 2
    assert organization.updated_at.year > 2000


def test_database_defaults():
    tenant = TenantFactory()
    [row] = query(
        "INSERT INTO core.organizations (tenant_id, name, slug) VALUES (%s, 'A', 'a') "
        "RETURNING settings::text, is_active, is_deleted, version",
        [tenant.pk],
    )
    assert row == ("{}", True, False, 1)


# --- Members ---------------------------------------------------------------------------------


def test_add_invite_and_accept():
    organization = OrganizationFactory()
    user, invitee = UserFactory(tenant=organization.tenant), UserFactory(tenant=organization.tenant)
    member = OrganizationMember.objects.add(organization, user, role="owner")
    invitation = OrganizationMember.objects.invite(organization, invitee, invited_by=user)
    assert member.has_joined and not invitation.has_joined
    assert list(OrganizationMember.objects.invited()) == [invitation]
    invitation.accept()
    invitation.refresh_from_db()
    assert invitation.joined_at >= invitation.invited_at
    assert set(organization.members.joined()) == {member, invitation}


def test_a_user_is_a_live_member_of_an_organization_once():
    member = OrganizationMemberFactory()
    again = {"organization": member.organization, "user": member.user}
    with pytest.raises(IntegrityError, match="unique_organization_member"), transaction.atomic():
        OrganizationMemberFactory(**again)
    member.delete()  # removed: soft-deleted, and can be added again
    OrganizationMemberFactory(**again)
    assert OrganizationMember.all_objects.filter(**again).count() == 2


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"joined_at": None, "invited_at": None}, "organization_members_invited_or_joined"),
        ({"role": "boss"}, "organization_members_role_check"),
        (
            {"invited_at": JAN_2, "joined_at": JAN_1},
            "organization_members_joined_after_invited",
        ),
    ],
)
def test_checks(values, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        OrganizationMemberFactory(**values)


def test_the_default_role_is_member():
    member = OrganizationMemberFactory()
    [(role,)] = query(
        "INSERT INTO core.organization_members (tenant_id, organization_id, user_id, joined_at) "
        "VALUES (%s, %s, %s, now()) RETURNING role",
        [
            member.tenant_id,
            member.organization_id,
            UserFactory(tenant=member.organization.tenant).pk,
        ],
    )
    assert role == "member"


@pytest.mark.parametrize(
    ("field", "constraint"),
    [
        ("organization", "fk_org_members_tenant_organization"),
        ("user", "fk_org_members_tenant_user"),
        ("invited_by", "fk_org_members_tenant_invited_by"),
    ],
)
def test_a_membership_cannot_point_into_another_tenant(field, constraint):
    organization = OrganizationFactory()
    stranger = {
        "organization": OrganizationFactory(),
        "user": UserFactory(),
        "invited_by": UserFactory(),
    }[field]
    values = {
        "organization": organization,
        "tenant": organization.tenant,
        "user": UserFactory(tenant=organization.tenant),
        "invited_at": datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
        field: stranger,
    }
    assert_reference_refused(lambda: OrganizationMemberFactory(**values), constraint)


# --- Isolation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "factory"),
    [(Organization, OrganizationFactory), (OrganizationMember, OrganizationMemberFactory)],
)
def test_a_tenant_sees_and_writes_only_its_own(model, factory):
    assert_tenant_isolated(model, factory(), factory(), writable=True)


# --- Admin -------------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client):
    return sign_in_platform_admin(client)


def organization_post(organization: Organization, **members: str) -> dict[str, str]:
    """The organization's change form as posted, with one inline member row."""
    return {
        "tenant": organization.tenant_id,
        "name": organization.name,
        "slug": organization.slug,
        "settings": "{}",
        "is_active": "true",
        "members-TOTAL_FORMS": "1",
        "members-INITIAL_FORMS": "0",
        "members-0-joined_at_0": "2030-01-01",
        "members-0-joined_at_1": "10:00:00",
        **{f"members-0-{name}": value for name, value in members.items()},
    }


def test_the_admin_pages_open(signed_in):
    member = OrganizationMemberFactory()
    assert_admin_pages_open(signed_in, member.organization)


def test_the_admin_refuses_a_member_of_another_tenant(signed_in):
    organization = OrganizationFactory()
    stranger = UserFactory()
    response = signed_in.post(
        f"/admin/core/organization/{organization.pk}/change/",
        organization_post(organization, user=stranger.pk, role="member"),
    )
    assert response.status_code == 200
    assert (
        f"user: {stranger} belongs to tenant {stranger.tenant_id}, not to tenant "
        f"{organization.tenant_id}"
    ) in response.content.decode()
    assert not OrganizationMember.objects.filter(user=stranger).exists()


def test_the_admin_adds_a_member_with_the_organizations_tenant(signed_in):
    organization = OrganizationFactory()
    user = UserFactory(tenant=organization.tenant)
    response = signed_in.post(
        f"/admin/core/organization/{organization.pk}/change/",
        organization_post(organization, user=user.pk, role="admin"),
    )
    assert response.status_code == 302, re.findall(
        r"errorlist.*?</ul>", response.content.decode(), re.S
    )
    member = OrganizationMember.objects.get(user=user)
    assert (member.tenant_id, member.role) == (organization.tenant_id, "admin")


# --- Purging (the only hard delete) --------------------------------------------------------------


def test_purging_a_user_removes_their_memberships_and_empties_invited_by():
    inviter = UserFactory()
    member = OrganizationMemberFactory(
        user=UserFactory(tenant=inviter.tenant),
        organization=OrganizationFactory(tenant=inviter.tenant),
        tenant=inviter.tenant,
        invited_by=inviter,
        invited_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
    )
    other = OrganizationMemberFactory(organization=member.organization, user=inviter)
    purge(User.all_objects.filter(pk=inviter.pk))
    assert not OrganizationMember.all_objects.filter(pk=other.pk).exists()
    member.refresh_from_db()
    assert (member.invited_by_id, member.tenant_id) == (None, inviter.tenant_id)


def test_purging_an_organization_removes_its_memberships():
    member = OrganizationMemberFactory()
    purge(Organization.all_objects.filter(pk=member.organization_id))
    assert not OrganizationMember.all_objects.filter(pk=member.pk).exists()
