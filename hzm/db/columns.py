"""Column groups the platform's tables share, as abstract models, with their behaviour.

Defaults are database defaults (db_default), so rows written by raw SQL or another
client get them too. Nullability follows the seed: its bookkeeping columns have a
DEFAULT but no NOT NULL.

The triggers do the work; these classes make the ORM agree with them:
- Versioned: app.touch_row bumps `version` on every UPDATE; save() uses it to refuse
  a stale write (optimistic concurrency) instead of silently losing an update.
- WritesOnlyChanges (Versioned includes it): loaddata's save of a row that exists
  writes only the columns the fixture names whose value differs, and nothing at all
  when none does, so reloading reference data bumps no version, resets no created_at
  and writes no audit row.
- SoftDeletable: app.soft_delete turns DELETE into is_deleted = true; the default
  manager hides deleted rows, `all_objects` shows them, restore() brings one back.
"""

from typing import Any

from django.db import models, router, transaction
from django.db.models import Q, Value
from django.db.models.expressions import DatabaseDefault
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


class StaleObjectError(Exception):
    """A save() found the row changed since it was read (its version moved on)."""


# Set by hzm.db.fixtures' deserializer on each object it builds: the attnames of the
# fields its fixture entry names.
FIXTURE_FIELDS = "_hzm_fixture_fields"


def written_fields(instance: models.Model, stored: models.Model) -> list[str]:
    """The fields a raw (fixture) save of `instance` must write over the row `stored`.

    Only the fields the fixture names (all of them if it is not known), never one left
    to its database default (created_at, version: a DatabaseDefault marker), and only
    those whose value differs from the stored one.
    """
    named = getattr(instance, FIXTURE_FIELDS, None)
    return [
        field.attname
        for field in instance._meta.local_concrete_fields
        if not field.primary_key
        and not field.generated
        and (named is None or field.attname in named)
        and not isinstance(getattr(instance, field.attname), DatabaseDefault)
        and getattr(instance, field.attname) != getattr(stored, field.attname)
    ]


class WritesOnlyChanges(models.Model):
    """A raw save (loaddata) of an existing row writes only what the fixture changes.

    Django's loaddata UPDATEs every column of every fixture object, so reloading the
    same fixture would bump each row's version, set created_at to its database default
    again and write an audit row per row. Here the stored row is read first (after the
    pre_save signals, which may keep a stored value, as core.signals does for a
    password), and only written_fields() are updated; nothing, when none differs.
    """

    class Meta:
        abstract = True

    def _save_table(
        self,
        raw=False,
        cls=None,
        force_insert=False,
        force_update=False,
        using=None,
        update_fields=None,
    ):
        model = cls or type(self)
        if raw and update_fields is None and not force_insert and not model._meta.is_composite_pk:
            pk = self._get_pk_val(model._meta)
            stored = None if pk is None else model._base_manager.using(using).filter(pk=pk).first()
            if stored is not None:
                changed = written_fields(self, stored)
                if not changed:
                    return True  # the row exists as the fixture has it: an update of nothing
                update_fields = changed
        return super()._save_table(raw, cls, force_insert, force_update, using, update_fields)


class Versioned(WritesOnlyChanges):
    """version, created_at, updated_at: app.touch_row bumps version and updated_at."""

    version = models.IntegerField(null=True, db_default=1)
    created_at = models.DateTimeField(null=True, db_default=Now())
    updated_at = models.DateTimeField(null=True, db_default=Now())

    class Meta:
        abstract = True

    def _do_update(self, base_qs, using, pk_val, values, update_fields, forced_update):
        """UPDATE ... WHERE pk = %s AND version = <the version this instance read>."""
        expected = self.version
        # No version read (a new instance, or loaddata's raw save of a fixture row that
        # leaves it to the database default): nothing to compare against.
        if not isinstance(expected, int) or not values:
            return super()._do_update(base_qs, using, pk_val, values, update_fields, forced_update)
        if base_qs.filter(pk=pk_val, version=expected)._update(values) > 0:
            # The trigger set version = old + 1 and a new updated_at: take the one,
            # and defer the other so it is read from the row when next used.
            self.version = expected + 1
            self.__dict__.pop("updated_at", None)
            return True
        current = base_qs.filter(pk=pk_val).values_list("version", flat=True).first()
        if current is None:
            return False  # the row is gone: Django goes on to INSERT, as for any model
        raise StaleObjectError(
            f"{self._meta.db_table.replace(chr(34), '')} row {pk_val} was changed by someone "
            f"else: this copy has version {expected}, the database has version {current}; "
            "reload it and apply the change again"
        )


class SoftDeleteQuerySet(models.QuerySet):
    def delete(self) -> tuple[int, dict[str, int]]:
        """Soft-delete the rows: a plain DELETE, which the trigger turns into a mark.

        Django's collector is skipped on purpose: it would cascade in Python (e.g. to
        the admin log) what the database keeps, since the row stays.
        """
        count = self.count()
        self._raw_delete(self.db)
        return count, {self.model._meta.label: count} if count else {}

    def restore(self) -> int:
        """Bring soft-deleted rows back."""
        return self.update(is_deleted=False, deleted_at=None, deleted_by=None)


class LiveManager(models.Manager.from_queryset(SoftDeleteQuerySet)):
    """Rows not soft-deleted: the default manager of soft-delete models."""

    def get_queryset(self) -> SoftDeleteQuerySet:
        return super().get_queryset().filter(LIVE)


AllRowsManager = models.Manager.from_queryset(SoftDeleteQuerySet)


class SoftDeletable(models.Model):
    """is_deleted, deleted_at, deleted_by: app.soft_delete turns DELETE into these."""

    is_deleted = models.BooleanField(null=True, db_default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.IntegerField(null=True, blank=True)

    objects = LiveManager()
    all_objects = AllRowsManager()

    class Meta:
        abstract = True

    def delete(self, using: str | None = None, keep_parents: bool = False) -> tuple[int, Any]:
        """Soft-delete this row; the instance then shows is_deleted, deleted_at, deleted_by."""
        using = using or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            count, per_model = type(self).all_objects.using(using).filter(pk=self.pk).delete()
            self.refresh_from_db(using=using, fields=["is_deleted", "deleted_at", "deleted_by"])
        return count, per_model

    def restore(self, using: str | None = None) -> None:
        """Undo a soft delete of this row."""
        using = using or router.db_for_write(type(self), instance=self)
        type(self).all_objects.using(using).filter(pk=self.pk).restore()
        self.is_deleted, self.deleted_at, self.deleted_by = False, None, None
        if isinstance(self, Versioned):
            self.__dict__.pop("version", None)
            self.__dict__.pop("updated_at", None)


class Authored(models.Model):
    """created_by, updated_by: ids of the users who wrote the row (no foreign key in the seed)."""

    created_by = models.IntegerField(null=True, blank=True)
    updated_by = models.IntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class PurgeNotAllowed(PermissionError):
    """A hard delete was asked for by a role that does not own the table."""


def purge(queryset: models.QuerySet, *, actor_id: int | None = None) -> int:
    """Delete rows of a soft-delete table for real: the only hard-delete path.

    Allowed only to the table's owner (app.soft_delete checks it in the database too,
    so the runtime role cannot purge even by setting app.purge itself) and audited:
    the real DELETE fires the audit trigger, with `actor_id` as the actor. Rows that
    reference the purged ones by ON DELETE CASCADE are purged with them.
    """
    from django.db import connections

    using = queryset.db
    model = queryset.model
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT pg_catalog.pg_has_role(current_user, relowner, 'USAGE') "
            "FROM pg_catalog.pg_class WHERE oid = %s::regclass",
            [f'"{model._meta.db_table}"'],  # 'core"."users' -> '"core"."users"'
        )
        if not cursor.fetchone()[0]:
            raise PurgeNotAllowed(
                f"purging {model._meta.db_table.replace(chr(34), '')} needs its owner; "
                "the current role may only soft-delete"
            )
        cursor.execute(
            # The owner signs the context itself (app.sign_context, the owner's only): the
            # purging actor, in the tenant context already in force, if any.
            "SELECT set_config('app.purge', 'on', true), "
            "set_config('app.context', app.sign_context(app.current_tenant(), %s), true)",
            [actor_id],
        )
        count = queryset._raw_delete(using)
        cursor.execute("SELECT set_config('app.purge', '', true)")
    return count
