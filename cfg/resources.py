"""django-import-export resources of cfg: translations as CSV or XLSX.

A row is identified by (tenant_id, language, translation_key), as the table's unique
constraint is, so importing a file again updates its rows instead of adding copies.
Every bad value is a row error that names the column and the value.
"""

from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from import_export import fields, resources, widgets

from cfg.models import Language, Translation


class CodeWidget(widgets.ForeignKeyWidget):
    """A foreign key written as the target's code; an unknown code is a row error."""

    def __init__(self, model: Any, column: str) -> None:
        super().__init__(model, field="code")
        self.column = column

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> Any:
        try:
            return super().clean(value, row, **kwargs)
        except self.model.DoesNotExist:
            table = self.model._meta.db_table.replace('"', "")
            raise ValidationError(
                {self.column: f"{self.column}: {value!r} is not in {table}"}
            ) from None


class TenantIdWidget(widgets.IntegerWidget):
    """A tenant's id, or empty for a global row; an unknown or malformed id is a row error."""

    def clean(self, value: Any, row: Any = None, **kwargs: Any) -> int | None:
        try:
            tenant_id = super().clean(value, row, **kwargs)
        except (TypeError, ValueError, ArithmeticError):  # Decimal("abc"): InvalidOperation
            raise ValidationError(
                {"tenant_id": f"tenant_id: expected a tenant's id or nothing, got {value!r}"}
            ) from None
        if tenant_id is not None:
            tenant_model = apps.get_model("core", "Tenant")
            if not tenant_model._base_manager.filter(pk=tenant_id).exists():
                raise ValidationError({"tenant_id": f"tenant_id: no tenant has id {tenant_id}"})
        return tenant_id


class TranslationResource(resources.ModelResource):
    tenant_id = fields.Field(
        attribute="tenant_id", column_name="tenant_id", widget=TenantIdWidget()
    )
    language = fields.Field(
        attribute="language", column_name="language", widget=CodeWidget(Language, "language")
    )

    class Meta:
        model = Translation
        fields = ("tenant_id", "language", "translation_key", "translation_value")
        export_order = ("tenant_id", "language", "translation_key", "translation_value")
        import_id_fields = ("tenant_id", "language", "translation_key")
        clean_model_instances = True
        use_transactions = True
        skip_unchanged = True
        report_skipped = True
