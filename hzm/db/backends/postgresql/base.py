"""Django's PostgreSQL backend with the platform's three additions.

1. Foreign keys declared with hzm.db.fields.ForeignKey get their ON DELETE rule
   in the constraint and are not deferrable, as in the platform schema.
2. With the embedded default database (no DATABASE_URL), the local cluster is
   started before the first connection of the process.
3. Every connection sends the statements a tenant context owes (hzm.db.round_trips)
   with its next statement, in one round trip.
"""

from django.conf import settings
from django.db.backends.postgresql import base, introspection, schema

from hzm.db import round_trips
from hzm.db.sql import on_delete_clause, split_db_table


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    # Route every foreign key through _create_fk_sql (below), including the ones
    # AddField would otherwise render inline with Django's deferrable clause.
    sql_create_column_inline_fk = None
    # Django's version starts with SET CONSTRAINTS ... IMMEDIATE, which fails for
    # non-deferrable constraints and cannot find a name outside the search_path.
    sql_delete_fk = "ALTER TABLE %(table)s DROP CONSTRAINT %(name)s"

    # Django names an index without its schema in DROP INDEX and ALTER INDEX; for a
    # platform table (db_table 'core"."users') PostgreSQL would then look for it on
    # the search_path, and DROP INDEX IF EXISTS would silently drop nothing.
    def _qualify_index_name(self, statement, model, part="name"):
        schema, _table = split_db_table(model._meta.db_table)
        if schema and statement.template.lstrip().upper().startswith(("DROP INDEX", "ALTER INDEX")):
            statement.parts[part] = f"{self.quote_name(schema)}.{statement.parts[part]}"
        return statement

    def _delete_index_sql(self, model, name, sql=None, concurrently=False):
        statement = super()._delete_index_sql(model, name, sql, concurrently)
        return self._qualify_index_name(statement, model)

    def _delete_constraint_sql(self, template, model, name):
        statement = super()._delete_constraint_sql(template, model, name)
        return self._qualify_index_name(statement, model)

    def _rename_index_sql(self, model, old_name, new_name):
        statement = super()._rename_index_sql(model, old_name, new_name)
        return self._qualify_index_name(statement, model, part="old_name")

    def _create_like_index_sql(self, model, field):
        # Platform tables (schema-qualified db_table) carry exactly the indexes the
        # schema names; Django would add an unnamed varchar_pattern_ops index to
        # every varchar primary key (cfg.languages.code, cfg.currencies.code).
        if '"."' in model._meta.db_table:
            return None
        return super()._create_like_index_sql(model, field)

    def _create_fk_sql(self, model, field, suffix):
        statement = super()._create_fk_sql(model, field, suffix)
        db_on_delete = getattr(field, "db_on_delete", None)
        if db_on_delete is not None:
            statement.parts["deferrable"] = on_delete_clause(db_on_delete)
        return statement


class DatabaseIntrospection(introspection.DatabaseIntrospection):
    def get_table_list(self, cursor):
        """Django's list (tables on the search_path) plus the platform's schema-qualified ones.

        Named as the models name them ('core"."users'), so that Django finds its own
        tables: `flush` (run after transactional tests) truncates them, and
        `migrate --fake-initial` sees that they exist.
        """
        tables = super().get_table_list(cursor)
        cursor.execute(
            """
            SELECT n.nspname || '"."' || c.relname,
                   CASE WHEN c.relispartition THEN 'p'
                        WHEN c.relkind IN ('m', 'v') THEN 'v' ELSE 't' END,
                   obj_description(c.oid, 'pg_class')
            FROM pg_catalog.pg_class c
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('f', 'm', 'p', 'r', 'v')
              AND n.nspname NOT IN ('pg_catalog', 'pg_toast', 'information_schema')
              AND n.nspname NOT LIKE 'pg_temp_%%' AND n.nspname NOT LIKE 'pg_toast_temp_%%'
              AND NOT pg_catalog.pg_table_is_visible(c.oid)
            """
        )
        return tables + [introspection.TableInfo(*row) for row in cursor.fetchall()]


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
    introspection_class = DatabaseIntrospection
    _local_cluster_checked = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # First in the list, so outermost: the owed statements go before whatever the
        # statement is (savepoints included) and whoever else wraps it.
        self.execute_wrappers.append(round_trips.send_deferred)

    # What a transaction owed its next statement dies with it.
    def _commit(self):
        round_trips.forget_owed(self)
        return super()._commit()

    def _rollback(self):
        round_trips.forget_owed(self)
        return super()._rollback()

    def _close(self):
        round_trips.forget_owed(self)
        return super()._close()

    def get_new_connection(self, conn_params):
        if getattr(settings, "HZM_LOCALDB", False) and not DatabaseWrapper._local_cluster_checked:
            from hzm.db.localdb import LocalCluster

            LocalCluster(settings.BASE_DIR).ensure_running()
            DatabaseWrapper._local_cluster_checked = True
        return super().get_new_connection(conn_params)
