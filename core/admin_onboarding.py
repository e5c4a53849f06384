"""Admin of a tenant's users, projects and API keys, for platform staff (onboarding).

Registered when core/admin.py imports this module. What these pages never show: password
hashes, the email verification token, an API key's hash or ciphertext, a project's
api_key and api_key_password; no form, list or page has those fields.

- Tenant users: add (with an optional password, else an unusable one), change, soft
  delete and restore. A platform admin's role is only for users of the platform tenant.
- Projects: an owner of the project's tenant, a name unique among its live projects, at
  most the tenant's max_projects.
- API keys: issuing (the add page) shows the new key once, on the page that answers the
  save (never through a message, which would be stored in the session), with
  Cache-Control: no-store. Keys are revoked, with a reason, never deleted: the action
  "Revoke selected API keys" and the key's own "Revoke" link ask for the reason first.
  The lists show each key's use (last used, requests, errors) as counted so far.
"""

import secrets
import zoneinfo
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.api_keys import (
    KeySettingError,
    parse_allowed_domains,
    parse_allowed_ips,
    parse_scopes,
    revoke,
    with_usage,
)
from core.models import PLATFORM_ADMIN_ROLE, PLATFORM_TENANT_SLUG, ApiKey, Project, User
from core.onboarding import ROLE
from hzm.admin import PlatformModelAdmin, SoftDeleteAdminMixin

RECORD = ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by")


# --- Tenant users ------------------------------------------------------------------------------


class TenantUserForm(forms.ModelForm):
    """A user as platform staff edit it; the password is set here, never shown."""

    new_password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="At least 8 characters. Leave empty to keep the password (a new user "
        "without one can use API keys but not sign in).",
    )

    class Meta:
        model = User
        fields = ("tenant", "email", "name", "role", "phone", "timezone", "is_active")

    def clean_role(self) -> str:
        role = (self.cleaned_data.get("role") or "user").strip()
        if not ROLE.match(role):
            raise ValidationError(
                f"role: lower-case letters, digits and _ (user, admin, member), got {role!r}"
            )
        return role

    def clean_timezone(self) -> str:
        value = self.cleaned_data.get("timezone") or "UTC"
        if value not in zoneinfo.available_timezones():
            raise ValidationError(f"timezone: {value!r} is not an IANA time zone (e.g. UTC)")
        return value

    def clean_new_password(self) -> str:
        password = self.cleaned_data.get("new_password") or ""
        if password and len(password) < 8:
            raise ValidationError("new_password: at least 8 characters")
        return password

    def clean(self) -> dict:
        cleaned = super().clean()
        tenant, role = cleaned.get("tenant"), cleaned.get("role")
        if role == PLATFORM_ADMIN_ROLE and tenant is not None:
            if tenant.slug != PLATFORM_TENANT_SLUG:
                self.add_error(
                    "role",
                    f"role: {PLATFORM_ADMIN_ROLE} is only for users of the platform tenant "
                    f"({PLATFORM_TENANT_SLUG!r}), not of {tenant.slug!r}",
                )
        return cleaned

    def save(self, commit: bool = True) -> User:
        user = super().save(commit=False)
        password = self.cleaned_data.get("new_password")
        if password:
            user.set_password(password)
        elif user._state.adding:
            user.set_unusable_password()
        if commit:
            user.save()
        return user


@admin.register(User)
class TenantUserAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    form = TenantUserForm
    list_display = ("email", "name", "tenant", "role", "is_active", "is_deleted", "last_login")
    list_filter = ("role", "is_active")
    search_fields = ("email", "name", "tenant__name", "tenant__slug")
    list_select_related = ("tenant",)
    raw_id_fields = ("tenant",)
    readonly_fields = ("last_login", "login_count", "email_verified", "phone_verified", *RECORD)
    fieldsets = (
        (None, {"fields": ("tenant", "email", "name", "role", "is_active")}),
        ("Password", {"fields": ("new_password",)}),
        ("Contact", {"fields": ("phone", "timezone", "email_verified", "phone_verified")}),
        ("Sign-ins", {"fields": ("last_login", "login_count")}),
        ("Record", {"classes": ("collapse",), "fields": RECORD}),
    )


# --- Projects ----------------------------------------------------------------------------------


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ("tenant", "user", "name", "description", "template_type", "is_active")
        labels = {"user": "owner"}

    def clean(self) -> dict:
        cleaned = super().clean()
        tenant, owner = cleaned.get("tenant"), cleaned.get("user")
        if tenant is None:
            return cleaned
        if owner is not None and owner.tenant_id != tenant.pk:
            self.add_error(
                "user",
                f"owner: {owner} belongs to tenant {owner.tenant_id}, not to {tenant.slug!r}",
            )
        if self.instance._state.adding and tenant.max_projects is not None:
            live = Project.objects.filter(tenant=tenant, is_deleted=False).count()
            if live >= tenant.max_projects:
                self.add_error(
                    "tenant",
                    f"tenant: {tenant.slug!r} has {live} projects, its limit (max_projects "
                    f"{tenant.max_projects}); raise the limit on the tenant's page first",
                )
        return cleaned

    def save(self, commit: bool = True) -> Project:
        project = super().save(commit=False)
        if project._state.adding and not project.api_key:
            # The guide's projects.api_key: a unique random value, never shown; API keys
            # are core.api_keys.
            project.api_key = secrets.token_urlsafe(32)
        if commit:
            project.save()
        return project


@admin.register(Project)
class ProjectAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    form = ProjectForm
    list_display = ("name", "tenant", "user", "is_active", "is_deleted", "keys", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "tenant__name", "tenant__slug", "user__email")
    list_select_related = ("tenant", "user")
    raw_id_fields = ("tenant", "user")
    readonly_fields = ("api_keys_of_project", *RECORD)
    fieldsets = (
        (None, {"fields": ("tenant", "user", "name", "description", "template_type")}),
        ("Status", {"fields": ("is_active", "api_keys_of_project")}),
        ("Record", {"classes": ("collapse",), "fields": RECORD}),
    )

    def get_queryset(self, request):
        live = Q(api_keys__revoked_at__isnull=True)
        return super().get_queryset(request).annotate(key_count=Count("api_keys", filter=live))

    @admin.display(description="API keys", ordering="key_count")
    def keys(self, obj: Project) -> int:
        return obj.key_count

    @admin.display(description="API keys")
    def api_keys_of_project(self, obj: Project) -> str:
        if obj.pk is None:
            return "-"
        keys = ApiKey.objects.filter(project=obj).order_by("name")
        issue = format_html(
            '<a href="{}?project={}">Issue a key for this project</a>',
            reverse("admin:core_apikey_add"),
            obj.pk,
        )
        if not keys:
            return format_html("none yet. {}", issue)
        links = format_html_join(
            ", ",
            '<a href="{}">{} ({})</a>',
            (
                (reverse("admin:core_apikey_change", args=[quote(k.pk)]), k.name, k.key_prefix)
                for k in keys
            ),
        )
        return format_html("{}. {}", links, issue)


# --- API keys ----------------------------------------------------------------------------------


class KeySettingsField(forms.CharField):
    """A list of a key (scopes, networks, origins) as comma- or line-separated text."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 60})

    def __init__(self, parse: Any, **kwargs: Any) -> None:
        self.parse = parse
        super().__init__(required=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def clean(self, value: Any) -> list[str]:
        try:
            return self.parse(super().clean(value))
        except KeySettingError as error:
            raise ValidationError(str(error)) from None


def settings_fields() -> dict[str, forms.Field]:
    return {
        "scopes": KeySettingsField(
            parse_scopes,
            help_text="read (rows, definitions, queries, search), write (create, change, "
            "delete rows), define (create, alter, drop tables); verb:table for one table "
            "(read:products). Empty: every verb.",
        ),
        "allowed_ips": KeySettingsField(
            parse_allowed_ips,
            help_text="Client addresses or networks (203.0.113.7, 10.0.0.0/8). Empty: any.",
        ),
        "allowed_domains": KeySettingsField(
            parse_allowed_domains,
            help_text="Browser origins, checked against the Origin header: app.example.com, "
            "*.example.com, https://app.example.com:8443. With any, requests without an "
            "Origin are refused. Empty: any.",
        ),
    }


LIMIT_HELP = "Requests let through per {}; empty: no limit."


class ApiKeySettingsForm(forms.ModelForm):
    """What a key may do: scopes, addresses, origins, limits, expiry."""

    rate_limit_per_minute = forms.IntegerField(
        required=False, min_value=1, help_text=LIMIT_HELP.format("minute (UTC clock minute)")
    )
    rate_limit_per_day = forms.IntegerField(
        required=False, min_value=1, help_text=LIMIT_HELP.format("UTC day")
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in settings_fields().items():
            if name in self.fields:
                field.label = self.fields[name].label
                self.fields[name] = field

    def clean_expires_at(self) -> Any:
        when = self.cleaned_data.get("expires_at")
        changed = "expires_at" in self.changed_data
        if when is not None and changed and when <= timezone.now():
            raise ValidationError("expires_at: must be in the future")
        return when


class ApiKeyIssueForm(ApiKeySettingsForm):
    class Meta:
        model = ApiKey
        fields = (
            "user",
            "project",
            "name",
            "scopes",
            "allowed_ips",
            "allowed_domains",
            "rate_limit_per_minute",
            "rate_limit_per_day",
            "expires_at",
        )
        help_texts = {
            "user": "The tenant user the key acts as; the key belongs to that user's tenant.",
            "project": "The project the key opens; empty: every project of the tenant.",
        }

    def clean(self) -> dict:
        cleaned = super().clean()
        user, project = cleaned.get("user"), cleaned.get("project")
        if user is not None and project is not None and project.tenant_id != user.tenant_id:
            self.add_error(
                "project",
                f"project: {project} belongs to tenant {project.tenant_id}, not to the user's "
                f"tenant {user.tenant_id}",
            )
        if project is not None and project.is_deleted:
            self.add_error("project", f"project: {project} is deleted")
        if user is not None and user.is_platform_admin:
            self.add_error("user", "user: platform staff have no tenant data; pick a tenant user")
        return cleaned


class ApiKeyChangeForm(ApiKeySettingsForm):
    class Meta:
        model = ApiKey
        fields = (
            "name",
            "is_active",
            "scopes",
            "allowed_ips",
            "allowed_domains",
            "rate_limit_per_minute",
            "rate_limit_per_day",
            "expires_at",
        )


class RevokeForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why the key is revoked; kept with the key.",
        error_messages={"required": "reason: say why the key is revoked"},
    )


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request, model_admin):
        return [("no", "Not revoked"), ("yes", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


SETTINGS = (
    "scopes",
    "allowed_ips",
    "allowed_domains",
    "rate_limit_per_minute",
    "rate_limit_per_day",
    "expires_at",
)


@admin.register(ApiKey)
class ApiKeyAdmin(PlatformModelAdmin):
    list_display = (
        "name",
        "key_prefix",
        "tenant",
        "project",
        "user",
        "scopes_shown",
        "status",
        "last_used",
        "requests",
        "errors",
    )
    list_filter = (RevokedFilter, "is_active")
    search_fields = ("name", "key_prefix", "tenant__name", "tenant__slug", "user__email")
    list_select_related = ("tenant", "project", "user")
    raw_id_fields = ("user", "project")
    actions = ["revoke_selected"]
    readonly_fields = (
        "key_prefix",
        "tenant",
        "project",
        "user",
        "last_used",
        "requests",
        "errors",
        "revocation",
        "version",
        "created_at",
        "updated_at",
    )
    add_fieldsets = (
        (None, {"fields": ("user", "project", "name")}),
        ("What the key may do", {"fields": SETTINGS}),
    )
    change_fieldsets = (
        (None, {"fields": ("name", "key_prefix", "tenant", "project", "user", "is_active")}),
        ("What the key may do", {"fields": SETTINGS}),
        ("Use", {"fields": ("last_used", "requests", "errors")}),
        ("Revocation", {"fields": ("revocation",)}),
        ("Record", {"classes": ("collapse",), "fields": ("version", "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return with_usage(super().get_queryset(request))

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = ApiKeyChangeForm if obj is not None else ApiKeyIssueForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return self.change_fieldsets if obj is not None else self.add_fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.revoked_at is not None:  # a revoked key is kept as it was
            return (*self.readonly_fields, "name", "is_active", *SETTINGS)
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked, never deleted: the key's record stays

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # Issuing: the key is shown once, on the page that answers the save.

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        obj.tenant_id = obj.user.tenant_id
        request._hzm_issued_key = obj.set_new_key()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(request, "_hzm_issued_key", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key issued",
            "subtitle": str(obj),
            "opts": self.opts,
            "original": obj,
            "plaintext": plaintext,
            "change_url": reverse("admin:core_apikey_change", args=[quote(obj.pk)]),
            "changelist_url": reverse("admin:core_apikey_changelist"),
        }
        response = TemplateResponse(request, "admin/core/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        project = request.GET.get("project")
        if project and project.isdigit():
            found = Project.objects.filter(pk=int(project)).first()
            if found is not None:
                initial.update(project=found.pk, user=found.user_id)
        initial["scopes"] = ["read", "write", "define"]
        return initial

    # Revoking, with a reason.

    def get_urls(self):
        view = self.admin_site.admin_view(self.revoke_view)
        return [
            path("<path:object_id>/revoke/", view, name="core_apikey_revoke"),
            *super().get_urls(),
        ]

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        done = reverse("admin:core_apikey_change", args=[quote(obj.pk)])
        return self._revoke(request, ApiKey.objects.filter(pk=obj.pk), done, single=True)

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request, queryset):
        return self._revoke(request, queryset, None, single=False)

    def _revoke(self, request, queryset, done: str | None, *, single: bool) -> HttpResponse | None:
        keys = list(queryset.order_by("name"))
        live = [key for key in keys if key.revoked_at is None]
        form = RevokeForm(request.POST if "confirm" in request.POST else None)
        if form.is_valid():
            with self.audited(request):
                for key in live:
                    revoke(key, form.cleaned_data["reason"], request.user.pk)
            self.message_user(
                request, f"Revoked {len(live)} API key(s): they no longer work.", messages.SUCCESS
            )
            return HttpResponseRedirect(done) if done else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Revoke API keys",
            "subtitle": None,
            "opts": self.opts,
            "form": form,
            "keys": live,
            "already": [key for key in keys if key.revoked_at is not None],
            "single": single,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": done or reverse("admin:core_apikey_changelist"),
        }
        return TemplateResponse(request, "admin/core/apikey/revoke.html", context)

    # What the lists and pages show.

    @admin.display(description="scopes")
    def scopes_shown(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes or []) or "every verb"

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return "expired"
        return "active" if obj.is_active else "inactive"

    @admin.display(description="last used", ordering="live_last_used_at")
    def last_used(self, obj: ApiKey) -> Any:
        return getattr(obj, "live_last_used_at", obj.last_used_at) or "never"

    @admin.display(description="requests", ordering="live_total_requests")
    def requests(self, obj: ApiKey) -> int:
        return getattr(obj, "live_total_requests", obj.total_requests or 0)

    @admin.display(description="errors", ordering="live_total_errors")
    def errors(self, obj: ApiKey) -> int:
        return getattr(obj, "live_total_errors", obj.total_errors or 0)

    @admin.display(description="revoked")
    def revocation(self, obj: ApiKey) -> str:
        if obj.revoked_at is None:
            url = reverse("admin:core_apikey_revoke", args=[quote(obj.pk)])
            return format_html('not revoked. <a href="{}">Revoke this key…</a>', url)
        by = User.all_objects.filter(pk=obj.revoked_by).first() if obj.revoked_by else None
        return format_html(
            "at {} by {}: {}",
            obj.revoked_at.isoformat(timespec="seconds"),
            by or "a command (revoke_api_key)",
            obj.revoke_reason or "",
        )
