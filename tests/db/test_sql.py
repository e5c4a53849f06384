"""hzm.db.sql renders exactly the SQL the platform specifies, and refuses bad names."""

import pytest

from hzm.db import sql


class TestIdentifiers:
    @pytest.mark.parametrize("name", ["users", "_x", "trg_users_touch", "a1", "a" * 63])
    def test_valid_identifiers_pass_through(self, name):
        assert sql.validate_identifier(name) == name

    @pytest.mark.parametrize(
        "name",
        ["Users", "1abc", "users; drop table x", 'us"ers', "", "user-name", "café", None],
    )
    def test_invalid_identifiers_name_the_culprit(self, name):
        with pytest.raises(ValueError, match="trigger .* is not a valid name"):
            sql.validate_identifier(name, "trigger")

    def test_identifier_longer_than_postgres_keeps_is_refused(self):
        with pytest.raises(ValueError, match="64 bytes long; PostgreSQL keeps only 63"):
            sql.validate_identifier("a" * 64, "policy")

    def test_quote_identifier(self):
        assert sql.quote_identifier("users") == '"users"'

    def test_qualified_name(self):
        assert sql.qualified_name("app.touch_row") == '"app"."touch_row"'
        assert sql.qualified_name("touch_row") == '"touch_row"'
        with pytest.raises(ValueError, match="more than one"):
            sql.qualified_name("a.b.c")

    @pytest.mark.parametrize(
        ("db_table", "expected"),
        [('core"."users', ("core", "users")), ("users", ("", "users")), ('"x"', ("", "x"))],
    )
    def test_split_db_table(self, db_table, expected):
        assert sql.split_db_table(db_table) == expected

    def test_table_ref(self):
        assert sql.table_ref("core", "users") == '"core"."users"'
        assert sql.table_ref("", "users") == '"users"'

    @pytest.mark.parametrize("part", ["2fa", "sessions", "a_1"])
    def test_name_parts_may_start_with_a_digit(self, part):
        assert sql.validate_name_part(part) == part

    @pytest.mark.parametrize("part", ["", "Two", "a b", "x;y"])
    def test_bad_name_parts_are_refused(self, part):
        with pytest.raises(ValueError, match="stem"):
            sql.validate_name_part(part, "stem")


class TestSchemas:
    def test_create_and_drop(self):
        assert sql.create_schema("app") == 'CREATE SCHEMA "app"'
        assert sql.drop_schema("app") == 'DROP SCHEMA "app"'


class TestFunctions:
    def test_plpgsql_function_with_defaults(self):
        assert sql.create_function(
            "app.set_context", "p_tenant_id int, p_user_id int", "void", "\nBEGIN\nEND"
        ) == (
            'CREATE OR REPLACE FUNCTION "app"."set_context"(p_tenant_id int, p_user_id int)\n'
            "RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\nEND$$"
        )

    def test_sql_function_with_every_option(self):
        assert sql.create_function(
            "app.search",
            "q text",
            "SETOF bigint",
            " SELECT 1 ",
            language="sql",
            volatility="STABLE",
            strict=True,
            parallel_safe=True,
            security_definer=True,
            search_path="pg_catalog, app",
        ) == (
            'CREATE OR REPLACE FUNCTION "app"."search"(q text)\n'
            "RETURNS SETOF bigint LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER "
            'SET search_path = "pg_catalog", "app" AS $$ SELECT 1 $$'
        )

    def test_settings_follow_the_search_path_as_set_clauses(self):
        rendered = sql.create_function(
            "app.f", "", "int", "SELECT 1", search_path="pg_catalog",
            settings={"enable_sort": "off", "jit": "off"},
        )  # fmt: skip
        assert rendered.endswith(
            'SET search_path = "pg_catalog" SET "enable_sort" = off SET "jit" = off AS $$SELECT 1$$'
        )
        with pytest.raises(ValueError, match="must be a plain word"):
            sql.create_function("app.f", "", "int", "", settings={"jit": "off; DROP"})

    def test_empty_search_path_pins_to_pg_catalog(self):
        rendered = sql.create_function("app.f", "", "int", "SELECT 1", search_path="")
        assert rendered.endswith("SET search_path = '' AS $$SELECT 1$$")

    def test_body_containing_double_dollar_gets_another_tag(self):
        rendered = sql.create_function("app.f", "", "text", "SELECT '$$'")
        assert rendered.endswith("AS $fn0$SELECT '$$'$fn0$")

    def test_bad_volatility_is_refused(self):
        with pytest.raises(ValueError, match="volatility 'SOMETIMES'"):
            sql.create_function("app.f", "", "int", "", volatility="SOMETIMES")

    def test_bad_function_name_is_refused(self):
        with pytest.raises(ValueError, match="function 'App' is not a valid name"):
            sql.create_function("App.f", "", "int", "")

    def test_drop_function_strips_defaults(self):
        assert sql.drop_function(
            "app.set_context", "p_tenant int, p_user int DEFAULT NULL, p_meta text = ''"
        ) == ('DROP FUNCTION "app"."set_context"(p_tenant int, p_user int, p_meta text)')

    def test_signature_keeps_parenthesised_types_whole(self):
        assert sql.function_signature("a numeric(20, 6), b int") == "a numeric(20, 6), b int"
        assert sql.function_signature("") == ""


class TestRowLevelSecurity:
    def test_tenant_predicate(self):
        assert sql.tenant_predicate() == '"tenant_id" = app.current_tenant()'

    def test_enable_forces_by_default(self):
        assert sql.enable_row_level_security("core", "users") == [
            'ALTER TABLE "core"."users" ENABLE ROW LEVEL SECURITY',
            'ALTER TABLE "core"."users" FORCE ROW LEVEL SECURITY',
        ]

    def test_disable_reverses_in_opposite_order(self):
        assert sql.disable_row_level_security("core", "users") == [
            'ALTER TABLE "core"."users" NO FORCE ROW LEVEL SECURITY',
            'ALTER TABLE "core"."users" DISABLE ROW LEVEL SECURITY',
        ]

    def test_without_force(self):
        assert sql.enable_row_level_security("core", "users", force=False) == [
            'ALTER TABLE "core"."users" ENABLE ROW LEVEL SECURITY'
        ]
        assert sql.disable_row_level_security("core", "users", force=False) == [
            'ALTER TABLE "core"."users" DISABLE ROW LEVEL SECURITY'
        ]

    def test_create_policy(self):
        predicate = sql.tenant_predicate()
        assert sql.create_policy(
            "rls_users_tenant", "core", "users", using=predicate, with_check=predicate
        ) == (
            'CREATE POLICY "rls_users_tenant" ON "core"."users" '
            'USING ("tenant_id" = app.current_tenant()) '
            'WITH CHECK ("tenant_id" = app.current_tenant())'
        )

    def test_create_policy_without_check(self):
        assert (
            sql.create_policy("p", "", "t", using="true") == 'CREATE POLICY "p" ON "t" USING (true)'
        )

    def test_drop_policy(self):
        assert (
            sql.drop_policy("rls_users_tenant", "core", "users")
            == 'DROP POLICY "rls_users_tenant" ON "core"."users"'
        )

    def test_policy_name(self):
        assert sql.policy_name("sessions") == "rls_sessions_tenant"


class TestTriggers:
    def test_trigger_name(self):
        assert sql.trigger_name("users", "touch") == "trg_users_touch"
        assert sql.trigger_name("2fa", "touch") == "trg_2fa_touch"

    def test_trigger_name_too_long(self):
        with pytest.raises(ValueError, match="bytes long"):
            sql.trigger_name("x" * 60, "touch")

    def test_create_trigger(self):
        assert sql.create_trigger(
            "trg_users_audit",
            "core",
            "users",
            timing="AFTER",
            events=("INSERT", "UPDATE", "DELETE"),
            function="ops.log_audit",
        ) == (
            'CREATE TRIGGER "trg_users_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."users" '
            'FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"()'
        )

    def test_create_or_replace_trigger(self):
        assert sql.create_trigger(
            "trg_generic_data_audit",
            "app",
            "generic_data",
            timing="AFTER",
            events=("UPDATE", "DELETE"),
            function="ops.log_audit",
            replace=True,
        ) == (
            'CREATE OR REPLACE TRIGGER "trg_generic_data_audit" AFTER UPDATE OR DELETE ON '
            '"app"."generic_data" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"()'
        )

    @pytest.mark.parametrize(
        ("timing", "events", "message"),
        [
            ("INSTEAD OF", ("UPDATE",), "trigger timing 'INSTEAD OF'"),
            ("BEFORE", (), "trigger events"),
            ("BEFORE", ("TRUNCATE",), "trigger events"),
        ],
    )
    def test_bad_trigger_spec_is_refused(self, timing, events, message):
        with pytest.raises(ValueError, match=message):
            sql.create_trigger("t", "s", "x", timing=timing, events=events, function="app.f")

    def test_drop_trigger(self):
        assert (
            sql.drop_trigger("trg_users_touch", "core", "users")
            == 'DROP TRIGGER "trg_users_touch" ON "core"."users"'
        )


class TestForeignKeys:
    @pytest.mark.parametrize(
        ("rule", "clause"),
        [
            ("CASCADE", " ON DELETE CASCADE"),
            ("NO ACTION", ""),
            ("RESTRICT", " ON DELETE RESTRICT"),
            ("SET NULL", " ON DELETE SET NULL"),
        ],
    )
    def test_on_delete_clause(self, rule, clause):
        assert sql.on_delete_clause(rule) == clause

    def test_unknown_rule_is_refused(self):
        with pytest.raises(ValueError, match="ON DELETE rule 'DROP'"):
            sql.on_delete_clause("DROP")


class TestContextKeyStore:
    def test_create_is_an_owner_only_schema_and_table(self):
        assert sql.create_context_key_store() == [
            'CREATE SCHEMA "hzm_private"',
            'REVOKE ALL ON SCHEMA "hzm_private" FROM PUBLIC',
            'CREATE TABLE "hzm_private".context_keys (\n'
            "  position smallint PRIMARY KEY CHECK (position >= 1),\n"
            "  key bytea NOT NULL UNIQUE CHECK (octet_length(key) = 32)\n"
            ")",
            'REVOKE ALL ON TABLE "hzm_private".context_keys FROM PUBLIC',
        ]

    def test_invalidating_the_folded_keys_touches_the_function_and_nothing_else(self):
        assert sql.invalidate_verifying_keys() == (
            'ALTER FUNCTION "hzm_private"."verifying_keys"() COST 100'
        )

    def test_drop_takes_the_table_then_the_schema(self):
        assert sql.drop_context_key_store() == [
            'DROP TABLE "hzm_private".context_keys',
            'DROP SCHEMA "hzm_private"',
        ]
