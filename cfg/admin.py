"""Admin of cfg: languages, currencies, exchange rates and translations.

cfg keeps no foreign keys into core (a translation's tenant is a plain id), so the
admin looks tenants up by id, through the app registry, to show and check them.
"""

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db.models import OuterRef, Q, Subquery
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV, XLSX

from cfg.models import Currency, ExchangeRate, Language, Translation
from cfg.resources import TranslationResource
from hzm.admin import (
    CompositeKeyAdmin,
    CompositeKeyForm,
    PlatformAdminMixin,
    PlatformModelAdmin,
)

LANGUAGE_CODE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*\Z"
CURRENCY_CODE = r"^[A-Z]{3}\Z"
DIRECTIONS = [("ltr", _("left to right (ltr)")), ("rtl", _("right to left (rtl)"))]


def tenant_model() -> Any:
    return apps.get_model("core", "Tenant")


def unknown_code_message(field: str, table: str) -> str:
    return _("%(field)s: that code is not in cfg.%(table)s") % {"field": field, "table": table}


class CodedAdmin(PlatformModelAdmin):
    """Languages and currencies: the code is the primary key, so it is fixed once saved
    (a changed key would insert a new row), and a code still in use cannot be deleted."""

    # The core.tenants array column that lists codes of this model without a foreign key.
    tenant_array_field: str

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return (*readonly, "code") if obj is not None else readonly

    def protected_rows(self, objs: list[Any]) -> list[str]:
        rows = super().protected_rows(objs)
        codes = [obj.pk for obj in objs]
        lookup = {f"{self.tenant_array_field}__overlap": codes}
        rows.extend(
            f"Tenant: {tenant} ({self.tenant_array_field})"
            for tenant in tenant_model()._base_manager.filter(**lookup).order_by("name")
        )
        return rows


# --- Languages and currencies -------------------------------------------------------


class LanguageForm(forms.ModelForm):
    direction = forms.ChoiceField(
        choices=DIRECTIONS,
        error_messages={"invalid_choice": _("direction: expected ltr or rtl, got %(value)r")},
    )

    class Meta:
        model = Language
        fields = ("code", "name", "native_name", "direction", "is_active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "code" in self.fields:
            self.fields["code"].validators.append(
                RegexValidator(
                    LANGUAGE_CODE,
                    _("code: expected a language code such as 'en' or 'pt-BR', got %(value)r"),
                    code="invalid_code",
                )
            )


@admin.register(Language)
class LanguageAdmin(CodedAdmin):
    form = LanguageForm
    list_display = ("code", "name", "native_name", "direction", "is_active")
    list_filter = ("direction", "is_active")
    search_fields = ("code", "name", "native_name")
    tenant_array_field = "supported_languages"


class CurrencyForm(forms.ModelForm):
    class Meta:
        model = Currency
        fields = ("code", "name", "symbol", "decimal_digits", "is_active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "code" in self.fields:
            self.fields["code"].validators.append(
                RegexValidator(
                    CURRENCY_CODE,
                    _("code: expected an ISO 4217 code of three capital letters, got %(value)r"),
                    code="invalid_code",
                )
            )
        self.fields["decimal_digits"].required = True
        self.fields["decimal_digits"].validators.append(
            MinValueValidator(0, _("decimal_digits: must be at least 0, got %(show_value)s"))
        )


@admin.register(Currency)
class CurrencyAdmin(CodedAdmin):
    form = CurrencyForm
    list_display = ("code", "name", "symbol", "decimal_digits", "is_active")
    list_filter = ("is_active",)
    search_fields = ("code", "name")
    tenant_array_field = "supported_currencies"


# --- Exchange rates -----------------------------------------------------------------


class ExchangeRateForm(CompositeKeyForm):
    class Meta:
        model = ExchangeRate
        fields = ("from_currency", "to_currency", "rate_date", "rate")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("from_currency", "to_currency"):
            if name in self.fields:
                self.fields[name].error_messages["invalid_choice"] = unknown_code_message(
                    name, "currencies"
                )
        self.fields["rate"].required = True

    def clean_rate(self) -> Decimal:
        rate = self.cleaned_data["rate"]
        if rate is not None and rate <= 0:
            raise ValidationError(
                _("rate: must be greater than 0, got %(rate)s") % {"rate": rate},
                code="not_positive",
            )
        return rate

    def clean(self) -> dict:
        cleaned = super().clean()
        source = cleaned.get("from_currency", self.instance.from_currency_id)
        target = cleaned.get("to_currency", self.instance.to_currency_id)
        source_code = getattr(source, "pk", source)
        if source_code is not None and source_code == getattr(target, "pk", target):
            self.add_error(
                "to_currency" if "to_currency" in self.fields else None,
                _("to_currency: must differ from from_currency (%(code)s)") % {"code": source_code},
            )
        return cleaned


@admin.register(ExchangeRate)
class ExchangeRateAdmin(CompositeKeyAdmin):
    form = ExchangeRateForm
    fields = ("from_currency", "to_currency", "rate_date", "rate")
    list_display = ("rate_date", "from_currency", "to_currency", "rate")
    list_display_links = ("rate_date",)
    list_filter = ("from_currency", "to_currency")
    date_hierarchy = "rate_date"


# --- Translations -------------------------------------------------------------------


def missing_translation_keys(
    rows: Iterable[tuple[str, str]], languages: Iterable[str]
) -> dict[str, list[str]]:
    """For each language, the keys some language has and it lacks: rows are (language, key)."""
    present: dict[str, set[str]] = defaultdict(set)
    for language, key in rows:
        if key:
            present[language].add(key)
    every_key = set().union(*present.values()) if present else set()
    return {language: sorted(every_key - present[language]) for language in languages}


class TenantScopeFilter(admin.SimpleListFilter):
    """Global rows (tenant_id NULL) or one tenant's overrides."""

    title = _("tenant")
    parameter_name = "tenant"
    GLOBAL = "global"

    def lookups(self, request, model_admin):
        used = Translation.objects.exclude(tenant_id=None).values("tenant_id")
        tenants = tenant_model()._base_manager.filter(pk__in=used).order_by("name")
        return [(self.GLOBAL, _("Global (every tenant)"))] + [
            (str(tenant.pk), str(tenant)) for tenant in tenants
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.GLOBAL:
            return queryset.filter(tenant_id=None)
        if value:
            try:
                return queryset.filter(tenant_id=int(value))
            except ValueError:
                return queryset.none()
        return queryset


class TranslationForm(forms.ModelForm):
    tenant_id = forms.TypedChoiceField(
        label=_("Tenant"),
        coerce=int,
        empty_value=None,
        required=False,
        help_text=_("Empty for a global translation; a tenant's row overrides the global one."),
        error_messages={"invalid_choice": _("tenant_id: %(value)r is not a tenant")},
    )

    class Meta:
        model = Translation
        fields = ("tenant_id", "language", "translation_key", "translation_value")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenant_id"].choices = [("", _("— global (every tenant) —"))] + [
            (tenant.pk, f"{tenant} ({tenant.slug})")
            for tenant in tenant_model()._base_manager.order_by("name")
        ]
        self.fields["language"].error_messages["invalid_choice"] = unknown_code_message(
            "language", "languages"
        )

    def clean(self) -> dict:
        cleaned = super().clean()
        # The table's unique constraint treats NULLs as distinct, so it lets two global
        # rows share a language and key; refuse that here.
        language, key = cleaned.get("language"), cleaned.get("translation_key")
        if cleaned.get("tenant_id") is None and language is not None and key:
            twins = Translation.objects.filter(
                tenant_id=None, language=language, translation_key=key
            )
            if self.instance.pk is not None:
                twins = twins.exclude(pk=self.instance.pk)
            if twins.exists():
                self.add_error(
                    "translation_key",
                    _(
                        "translation_key: a global translation of %(key)r in %(language)r "
                        "already exists"
                    )
                    % {"key": key, "language": language.pk},
                )
        return cleaned


def import_rows(result: Any) -> list[dict[str, Any]]:
    """Every row of an import that failed to validate, in file order, with its outcome.

    django-import-export's page lists only the invalid rows then, with their reasons in a
    hover box; this is each row, good or bad, and each bad row's errors as text.
    """
    invalid = {row.number: row for row in result.invalid_rows}
    rows = []
    for number, row_result in enumerate(result.rows, start=1):
        bad = invalid.get(number)
        outcome = "invalid" if bad is not None else row_result.import_type
        rows.append(
            {
                "number": number,
                "outcome": outcome,
                "label": IMPORT_OUTCOMES.get(outcome, outcome),
                "errors": [str(e) for errors in bad.error_dict.values() for e in errors]
                if bad is not None
                else [],
                "values": bad.values if bad is not None else row_result.diff or [],
            }
        )
    return rows


IMPORT_OUTCOMES = {
    "invalid": _("Error"),
    "new": _("New"),
    "update": _("Update"),
    "skip": _("Unchanged"),
    "delete": _("Delete"),
}


@admin.register(Translation)
class TranslationAdmin(PlatformAdminMixin, ImportExportMixin, admin.ModelAdmin):
    form = TranslationForm
    resource_classes = [TranslationResource]
    formats = [CSV, XLSX]
    change_list_template = "admin/cfg/translation/change_list.html"
    import_template_name = "admin/cfg/translation/import.html"

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        result = (getattr(response, "context_data", None) or {}).get("result")
        if result is not None and result.has_validation_errors():
            response.context_data["every_row"] = import_rows(result)
        return response
    list_display = ("translation_key", "language", "scope", "translation_value")
    list_filter = ("language", TenantScopeFilter)
    search_fields = ("translation_key", "translation_value")
    ordering = ("translation_key", "language")

    def get_queryset(self, request):
        tenants = tenant_model()._base_manager.filter(pk=OuterRef("tenant_id"))
        return (
            super().get_queryset(request).annotate(tenant_name=Subquery(tenants.values("name")[:1]))
        )

    @admin.display(description=_("scope"), ordering="tenant_id")
    def scope(self, obj: Translation) -> str:
        if obj.tenant_id is None:
            return _("global")
        return getattr(obj, "tenant_name", None) or _("tenant %(id)s") % {"id": obj.tenant_id}

    def get_urls(self):
        missing = path(
            "missing/",
            self.admin_site.admin_view(self.missing_keys_view),
            name="cfg_translation_missing",
        )
        return [missing, *super().get_urls()]

    def missing_keys_view(self, request):
        """The keys each active language lacks, globally or as one tenant sees them."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        tenants = tenant_model()._base_manager.order_by("name")
        tenant = None
        if request.GET.get("tenant", "").isdigit():
            tenant = tenants.filter(pk=int(request.GET["tenant"])).first()
        scope = Q(tenant_id=None) | Q(tenant_id=tenant.pk) if tenant else Q(tenant_id=None)
        rows = Translation.objects.filter(scope).values_list("language_id", "translation_key")
        languages = Language.objects.exclude(is_active=False)
        missing = missing_translation_keys(rows, [language.code for language in languages])
        add_url = reverse("admin:cfg_translation_add", current_app=self.admin_site.name)
        report = [
            {
                "language": language,
                "keys": [
                    (
                        key,
                        add_url
                        + "?"
                        + urlencode(
                            {"language": language.code, "translation_key": key}
                            | ({"tenant_id": tenant.pk} if tenant else {})
                        ),
                    )
                    for key in missing[language.code]
                ],
            }
            for language in languages
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": _("Missing translation keys"),
            "subtitle": str(tenant) if tenant else _("global"),
            "opts": self.opts,
            "report": report,
            "tenants": tenants,
            "tenant": tenant,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/cfg/translation/missing_keys.html", context)


# The guide's 011: feature flags.
from cfg import admin_flags  # noqa: E402,F401
