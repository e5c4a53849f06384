"""The renderers of AddNotNullColumnSafely's steps, to the exact string (no database)."""

import pytest

from hzm.db import sql


def test_check_constraint_name():
    assert sql.not_null_check_name("users", "locale") == "chk_users_locale_not_null"
    with pytest.raises(ValueError, match="63"):
        sql.not_null_check_name("t" * 40, "c" * 20)


def test_add_nullable_column_sets_the_default_for_new_rows_only():
    assert sql.add_nullable_column("core", "users", "locale", "varchar(10)", "%s") == (
        'ALTER TABLE "core"."users" ADD COLUMN IF NOT EXISTS "locale" varchar(10), '
        'ALTER COLUMN "locale" SET DEFAULT %s'
    )


def test_backfill_in_batches():
    assert sql.backfill_in_batches("core", "users", "locale", "id", batch_size=500) == (
        "DO $$\n"
        "DECLARE\n"
        "  lo bigint;\n"
        "  hi bigint;\n"
        "  n bigint;\n"
        "  done bigint := 0;\n"
        "BEGIN\n"
        '  IF row_security_active(\'"core"."users"\') THEN\n'
        "    RAISE EXCEPTION 'backfill of core.users.locale: row level security hides rows "
        "from role %; run migrate as a role with BYPASSRLS', current_user;\n"
        "  END IF;\n"
        '  SELECT min("id"), max("id") INTO lo, hi FROM "core"."users";\n'
        "  WHILE lo <= hi LOOP\n"
        '    UPDATE "core"."users" SET "locale" = DEFAULT\n'
        '      WHERE "id" >= lo AND "id" < lo + 500 AND "locale" IS NULL;\n'
        "    GET DIAGNOSTICS n = ROW_COUNT;\n"
        "    done := done + n;\n"
        "    COMMIT;\n"
        "    RAISE NOTICE 'backfill core.users.locale: % rows filled, keys up to % of %', "
        "done, least(lo + 499, hi), hi;\n"
        "    lo := lo + 500;\n"
        "  END LOOP;\n"
        "END\n"
        "$$"
    )


def test_backfill_with_an_expression_and_a_bare_table():
    statement = sql.backfill_in_batches("", "t", "c", "pk", value="lower(name)", batch_size=1)
    assert '    UPDATE "t" SET "c" = lower(name)\n' in statement
    assert "row_security_active('\"t\"')" in statement
    assert "'backfill t.c: " in statement


@pytest.mark.parametrize("size", [0, -1, 1.5, "10", True])
def test_backfill_batch_size_must_be_a_positive_integer(size):
    with pytest.raises(ValueError, match="batch size"):
        sql.backfill_in_batches("s", "t", "c", "id", batch_size=size)


def test_backfill_rejects_a_bad_column_name():
    with pytest.raises(ValueError, match="column"):
        sql.backfill_in_batches("s", "t", 'c"; DROP TABLE x; --', "id", batch_size=10)


def test_the_check_steps():
    assert sql.add_not_null_check("core", "users", "locale", "chk_users_locale_not_null") == (
        'ALTER TABLE "core"."users" DROP CONSTRAINT IF EXISTS "chk_users_locale_not_null", '
        'ADD CONSTRAINT "chk_users_locale_not_null" CHECK ("locale" IS NOT NULL) NOT VALID'
    )
    assert sql.validate_constraint("core", "users", "chk_users_locale_not_null") == (
        'ALTER TABLE "core"."users" VALIDATE CONSTRAINT "chk_users_locale_not_null"'
    )
    assert sql.set_not_null("core", "users", "locale") == (
        'ALTER TABLE "core"."users" ALTER COLUMN "locale" SET NOT NULL'
    )
    assert sql.drop_constraint_if_exists("chk_users_locale_not_null", "core", "users") == (
        'ALTER TABLE "core"."users" DROP CONSTRAINT IF EXISTS "chk_users_locale_not_null"'
    )


def test_drop_column():
    assert sql.drop_column("core", "users", "locale") == (
        'ALTER TABLE "core"."users" DROP COLUMN "locale"'
    )
