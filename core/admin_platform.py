"""Admin of core's organizations and RBAC (the guide's 002 and 003).

Registered when core/admin.py imports this module:
    from core import admin_platform  # noqa: E402,F401
Image variants have no admin: the image pipeline makes them again from the file.
Rows that must share a tenant (a member and its organization, a grant's user, role and
organization) are checked here with a message naming the field; the database refuses
them anyway (composite foreign keys, trg_*_role_tenant).
"""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, Q

from core.organizations import Organization, OrganizationMember
from core.rbac import Permission, Role, RolePermission, UserRole
from hzm.admin import PlatformModelAdmin, SoftDeleteAdminMixin

RECORD = ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by")


def other_tenant_error(field: str, obj: Any, tenant_id: int | None) -> str:
    return f"{field}: {obj} belongs to tenant {obj.tenant_id}, not to tenant {tenant_id}"


class InheritTenantMixin:
    """Inline rows take their parent's tenant, which the inline form does not show."""

    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            if hasattr(inline_form.instance, "tenant_id") and form.instance.tenant_id:
                inline_form.instance.tenant_id = form.instance.tenant_id
        super().save_formset(request, form, formset, change)


# --- Organizations ---------------------------------------------------------------------------


class OrganizationMemberForm(forms.ModelForm):
    class Meta:
        model = OrganizationMember
        fields = ("user", "role", "invited_at", "joined_at")

    def clean(self) -> dict:
        cleaned = super().clean()
        user, organization = cleaned.get("user"), self.instance.organization
        if user is not None and user.tenant_id != organization.tenant_id:
            self.add_error("user", other_tenant_error("user", user, organization.tenant_id))
        if cleaned.get("invited_at") is None and cleaned.get("joined_at") is None:
            self.add_error("joined_at", "joined_at: a member has joined, or has been invited")
        return cleaned


class OrganizationMemberInline(admin.TabularInline):
    model = OrganizationMember
    form = OrganizationMemberForm
    fk_name = "organization"
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(InheritTenantMixin, SoftDeleteAdminMixin, PlatformModelAdmin):
    list_display = ("name", "slug", "tenant", "is_active", "members")
    list_filter = ("is_active",)
    search_fields = ("name", "slug", "tenant__name")
    raw_id_fields = ("tenant",)
    readonly_fields = RECORD
    inlines = [OrganizationMemberInline]

    def get_queryset(self, request):
        live = Q(members__is_deleted=False, members__joined_at__isnull=False)
        return super().get_queryset(request).annotate(member_count=Count("members", filter=live))

    @admin.display(description="members", ordering="member_count")
    def members(self, obj: Organization) -> int:
        return obj.member_count


# --- RBAC -------------------------------------------------------------------------------------


@admin.register(Permission)
class PermissionAdmin(PlatformModelAdmin):
    list_display = ("code", "description")
    search_fields = ("code", "description")
    readonly_fields = ("version", "created_at", "updated_at")


class RolePermissionInline(admin.TabularInline):
    model = RolePermission
    fields = ("permission",)
    extra = 0


@admin.register(Role)
class RoleAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    list_display = ("code", "name", "scope")
    list_filter = (("tenant", admin.EmptyFieldListFilter),)
    search_fields = ("code", "name", "tenant__name")
    raw_id_fields = ("tenant",)
    readonly_fields = RECORD
    inlines = [RolePermissionInline]

    @admin.display(description="scope", ordering="tenant")
    def scope(self, obj: Role) -> str:
        return "global" if obj.tenant_id is None else str(obj.tenant)


class UserRoleForm(forms.ModelForm):
    class Meta:
        model = UserRole
        fields = ("user", "role", "organization", "granted_by", "expires_at")

    def clean(self) -> dict:
        cleaned = super().clean()
        user = cleaned.get("user")
        if user is None:
            return cleaned
        for name in ("organization", "granted_by"):
            other = cleaned.get(name)
            if other is not None and other.tenant_id != user.tenant_id:
                self.add_error(name, other_tenant_error(name, other, user.tenant_id))
        role = cleaned.get("role")
        if role is not None and role.tenant_id not in (None, user.tenant_id):
            self.add_error("role", other_tenant_error("role", role, user.tenant_id))
        return cleaned


@admin.register(UserRole)
class UserRoleAdmin(PlatformModelAdmin):
    form = UserRoleForm
    list_display = ("user", "role", "organization", "expires_at")
    list_filter = ("role",)
    search_fields = ("user__email", "role__code")
    raw_id_fields = ("user", "role", "organization", "granted_by")
    readonly_fields = ("version", "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        obj.tenant_id = obj.user.tenant_id  # a grant belongs to its user's tenant
        super().save_model(request, obj, form, change)
