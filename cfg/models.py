"""Schema cfg: platform-wide reference data (languages, currencies, rates, translations)."""

from django.db import models

from hzm.db import fields
from hzm.db.columns import WritesOnlyChanges


class Language(WritesOnlyChanges):
    """cfg.languages: a language the platform can show (ISO code, names, text direction)."""

    code = models.CharField(max_length=10, primary_key=True)
    name = models.CharField(max_length=100, null=True, blank=True)
    native_name = models.CharField(max_length=100, null=True, blank=True)
    direction = models.CharField(max_length=3, null=True, db_default="ltr")
    is_active = models.BooleanField(null=True, db_default=True)

    class Meta:
        db_table = 'cfg"."languages'
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})" if self.name else self.code


class Currency(WritesOnlyChanges):
    """cfg.currencies: an ISO 4217 currency with its symbol and decimal digits."""

    code = models.CharField(max_length=3, primary_key=True)
    name = models.CharField(max_length=100, null=True, blank=True)
    symbol = models.CharField(max_length=10, null=True, blank=True)
    decimal_digits = models.IntegerField(null=True, db_default=2)
    is_active = models.BooleanField(null=True, db_default=True)

    class Meta:
        db_table = 'cfg"."currencies'
        ordering = ["code"]
        verbose_name_plural = "currencies"

    def __str__(self) -> str:
        return self.code


class ExchangeRate(models.Model):
    """cfg.exchange_rates: the rate from one currency to another on a date."""

    pk = models.CompositePrimaryKey("from_currency", "to_currency", "rate_date")
    from_currency = fields.ForeignKey(
        Currency, db_column="from_currency", related_name="rates_from"
    )
    to_currency = fields.ForeignKey(Currency, db_column="to_currency", related_name="rates_to")
    rate = models.DecimalField(max_digits=20, decimal_places=6, null=True)
    rate_date = models.DateField()

    class Meta:
        db_table = 'cfg"."exchange_rates'
        ordering = ["-rate_date", "from_currency", "to_currency"]

    def __str__(self) -> str:
        return f"{self.from_currency_id}->{self.to_currency_id} {self.rate} on {self.rate_date}"


class Translation(models.Model):
    """cfg.translations: a translated string, global (tenant_id NULL) or a tenant's override."""

    id = models.BigAutoField(primary_key=True)
    # The seed keeps cfg free of foreign keys into core: the tenant is a plain id.
    tenant_id = models.IntegerField(null=True, blank=True)
    language = fields.ForeignKey(Language, db_column="language_code", null=True)
    translation_key = models.CharField(max_length=200, null=True)
    translation_value = models.TextField(null=True, blank=True)

    class Meta:
        db_table = 'cfg"."translations'
        constraints = [
            # NULLS NOT DISTINCT (PostgreSQL 15): one global row (tenant_id NULL) per
            # language and key too, which the seed's plain UNIQUE let through.
            models.UniqueConstraint(
                fields=["tenant_id", "language", "translation_key"],
                name="translations_tenant_id_language_code_translation_key_key",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.language_id}:{self.translation_key}"


# The guide's 011: feature flags (cfg.flags).
from cfg import flags  # noqa: E402,F401
