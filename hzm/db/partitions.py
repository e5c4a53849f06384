"""Tables partitioned by calendar month: SQL renderers, the retention plan, the migration operation.

A table partitioned BY RANGE on a timestamp column has one partition per calendar
month (UTC), named <table>_<yyyy>_<mm>, and a DEFAULT partition, <table>_default,
that takes any row no month partition covers yet, so a write never fails for want of
a partition. Creating a month partition first moves that month's rows out of the
default partition (PostgreSQL refuses to attach the partition otherwise). Retention
drops whole months (DROP TABLE of a partition), never row by row.

Django cannot create a partitioned table, so a migration creates it with
CreatePartitionedTable, whose column definitions are frozen in the migration like a
function body; partitions come and go at run time (ops' prune_system_logs command).
"""

import datetime
import re
from typing import Any

from hzm.db import sql
from hzm.db.operations import SQLOperation

DEFAULT_SUFFIX = "default"
_MONTH_SUFFIX = re.compile(r"_(\d{4})_(\d{2})\Z")

# The partitions of a table, with their bounds as PostgreSQL prints them.
LIST_PARTITIONS = (
    "SELECT c.relname, pg_catalog.pg_get_expr(c.relpartbound, c.oid) "
    "FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = %s::regclass ORDER BY c.relname"
)


def month_start(day: datetime.date) -> datetime.date:
    return datetime.date(day.year, day.month, 1)


def add_months(month: datetime.date, months: int) -> datetime.date:
    """The first day of the month `months` after (or before, if negative) `month`'s."""
    index = month.year * 12 + month.month - 1 + months
    return datetime.date(index // 12, index % 12 + 1, 1)


def month_partition_name(table: str, month: datetime.date) -> str:
    return sql.validate_identifier(f"{table}_{month:%Y_%m}", "partition")


def default_partition_name(table: str) -> str:
    return sql.validate_identifier(f"{table}_{DEFAULT_SUFFIX}", "partition")


def partition_month(table: str, name: str) -> datetime.date | None:
    """The month a partition named <table>_<yyyy>_<mm> holds; None for any other name."""
    if not name.startswith(f"{table}_"):
        return None
    match = _MONTH_SUFFIX.match(name, len(table))
    if not match or len(name) != len(table) + 8:
        return None
    year, month = int(match[1]), int(match[2])
    return datetime.date(year, month, 1) if 1 <= month <= 12 else None


def _bound(month: datetime.date) -> str:
    """A month's first instant in UTC as a timestamptz literal (from a date, never input)."""
    if not isinstance(month, datetime.date) or month.day != 1:
        raise ValueError(f"partition bound {month!r} is not the first day of a month")
    return f"'{month:%Y-%m-%d} 00:00:00+00'"


# --- Renderers --------------------------------------------------------------------------


def create_partitioned_table(
    schema: str,
    table: str,
    columns: list[tuple[str, str]],
    primary_key: tuple[str, ...],
    partition_key: str,
) -> str:
    """CREATE TABLE ... PARTITION BY RANGE (key); column types are SQL frozen in a migration.

    PostgreSQL requires the partition key in every unique constraint, so in the
    primary key too.
    """
    names = [name for name, _type in columns]
    if partition_key not in names or partition_key not in primary_key:
        raise ValueError(
            f"partition key {partition_key!r} of table {table!r} must be one of its columns "
            "and part of its primary key"
        )
    unknown = [name for name in primary_key if name not in names]
    if unknown:
        raise ValueError(f"primary key of table {table!r} names unknown column(s) {unknown!r}")
    definitions = [f"{sql.quote_identifier(name, 'column')} {type_}" for name, type_ in columns]
    key = ", ".join(sql.quote_identifier(name, "column") for name in primary_key)
    body = ",\n  ".join([*definitions, f"PRIMARY KEY ({key})"])
    return (
        f"CREATE TABLE {sql.table_ref(schema, table)} (\n  {body}\n) "
        f"PARTITION BY RANGE ({sql.quote_identifier(partition_key, 'column')})"
    )


def drop_table(schema: str, table: str) -> str:
    # Dropping a partitioned table drops all of its partitions with it.
    return f"DROP TABLE {sql.table_ref(schema, table)}"


def create_default_partition(schema: str, table: str) -> str:
    return (
        f"CREATE TABLE {sql.table_ref(schema, default_partition_name(table))} "
        f"PARTITION OF {sql.table_ref(schema, table)} DEFAULT"
    )


def create_month_partition(
    schema: str, table: str, partition_key: str, month: datetime.date
) -> list[str]:
    """Create the partition of `month`, taking over that month's rows from the default one."""
    parent = sql.table_ref(schema, table)
    partition = sql.table_ref(schema, month_partition_name(table, month))
    default = sql.table_ref(schema, default_partition_name(table))
    key = sql.quote_identifier(partition_key, "column")
    low, high = _bound(month), _bound(add_months(month, 1))
    return [
        f"CREATE TABLE {partition} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        f"WITH moved AS (DELETE FROM {default} WHERE {key} >= {low} AND {key} < {high} "
        f"RETURNING *) INSERT INTO {partition} SELECT * FROM moved",
        f"ALTER TABLE {parent} ATTACH PARTITION {partition} FOR VALUES FROM ({low}) TO ({high})",
    ]


def delete_from_default_before(schema: str, table: str, partition_key: str) -> str:
    """DELETE the default partition's rows older than a cutoff (passed as the one parameter)."""
    return f"DELETE FROM {_default_rows_before(schema, table, partition_key)}"


def count_default_before(schema: str, table: str, partition_key: str) -> str:
    """Count the default partition's rows older than a cutoff (the one parameter)."""
    return f"SELECT count(*) FROM {_default_rows_before(schema, table, partition_key)}"


def _default_rows_before(schema: str, table: str, partition_key: str) -> str:
    return (
        f"{sql.table_ref(schema, default_partition_name(table))} "
        f"WHERE {sql.quote_identifier(partition_key, 'column')} < %s"
    )


# --- Retention ------------------------------------------------------------------------------


def retention_plan(
    table: str,
    existing: list[str],
    today: datetime.date,
    older_than_months: int,
    months_ahead: int,
) -> tuple[datetime.date, list[str], list[datetime.date]]:
    """(cutoff, month partitions to drop, months to create).

    The current month and the `older_than_months` before it are kept: a partition is
    dropped when its whole month lies before the cutoff, the first day of the month
    `older_than_months` months ago. The current month and `months_ahead` months after
    it get a partition if they have none. Partitions not named <table>_<yyyy>_<mm>
    (the default one, anything made by hand) are never touched.
    """
    if older_than_months < 0 or months_ahead < 0:
        raise ValueError(
            f"older_than_months ({older_than_months}) and months_ahead ({months_ahead}) "
            "must be 0 or more"
        )
    current = month_start(today)
    cutoff = add_months(current, -older_than_months)
    months = {name: partition_month(table, name) for name in existing}
    drop = sorted(name for name, month in months.items() if month is not None and month < cutoff)
    have = {month for month in months.values() if month is not None}
    create = [
        month
        for month in (add_months(current, n) for n in range(months_ahead + 1))
        if month not in have
    ]
    return cutoff, drop, create


# --- The migration operation ------------------------------------------------------------------


class CreatePartitionedTable(SQLOperation):
    """Create a table PARTITION BY RANGE (`partition_key`) and its DEFAULT partition.

    The model's state comes from a CreateModel in the same migration, inside
    SeparateDatabaseAndState (state only); this operation is its database half, so the
    table is named here rather than found in the state. Reversing drops the table with
    every partition it has by then.
    """

    def __init__(
        self,
        table: str,
        columns: list[tuple[str, str]] | list[list[str]],
        primary_key: tuple[str, ...] | list[str],
        partition_key: str,
    ) -> None:
        self.table = table
        self.columns = [(name, type_) for name, type_ in columns]
        self.primary_key = tuple(primary_key)
        self.partition_key = partition_key
        self._create_sql()  # a bad name or key fails when the migration is loaded

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (
            self.__class__.__qualname__,
            [],
            {
                "table": self.table,
                "columns": [list(column) for column in self.columns],
                "primary_key": list(self.primary_key),
                "partition_key": self.partition_key,
            },
        )

    def _schema_table(self) -> tuple[str, str]:
        schema, _, table = self.table.rpartition(".")
        return schema, table

    def _create_sql(self) -> list[str]:
        schema, table = self._schema_table()
        return [
            create_partitioned_table(
                schema, table, self.columns, self.primary_key, self.partition_key
            ),
            create_default_partition(schema, table),
        ]

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, self._create_sql())

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        self._run(schema_editor, [drop_table(*self._schema_table())])

    def describe(self) -> str:
        return f"Create table {self.table} partitioned by range of {self.partition_key}"

    @property
    def migration_name_fragment(self) -> str:
        return f"create_partitioned_{self.table.replace('.', '_')}"
