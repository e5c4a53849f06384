"""Admin of core: tenants (branding, locale, currencies, plan, limits, features, settings).

Platform users sign in here (User.is_staff follows their role); Django's groups are
not used (permissions come from the role), so their admin is removed.
"""

import zoneinfo
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AdminURLFieldWidget
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator, validate_slug
from django.utils.translation import gettext_lazy as _

from cfg.models import Currency, Language
from core.models import SignInFailure, Tenant
from hzm.admin import PlatformModelAdmin, SoftDeleteAdminMixin

COLOUR_FIELDS = ("primary_color", "secondary_color")
COUNT_FIELDS = ("max_projects", "max_tables_per_project", "max_records")
JSON_FIELDS = ("features", "limits", "settings")

# The tenant page, section by section; RECORD is kept by the database's triggers.
SECTIONS = (
    (None, ("name", "slug", "domain", "is_active")),
    (_("Branding"), ("logo_url", "favicon_url", *COLOUR_FIELDS)),
    (
        _("Locale"),
        (
            "default_language",
            "supported_languages",
            "timezone",
            "date_format",
            "time_format",
            "decimal_separator",
            "thousands_separator",
        ),
    ),
    (_("Currencies"), ("default_currency", "supported_currencies", "auto_convert_currency")),
    (_("Plan"), ("plan", "subscription_status", "trial_ends_at", "subscription_ends_at")),
    (_("Limits"), (*COUNT_FIELDS, "limits")),
    (_("Features and settings"), ("features", "settings")),
)
EDITABLE = tuple(name for _title, names in SECTIONS for name in names)
RECORD = ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by")


def require_object(field: str, value: Any) -> dict:
    """`value` if it is a JSON object; the error names the field and what it got instead."""
    if not isinstance(value, dict):
        kind = _("an array") if isinstance(value, list) else f"{type(value).__name__} {value!r}"
        raise ValidationError(
            _('%(field)s: expected a JSON object such as {"key": "value"}, got %(kind)s')
            % {"field": field, "kind": kind},
            code="not_an_object",
        )
    return value


def require_limits(value: Any) -> dict:
    """A JSON object whose every value is a whole number of at least 0."""
    require_object("limits", value)
    errors = [
        ValidationError(
            _("limits: %(key)r must be a whole number of at least 0, got %(amount)r")
            % {"key": key, "amount": amount},
            code="invalid_limit",
        )
        for key, amount in value.items()
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0
    ]
    if errors:
        raise ValidationError(errors)
    return value


def keep_stored_order(stored: list[str] | None, chosen: list[str]) -> list[str]:
    """`chosen` in the order `stored` has them, the newly chosen after them.

    A multiple choice field returns its choices in the page's order, not the row's:
    without this, saving [en, tr, de, fr] unchanged would store [de, en, fr, tr].
    """
    kept = [code for code in stored or [] if code in chosen]
    return kept + [code for code in chosen if code not in kept]


def url_field() -> forms.URLField:
    # Declared, not generated: Django 5.2's generated URLField warns about its default scheme.
    return forms.URLField(
        max_length=500,
        required=False,
        empty_value=None,
        assume_scheme="https",
        widget=AdminURLFieldWidget,
    )


class TenantForm(forms.ModelForm):
    """The tenant as the admin edits it; every rule names the field it refuses."""

    logo_url = url_field()
    favicon_url = url_field()

    supported_languages = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": _("supported_languages: %(value)r is not in cfg.languages")
        },
    )
    supported_currencies = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "invalid_choice": _("supported_currencies: %(value)r is not in cfg.currencies")
        },
    )

    class Meta:
        model = Tenant
        fields = EDITABLE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields = self.fields
        fields["supported_languages"].choices = [
            (language.code, str(language)) for language in Language.objects.all()
        ]
        fields["supported_currencies"].choices = [
            (currency.code, f"{currency.code} {currency.name or ''}".strip())
            for currency in Currency.objects.all()
        ]
        for name, table in (("default_language", "languages"), ("default_currency", "currencies")):
            if name in fields:
                fields[name].error_messages["invalid_choice"] = _(
                    "%(field)s: that code is not in cfg.%(table)s"
                ) % {"field": name, "table": table}
        if "slug" in fields:
            fields["slug"].validators = [
                RegexValidator(
                    validate_slug.regex,
                    _("slug: use only letters, digits, hyphens and underscores, got %(value)r"),
                    code="invalid_slug",
                )
            ]
        for name in COLOUR_FIELDS:
            if name in fields:
                fields[name].validators.append(
                    RegexValidator(
                        r"^#[0-9A-Fa-f]{6}\Z",
                        _("%(field)s: expected a colour as #RRGGBB (e.g. #1A73E8), got %%(value)r")
                        % {"field": name},
                        code="invalid_colour",
                    )
                )
        for name in JSON_FIELDS:
            if name in fields:
                fields[name].required = False
                fields[name].error_messages["invalid"] = _(
                    "%(field)s: not valid JSON: %%(value)s"
                ) % {"field": name}
        for name in COUNT_FIELDS:
            if name in fields:
                fields[name].validators.append(
                    MinValueValidator(
                        0,
                        _("%(field)s: must be at least 0, got %%(show_value)s") % {"field": name},
                    )
                )

    def _json_object(self, name: str) -> Any:
        """The field's JSON, {} when left empty (Django's required check would refuse {})."""
        value = self.cleaned_data.get(name)
        if value is None and not str(self.data.get(self.add_prefix(name)) or "").strip():
            return {}
        return value

    def clean_supported_languages(self) -> list[str]:
        stored = self.instance.supported_languages if self.instance.pk else None
        return keep_stored_order(stored, self.cleaned_data["supported_languages"])

    def clean_supported_currencies(self) -> list[str]:
        stored = self.instance.supported_currencies if self.instance.pk else None
        return keep_stored_order(stored, self.cleaned_data["supported_currencies"])

    def clean_features(self) -> dict:
        return require_object("features", self._json_object("features"))

    def clean_settings(self) -> dict:
        return require_object("settings", self._json_object("settings"))

    def clean_limits(self) -> dict:
        return require_limits(self._json_object("limits"))

    def clean_timezone(self) -> str:
        value = self.cleaned_data["timezone"]
        if value not in zoneinfo.available_timezones():
            raise ValidationError(
                _("timezone: %(value)r is not an IANA time zone (e.g. UTC, Europe/Istanbul)")
                % {"value": value},
                code="invalid_timezone",
            )
        return value

    def clean(self) -> dict:
        cleaned = super().clean()
        for default, supported in (
            ("default_language", "supported_languages"),
            ("default_currency", "supported_currencies"),
        ):
            chosen, allowed = cleaned.get(default), cleaned.get(supported)
            if chosen is not None and allowed is not None and chosen.pk not in allowed:
                self.add_error(
                    default,
                    _("%(field)s: %(value)r must be one of the %(list)s (%(allowed)s)")
                    % {
                        "field": default,
                        "value": chosen.pk,
                        "list": supported,
                        "allowed": ", ".join(allowed),
                    },
                )
        separators = cleaned.get("decimal_separator"), cleaned.get("thousands_separator")
        if separators[0] and separators[0] == separators[1]:
            self.add_error(
                "thousands_separator",
                _("thousands_separator: must differ from decimal_separator (%(value)r)")
                % {"value": separators[0]},
            )
        return cleaned


@admin.register(Tenant)
class TenantAdmin(SoftDeleteAdminMixin, PlatformModelAdmin):
    form = TenantForm
    # Short cells (codes, a date), so that every column fits a 1,280 px screen.
    list_display = (
        "name",
        "slug",
        "plan",
        "status",
        "is_active",
        "is_deleted",
        "language",
        "currency",
        "created",
    )
    list_filter = ("plan", "subscription_status", "is_active")
    search_fields = ("name", "slug", "domain")
    readonly_fields = RECORD
    fieldsets = (
        *((title, {"fields": names}) for title, names in SECTIONS),
        (_("Record"), {"classes": ("collapse",), "fields": RECORD}),
    )

    @admin.display(description=_("status"), ordering="subscription_status")
    def status(self, obj: Tenant) -> str:
        return obj.subscription_status or "-"

    @admin.display(description=_("language"), ordering="default_language")
    def language(self, obj: Tenant) -> str:
        return obj.default_language_id or "-"

    @admin.display(description=_("currency"), ordering="default_currency")
    def currency(self, obj: Tenant) -> str:
        return obj.default_currency_id or "-"

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: Tenant) -> str:
        return f"{obj.created_at:%Y-%m-%d}" if obj.created_at else "-"


@admin.register(SignInFailure)
class SignInFailureAdmin(PlatformModelAdmin):
    """The tenants' sign-in lock-outs (core/sign_in_throttle.py): listed, never edited here.

    Deleting a row unlocks that email from that address at once (otherwise the lock-out
    ends by itself after AXES_COOLOFF_MINUTES). The admin's role may read and delete the
    rows (core 0009), nothing else.
    """

    list_display = ("email", "ip_address", "failures", "last_failure", "locked_until")
    search_fields = ("email", "ip_address")
    ordering = ("-last_failure",)
    date_hierarchy = "last_failure"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


admin.site.unregister(Group)


# The guide's 002/003 (organizations and RBAC), and onboarding (tenant users, projects,
# API keys).
from core import admin_onboarding, admin_platform  # noqa: E402,F401
