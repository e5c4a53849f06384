"""Model fields for the platform schema: database-enforced foreign keys and citext."""

from typing import Any

from django.db import models

# The ON DELETE rules the schema uses. The database enforces them, so Django's
# Python-side emulation is switched off (DO_NOTHING) and cannot disagree with it.
CASCADE = "CASCADE"
NO_ACTION = "NO ACTION"
RESTRICT = "RESTRICT"
SET_NULL = "SET NULL"
DB_ON_DELETE_RULES = (CASCADE, NO_ACTION, RESTRICT, SET_NULL)


class ForeignKey(models.ForeignKey):
    """A foreign key whose ON DELETE rule lives in the database constraint.

    The seed's foreign keys are plain (not deferrable) constraints with an ON
    DELETE rule; rows deleted by raw SQL or by another client must follow the same
    rule, so the rule is part of the DDL (see hzm.db.backends.postgresql), not
    Django's collector. Seed indexes are declared by name in Meta.indexes, so no
    implicit index is created here.
    """

    def __init__(self, to: Any, db_on_delete: str = NO_ACTION, **kwargs: Any) -> None:
        if db_on_delete not in DB_ON_DELETE_RULES:
            raise ValueError(
                f"db_on_delete={db_on_delete!r} is not one of {', '.join(DB_ON_DELETE_RULES)}"
            )
        self.db_on_delete = db_on_delete
        kwargs["on_delete"] = models.DO_NOTHING
        kwargs.setdefault("db_index", False)
        super().__init__(to, **kwargs)

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        kwargs.pop("on_delete", None)
        if self.db_on_delete != NO_ACTION:
            kwargs["db_on_delete"] = self.db_on_delete
        if kwargs.get("db_index") is False:
            del kwargs["db_index"]
        elif "db_index" not in kwargs:
            kwargs["db_index"] = True
        return name, "hzm.db.fields.ForeignKey", args, kwargs


class CIEmailField(models.EmailField):
    """An email address stored as citext, so uniqueness and lookups ignore case."""

    def db_type(self, connection: Any) -> str:
        return "citext"

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        return name, "hzm.db.fields.CIEmailField", args, kwargs
