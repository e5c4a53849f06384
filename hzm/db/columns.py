"""Column groups the platform's tables share, as abstract models.

Defaults are database defaults (db_default), so rows written by raw SQL or another
client get them too. Nullability follows the seed: its bookkeeping columns have a
DEFAULT but no NOT NULL.
"""

from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Cast

from hzm.db.expressions import Now


def text_array_default(*values: str) -> Cast:
    """A text[] database default written as the seed writes it: '{en}'::text[]."""
    from django.contrib.postgres.fields import ArrayField

    literal = "{" + ",".join(values) + "}"
    return Cast(Value(literal), ArrayField(models.TextField()))


def jsonb_default(literal: str) -> Cast:
    """A jsonb database default written as the seed writes it: '{}'::jsonb."""
    return Cast(Value(literal), models.JSONField())


# Partial-index conditions spelled as the seed spells them (is_deleted = false), so
# the index definitions match the seed's to the letter.
LIVE = Q(is_deleted=Value(False))
ACTIVE = Q(is_active=Value(True))
ACTIVE_AND_LIVE = Q(ACTIVE, LIVE)


class Versioned(models.Model):
    """version, created_at, updated_at: app.touch_row bumps version and updated_at."""

    version = models.IntegerField(null=True, db_default=1)
    created_at = models.DateTimeField(null=True, db_default=Now())
    updated_at = models.DateTimeField(null=True, db_default=Now())

    class Meta:
        abstract = True


class SoftDeletable(models.Model):
    """is_deleted, deleted_at, deleted_by: app.soft_delete turns DELETE into these."""

    is_deleted = models.BooleanField(null=True, db_default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.IntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class Authored(models.Model):
    """created_by, updated_by: ids of the users who wrote the row (no foreign key in the seed)."""

    created_by = models.IntegerField(null=True, blank=True)
    updated_by = models.IntegerField(null=True, blank=True)

    class Meta:
        abstract = True
