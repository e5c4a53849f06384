-- hzm schema snapshot 1
-- Made by `python manage.py schema_snapshot --write`: do not edit.
-- postgresql 15
-- django 5.2.19
-- source hzm/db/sql.py 1c40b586175728cc
-- source hzm/db/operations.py d33a15b935080f81
-- source hzm/db/partitions.py 0b2252ee7ac0ddf8
-- source hzm/db/fields.py 2464d10941e49295
-- source hzm/db/expressions.py 27209c475e7a0335
-- source hzm/db/backends/postgresql/base.py 5983b7b14039d99e
-- migration hzm.0001_foundation 1387b4cdc2ebee40
-- migration ops.0001_initial_schema c00c8ca49bcca8cb
-- migration cfg.0001_initial_schema 69cab72971d43f79
-- migration core.0001_initial_schema 25c2f0ac387b52a6
-- migration contenttypes.0001_initial 35ed8489a147e0b4
-- migration admin.0001_initial f4716989d9815b62
-- migration admin.0002_logentry_remove_auto_add 2c127e659a2236ed
-- migration admin.0003_logentry_add_action_flag_choices 02700a827190720e
-- migration contenttypes.0002_remove_content_type_name 7d36494075750f0e
-- migration auth.0001_initial 845cff319606332f
-- migration auth.0002_alter_permission_name_max_length feaf97e0e8f7d148
-- migration auth.0003_alter_user_email_max_length 9d5657b4db9872dc
-- migration auth.0004_alter_user_username_opts 9538db342c9a9bec
-- migration auth.0005_alter_user_last_login_null 79f60a35dc000fdd
-- migration auth.0006_require_contenttypes_0002 00cb16e3405f14b6
-- migration auth.0007_alter_validators_add_error_messages 115db87dc327530f
-- migration auth.0008_alter_user_username_max_length 02857f65f7d64814
-- migration auth.0009_alter_user_last_name_max_length 19a89500e7f108a7
-- migration auth.0010_alter_group_name_max_length 0963ed6498ac0b3a
-- migration auth.0011_update_proxy_permissions 85a5dde708dc4b61
-- migration auth.0012_alter_user_first_name_max_length 6cefbc9f80903763
-- migration axes.0001_initial e4c0194cf158395b
-- migration axes.0002_auto_20151217_2044 a092989bdd502de7
-- migration axes.0003_auto_20160322_0929 ff269df1341caca0
-- migration axes.0004_auto_20181024_1538 71cdafbe7458c772
-- migration axes.0005_remove_accessattempt_trusted baf3f5f6de5b5ee8
-- migration axes.0006_remove_accesslog_trusted 82850f25ae37e081
-- migration axes.0007_alter_accessattempt_unique_together c9fdd81629030721
-- migration axes.0008_accessfailurelog 2680dce9ecfcd4df
-- migration axes.0009_add_session_hash 82762be269ea4c62
-- migration axes.0010_accessattemptexpiration 524ca5b4566a41b8
-- migration hzm.0002_runtime_role_and_audit_trail 60ca9c2b31ce6503
-- migration hzm.0003_add_microservices fe7082114ac6f714
-- migration core.0002_tenant_isolation 5f9159183f6b9478
-- migration billing.0001_add_billing 2eb891f3731e49cd
-- migration ops.0002_audit_trail_rls f68ed2082f62a0f5
-- migration cfg.0002_runtime_access d19e14641fe09ea7
-- migration cfg.0003_audit_triggers c639b8aa51564e45
-- migration cfg.0004_add_feature_flags 620f3ce229764618
-- migration cfg.0005_unique_global_translations 9a02a9f15221e6ed
-- migration comms.0001_add_notifications 64fd6564ea86c80e
-- migration comms.0002_add_webhooks d546b1ac22395771
-- migration ops.0003_add_monitoring aec0bea866985062
-- migration sessions.0001_initial 2aa438e2393ee513
-- migration generic_data.0001_add_generic_data 8ae26734166dd690
-- migration generic_data.0002_tenant_isolation a6dc1b47b17cceea
-- migration generic_data.0003_search_and_api_key_functions 834142bac6015cd4
-- migration generic_data.0004_unique_field_values 832f6f5b253700e4
-- migration core.0003_add_organizations d48588da7f7e39d0
-- migration core.0004_add_rbac 25a80c989adef040
-- migration core.0005_add_file_storage 67af40b8ee9b0844
-- migration hzm.0004_web_sign_in_and_admin_role c0067546ccd24af0
-- migration ops.0004_admin_sign_in_throttling 2125fe1b833ccc46
-- migration ops.0005_audit_logs_tenant_id_index a7190bde4f36cc3d
-- migration generic_data.0005_record_counts a005d51a054419b4
-- migration hzm.0005_security_hardening 07b7c008e2190f61
-- migration core.0006_onboarding_and_key_limits b401c2941b5c582e
-- migration generic_data.0006_api_key_lookup_by_whole_key 7ca56c76087ad303
-- migration core.0007_index_user_references ed28f80d3800e0e8
-- migration hzm.0006_verified_tenant_context 8c7f43e356951b85
-- migration core.0008_sign_in_throttle 0f53fcdf4da45a02
-- migration core.0009_sign_in_failures_for_the_admin 8f6e5df9ca4a3d14
-- migration core.0010_signed_sign_in_failures 21ab0b8c4169fd2f
-- migration ops.0006_cheaper_audit 3c4d7b9fb9e5732e
-- migration generic_data.0007_containment_gin_first a01652c317af6322
-- migration generic_data.0008_cheaper_writes 97d7988fe1a64703
-- migration generic_data.0009_search_plans 0613479678ff9a30
-- migration generic_data.0010_cheaper_updates dca9c5dc7c29bbc2
-- migration generic_data.0011_unique_value_lookup 791c7e8a082acbca
-- migration ops.0007_cheaper_update_audit c006a352c944953c
-- end of header
-- migration hzm.0001_foundation
--
-- Creates extension uuid-ossp
--
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
--
-- Creates extension pgcrypto
--
CREATE EXTENSION IF NOT EXISTS "pgcrypto";
--
-- Creates extension citext
--
CREATE EXTENSION IF NOT EXISTS "citext";
--
-- Creates extension pg_trgm
--
CREATE EXTENSION IF NOT EXISTS "pg_trgm";
--
-- Create schema app
--
CREATE SCHEMA "app";
--
-- Create schema core
--
CREATE SCHEMA "core";
--
-- Create schema cfg
--
CREATE SCHEMA "cfg";
--
-- Create schema ops
--
CREATE SCHEMA "ops";
--
-- Create schema comms
--
CREATE SCHEMA "comms";
--
-- Create schema billing
--
CREATE SCHEMA "billing";
--
-- Install function app.set_context(p_tenant_id int, p_user_id int)
--
CREATE OR REPLACE FUNCTION "app"."set_context"(p_tenant_id int, p_user_id int)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('app.tenant_id', COALESCE(p_tenant_id::text, ''), true);
  PERFORM set_config('app.user_id', COALESCE(p_user_id::text, ''), true);
END$$;
--
-- Install function app.current_tenant()
--
CREATE OR REPLACE FUNCTION "app"."current_tenant"()
RETURNS int LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('app.tenant_id', true), '')::int
$$;
--
-- Install function app.current_user_id()
--
CREATE OR REPLACE FUNCTION "app"."current_user_id"()
RETURNS int LANGUAGE sql STABLE AS $$
  SELECT nullif(current_setting('app.user_id', true), '')::int
$$;
--
-- Install function app.touch_row()
--
CREATE OR REPLACE FUNCTION "app"."touch_row"()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  IF TG_OP = 'UPDATE' THEN
    NEW.version := COALESCE(OLD.version, 1) + 1;
  END IF;
  RETURN NEW;
END$$;
--
-- Install function app.soft_delete()
--
CREATE OR REPLACE FUNCTION "app"."soft_delete"()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v_user int := app.current_user_id();
BEGIN
  EXECUTE format(
    'UPDATE %I.%I SET is_deleted = true, deleted_at = now(), deleted_by = $1 WHERE id = $2',
    TG_TABLE_SCHEMA, TG_TABLE_NAME
  ) USING v_user, OLD.id;
  RETURN NULL;
END$$;
--
-- Install function ops.log_audit()
--
CREATE OR REPLACE FUNCTION "ops"."log_audit"()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v_tenant int := app.current_tenant();
DECLARE v_user   int := app.current_user_id();
BEGIN
  INSERT INTO ops.audit_logs(tenant_id, user_id, action, entity_type, entity_id, old_values, new_values)
  VALUES (
    v_tenant,
    v_user,
    TG_OP::text,
    TG_TABLE_NAME,
    (CASE WHEN TG_OP='INSERT' THEN NEW.id::text ELSE OLD.id::text END),
    CASE WHEN TG_OP='UPDATE' OR TG_OP='DELETE' THEN to_jsonb(OLD) END,
    CASE WHEN TG_OP='INSERT' OR TG_OP='UPDATE' THEN to_jsonb(NEW) END
  );
  RETURN COALESCE(NEW, OLD);
END$$;
--
-- Install function app.jsonb_to_text(doc jsonb)
--
CREATE OR REPLACE FUNCTION "app"."jsonb_to_text"(doc jsonb)
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(string_agg(value #>> '{}', ' '), '')
  FROM jsonb_path_query(doc, 'strict $.**') AS value
  WHERE jsonb_typeof(value) IN ('string', 'number', 'boolean')
$$;

-- migration ops.0001_initial_schema
--
-- Create model AuditLog
--
CREATE TABLE "ops"."audit_logs" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "tenant_id" integer NULL, "user_id" integer NULL, "action" varchar(50) NOT NULL, "entity_type" varchar(50) NOT NULL, "entity_id" text NULL, "old_values" jsonb NULL, "new_values" jsonb NULL, "ip_address" inet NULL, "user_agent" text NULL, "request_id" varchar(100) NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL);
CREATE INDEX "idx_audit_tenant" ON "ops"."audit_logs" ("tenant_id");
CREATE INDEX "idx_audit_entity" ON "ops"."audit_logs" ("entity_type", "entity_id");
CREATE INDEX "idx_audit_created" ON "ops"."audit_logs" ("created_at");

-- migration cfg.0001_initial_schema
--
-- Create model Currency
--
CREATE TABLE "cfg"."currencies" ("code" varchar(3) NOT NULL PRIMARY KEY, "name" varchar(100) NULL, "symbol" varchar(10) NULL, "decimal_digits" integer DEFAULT 2 NULL, "is_active" boolean DEFAULT true NULL);
--
-- Create model Language
--
CREATE TABLE "cfg"."languages" ("code" varchar(10) NOT NULL PRIMARY KEY, "name" varchar(100) NULL, "native_name" varchar(100) NULL, "direction" varchar(3) DEFAULT 'ltr' NULL, "is_active" boolean DEFAULT true NULL);
--
-- Create model ExchangeRate
--
CREATE TABLE "cfg"."exchange_rates" ("rate" numeric(20, 6) NULL, "rate_date" date NOT NULL, "from_currency" varchar(3) NOT NULL, "to_currency" varchar(3) NOT NULL, PRIMARY KEY ("from_currency", "to_currency", "rate_date"));
--
-- Create model Translation
--
CREATE TABLE "cfg"."translations" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "tenant_id" integer NULL, "translation_key" varchar(200) NULL, "translation_value" text NULL, "language_code" varchar(10) NULL, CONSTRAINT "translations_tenant_id_language_code_translation_key_key" UNIQUE ("tenant_id", "language_code", "translation_key"));
ALTER TABLE "cfg"."exchange_rates" ADD CONSTRAINT "exchange_rates_from_currency_4fa702ca_fk_currencies_code" FOREIGN KEY ("from_currency") REFERENCES "cfg"."currencies" ("code");
ALTER TABLE "cfg"."exchange_rates" ADD CONSTRAINT "exchange_rates_to_currency_b73a6d9e_fk_currencies_code" FOREIGN KEY ("to_currency") REFERENCES "cfg"."currencies" ("code");
ALTER TABLE "cfg"."translations" ADD CONSTRAINT "translations_language_code_b5500fd0_fk_languages_code" FOREIGN KEY ("language_code") REFERENCES "cfg"."languages" ("code");

-- migration core.0001_initial_schema
--
-- Create model User
--
CREATE TABLE "core"."users" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "created_by" integer NULL, "updated_by" integer NULL, "email" citext NOT NULL, "password_hash" varchar(255) NOT NULL, "email_verified" boolean DEFAULT false NULL, "email_verification_token" varchar(255) NULL, "phone" varchar(50) NULL, "phone_verified" boolean DEFAULT false NULL, "name" varchar(200) NULL, "role" varchar(50) DEFAULT 'user' NULL, "timezone" varchar(50) DEFAULT 'UTC' NULL, "is_active" boolean DEFAULT true NULL, "last_login_at" timestamp with time zone NULL, "login_count" integer DEFAULT 0 NULL);
--
-- Create model Project
--
CREATE TABLE "core"."projects" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "created_by" integer NULL, "updated_by" integer NULL, "name" varchar(200) NOT NULL, "description" text NULL, "template_type" varchar(100) NULL, "template_config" jsonb DEFAULT (('{}')::jsonb) NULL, "api_key" varchar(100) NOT NULL, "api_key_password" varchar(255) NULL, "is_active" boolean DEFAULT true NULL, "user_id" integer NOT NULL);
--
-- Create model Tenant
--
CREATE TABLE "core"."tenants" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "name" varchar(200) NOT NULL, "slug" varchar(100) NOT NULL, "domain" varchar(255) NULL, "logo_url" varchar(500) NULL, "favicon_url" varchar(500) NULL, "primary_color" varchar(7) NULL, "secondary_color" varchar(7) NULL, "supported_languages" text[] DEFAULT (('{en}')::text[]) NULL, "timezone" varchar(50) DEFAULT 'UTC' NULL, "date_format" varchar(20) DEFAULT 'YYYY-MM-DD' NULL, "time_format" varchar(20) DEFAULT 'HH:mm:ss' NULL, "supported_currencies" text[] DEFAULT (('{USD}')::text[]) NULL, "auto_convert_currency" boolean DEFAULT false NULL, "decimal_separator" varchar(1) DEFAULT '.' NULL, "thousands_separator" varchar(1) DEFAULT ',' NULL, "features" jsonb DEFAULT (('{}')::jsonb) NULL, "limits" jsonb DEFAULT (('{}')::jsonb) NULL, "plan" varchar(50) DEFAULT 'free' NULL, "subscription_status" varchar(20) DEFAULT 'active' NULL, "trial_ends_at" timestamp with time zone NULL, "subscription_ends_at" timestamp with time zone NULL, "max_projects" integer DEFAULT 3 NULL, "max_tables_per_project" integer DEFAULT 10 NULL, "max_records" integer DEFAULT 10000 NULL, "settings" jsonb DEFAULT (('{}')::jsonb) NULL, "is_active" boolean DEFAULT true NULL, "default_currency" varchar(3) DEFAULT 'USD' NULL, "default_language" varchar(10) DEFAULT 'en' NULL);
--
-- Create model TableMetadata
--
CREATE TABLE "core"."table_metadata" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "created_by" integer NULL, "updated_by" integer NULL, "table_name" varchar(100) NOT NULL, "physical_table_name" varchar(255) NOT NULL, "fields" jsonb DEFAULT (('[]')::jsonb) NOT NULL, "from_template" boolean DEFAULT false NULL, "template_table_name" varchar(100) NULL, "is_active" boolean DEFAULT true NULL, "project_id" integer NOT NULL, "tenant_id" integer NOT NULL);
--
-- Add field tenant to project
--
ALTER TABLE "core"."projects" ADD COLUMN "tenant_id" integer NOT NULL;
--
-- Create model File
--
CREATE TABLE "core"."files" ("version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "id" uuid DEFAULT (gen_random_uuid()) NOT NULL PRIMARY KEY, "original_filename" varchar(500) NULL, "filename" varchar(500) NULL, "storage_path" text NULL, "storage_provider" varchar(50) NULL, "mime_type" varchar(100) NULL, "file_size" bigint NULL, "file_hash" varchar(64) NULL, "width" integer NULL, "height" integer NULL, "is_public" boolean DEFAULT false NULL, "virus_scan_status" varchar(20) NULL, "virus_scan_at" timestamp with time zone NULL, "expires_at" timestamp with time zone NULL, "is_deleted" boolean DEFAULT false NULL, "uploaded_by" integer NULL, "tenant_id" integer NOT NULL);
--
-- Create model ApiKey
--
CREATE TABLE "core"."api_keys" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "name" varchar(100) NOT NULL, "key_prefix" varchar(20) NULL, "key_hash" varchar(255) NOT NULL, "key_encrypted" text NOT NULL, "permissions" jsonb DEFAULT (('{}')::jsonb) NULL, "scopes" text[] DEFAULT (('{}')::text[]) NULL, "rate_limit_per_minute" integer DEFAULT 60 NULL, "rate_limit_per_day" integer DEFAULT 10000 NULL, "allowed_ips" text[] DEFAULT (('{}')::text[]) NULL, "allowed_domains" text[] DEFAULT (('{}')::text[]) NULL, "last_used_at" timestamp with time zone NULL, "total_requests" bigint DEFAULT 0 NULL, "total_errors" integer DEFAULT 0 NULL, "expires_at" timestamp with time zone NULL, "is_active" boolean DEFAULT true NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "revoked_at" timestamp with time zone NULL, "revoked_by" integer NULL, "revoke_reason" text NULL, "version" integer DEFAULT 1 NULL, "user_id" integer NOT NULL, "project_id" integer NULL, "tenant_id" integer NOT NULL);
--
-- Add field tenant to user
--
ALTER TABLE "core"."users" ADD COLUMN "tenant_id" integer NOT NULL;
--
-- Create model UserSession
--
CREATE TABLE "core"."user_sessions" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "token" varchar(500) NOT NULL, "device_id" varchar(255) NULL, "device_name" varchar(255) NULL, "device_type" varchar(50) NULL, "ip_address" inet NULL, "user_agent" text NULL, "location" jsonb NULL, "expires_at" timestamp with time zone NOT NULL, "last_activity_at" timestamp with time zone DEFAULT (now()) NULL, "is_active" boolean DEFAULT true NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "version" integer DEFAULT 1 NULL, "tenant_id" integer NOT NULL, "user_id" integer NOT NULL);
--
-- Create model UserTwoFactor
--
CREATE TABLE "core"."user_2fa" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "method" varchar(20) NOT NULL, "secret_encrypted" text NOT NULL, "backup_codes_encrypted" text[] NULL, "is_enabled" boolean DEFAULT false NULL, "enabled_at" timestamp with time zone NULL, "last_used_at" timestamp with time zone NULL, "tenant_id" integer NOT NULL, "user_id" integer NULL);
--
-- Create index idx_tenants_slug on field(s) slug of model tenant
--
CREATE INDEX "idx_tenants_slug" ON "core"."tenants" ("slug");
--
-- Create index idx_tenants_active on field(s) is_active of model tenant
--
CREATE INDEX "idx_tenants_active" ON "core"."tenants" ("is_active") WHERE "is_deleted" = false;
--
-- Create constraint tenants_slug_key on model tenant
--
ALTER TABLE "core"."tenants" ADD CONSTRAINT "tenants_slug_key" UNIQUE ("slug");
--
-- Create constraint tenants_domain_key on model tenant
--
ALTER TABLE "core"."tenants" ADD CONSTRAINT "tenants_domain_key" UNIQUE ("domain");
--
-- Create index idx_table_metadata_tenant on field(s) tenant of model tablemetadata
--
CREATE INDEX "idx_table_metadata_tenant" ON "core"."table_metadata" ("tenant_id");
--
-- Create index idx_table_metadata_project on field(s) project of model tablemetadata
--
CREATE INDEX "idx_table_metadata_project" ON "core"."table_metadata" ("project_id");
--
-- Create index idx_table_metadata_physical on field(s) physical_table_name of model tablemetadata
--
CREATE INDEX "idx_table_metadata_physical" ON "core"."table_metadata" ("physical_table_name");
--
-- Create index idx_table_metadata_active on field(s) project of model tablemetadata
--
CREATE INDEX "idx_table_metadata_active" ON "core"."table_metadata" ("project_id") WHERE ("is_active" = true AND "is_deleted" = false);
--
-- Create constraint table_metadata_physical_table_name_key on model tablemetadata
--
ALTER TABLE "core"."table_metadata" ADD CONSTRAINT "table_metadata_physical_table_name_key" UNIQUE ("physical_table_name");
--
-- Create constraint unique_table_per_project on model tablemetadata
--
ALTER TABLE "core"."table_metadata" ADD CONSTRAINT "unique_table_per_project" UNIQUE ("tenant_id", "project_id", "table_name");
--
-- Create index idx_projects_tenant on field(s) tenant of model project
--
CREATE INDEX "idx_projects_tenant" ON "core"."projects" ("tenant_id");
--
-- Create index idx_projects_user on field(s) user of model project
--
CREATE INDEX "idx_projects_user" ON "core"."projects" ("user_id");
--
-- Create index idx_projects_api_key on field(s) api_key of model project
--
CREATE INDEX "idx_projects_api_key" ON "core"."projects" ("api_key");
--
-- Create index idx_projects_active on field(s) tenant of model project
--
CREATE INDEX "idx_projects_active" ON "core"."projects" ("tenant_id") WHERE ("is_active" = true AND "is_deleted" = false);
--
-- Create constraint projects_api_key_key on model project
--
ALTER TABLE "core"."projects" ADD CONSTRAINT "projects_api_key_key" UNIQUE ("api_key");
--
-- Create constraint unique_project_name_per_tenant on model project
--
ALTER TABLE "core"."projects" ADD CONSTRAINT "unique_project_name_per_tenant" UNIQUE ("tenant_id", "name");
--
-- Create index idx_files_tenant on field(s) tenant of model file
--
CREATE INDEX "idx_files_tenant" ON "core"."files" ("tenant_id");
--
-- Create index idx_files_hash on field(s) file_hash of model file
--
CREATE INDEX "idx_files_hash" ON "core"."files" ("file_hash");
--
-- Create index idx_api_keys_tenant on field(s) tenant of model apikey
--
CREATE INDEX "idx_api_keys_tenant" ON "core"."api_keys" ("tenant_id");
--
-- Create index idx_api_keys_project on field(s) project of model apikey
--
CREATE INDEX "idx_api_keys_project" ON "core"."api_keys" ("project_id");
--
-- Create index idx_api_keys_prefix on field(s) key_prefix of model apikey
--
CREATE INDEX "idx_api_keys_prefix" ON "core"."api_keys" ("key_prefix");
--
-- Create index idx_api_keys_active on field(s) tenant of model apikey
--
CREATE INDEX "idx_api_keys_active" ON "core"."api_keys" ("tenant_id") WHERE "is_active" = true;
--
-- Create constraint api_keys_key_prefix_key on model apikey
--
ALTER TABLE "core"."api_keys" ADD CONSTRAINT "api_keys_key_prefix_key" UNIQUE ("key_prefix");
--
-- Create index idx_users_tenant on field(s) tenant of model user
--
CREATE INDEX "idx_users_tenant" ON "core"."users" ("tenant_id");
--
-- Create index idx_users_email on field(s) email of model user
--
CREATE INDEX "idx_users_email" ON "core"."users" ("email");
--
-- Create index idx_users_active on field(s) tenant of model user
--
CREATE INDEX "idx_users_active" ON "core"."users" ("tenant_id") WHERE ("is_active" = true AND "is_deleted" = false);
--
-- Create constraint users_email_key on model user
--
ALTER TABLE "core"."users" ADD CONSTRAINT "users_email_key" UNIQUE ("email");
--
-- Create index idx_sessions_user on field(s) user of model usersession
--
CREATE INDEX "idx_sessions_user" ON "core"."user_sessions" ("user_id");
--
-- Create index idx_sessions_token on field(s) token of model usersession
--
CREATE INDEX "idx_sessions_token" ON "core"."user_sessions" ("token");
--
-- Create index idx_sessions_expire on field(s) expires_at of model usersession
--
CREATE INDEX "idx_sessions_expire" ON "core"."user_sessions" ("expires_at");
--
-- Create constraint user_sessions_token_key on model usersession
--
ALTER TABLE "core"."user_sessions" ADD CONSTRAINT "user_sessions_token_key" UNIQUE ("token");
--
-- Create constraint user_2fa_user_id_key on model usertwofactor
--
ALTER TABLE "core"."user_2fa" ADD CONSTRAINT "user_2fa_user_id_key" UNIQUE ("user_id");
--
-- Attach touch trigger (app.touch_row) to tenant
--
CREATE TRIGGER "trg_tenants_touch" BEFORE UPDATE ON "core"."tenants" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to tenant
--
CREATE TRIGGER "trg_tenants_softdel" BEFORE DELETE ON "core"."tenants" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to tenant
--
CREATE TRIGGER "trg_tenants_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."tenants" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Attach touch trigger (app.touch_row) to user
--
CREATE TRIGGER "trg_users_touch" BEFORE UPDATE ON "core"."users" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to user
--
CREATE TRIGGER "trg_users_softdel" BEFORE DELETE ON "core"."users" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to user
--
CREATE TRIGGER "trg_users_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."users" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on user
--
ALTER TABLE "core"."users" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."users" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_users_tenant" ON "core"."users" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Attach touch trigger (app.touch_row) to usersession
--
CREATE TRIGGER "trg_sessions_touch" BEFORE UPDATE ON "core"."user_sessions" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Enable tenant row level security on usersession
--
ALTER TABLE "core"."user_sessions" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."user_sessions" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_sessions_tenant" ON "core"."user_sessions" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Attach touch trigger (app.touch_row) to usertwofactor
--
CREATE TRIGGER "trg_2fa_touch" BEFORE UPDATE ON "core"."user_2fa" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Enable tenant row level security on usertwofactor
--
ALTER TABLE "core"."user_2fa" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."user_2fa" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_2fa_tenant" ON "core"."user_2fa" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Attach touch trigger (app.touch_row) to project
--
CREATE TRIGGER "trg_projects_touch" BEFORE UPDATE ON "core"."projects" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to project
--
CREATE TRIGGER "trg_projects_softdel" BEFORE DELETE ON "core"."projects" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to project
--
CREATE TRIGGER "trg_projects_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."projects" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on project
--
ALTER TABLE "core"."projects" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."projects" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_projects_tenant" ON "core"."projects" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Attach touch trigger (app.touch_row) to tablemetadata
--
CREATE TRIGGER "trg_table_metadata_touch" BEFORE UPDATE ON "core"."table_metadata" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to tablemetadata
--
CREATE TRIGGER "trg_table_metadata_softdel" BEFORE DELETE ON "core"."table_metadata" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to tablemetadata
--
CREATE TRIGGER "trg_table_metadata_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."table_metadata" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on tablemetadata
--
ALTER TABLE "core"."table_metadata" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."table_metadata" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_table_metadata_tenant" ON "core"."table_metadata" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Attach touch trigger (app.touch_row) to apikey
--
CREATE TRIGGER "trg_api_keys_touch" BEFORE UPDATE ON "core"."api_keys" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach audit trigger (ops.log_audit) to apikey
--
CREATE TRIGGER "trg_api_keys_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."api_keys" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on apikey
--
ALTER TABLE "core"."api_keys" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."api_keys" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_api_keys_tenant" ON "core"."api_keys" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Attach touch trigger (app.touch_row) to file
--
CREATE TRIGGER "trg_files_touch" BEFORE UPDATE ON "core"."files" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Enable tenant row level security on file
--
ALTER TABLE "core"."files" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."files" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_files_tenant" ON "core"."files" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
ALTER TABLE "core"."projects" ADD CONSTRAINT "projects_user_id_155ff78a_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."tenants" ADD CONSTRAINT "tenants_default_currency_a9f1aa12_fk_currencies_code" FOREIGN KEY ("default_currency") REFERENCES "cfg"."currencies" ("code");
ALTER TABLE "core"."tenants" ADD CONSTRAINT "tenants_default_language_709812c9_fk_languages_code" FOREIGN KEY ("default_language") REFERENCES "cfg"."languages" ("code");
ALTER TABLE "core"."table_metadata" ADD CONSTRAINT "table_metadata_project_id_c346738e_fk_projects_id" FOREIGN KEY ("project_id") REFERENCES "core"."projects" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."table_metadata" ADD CONSTRAINT "table_metadata_tenant_id_23246a77_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."projects" ADD CONSTRAINT "projects_tenant_id_fc504db5_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."files" ADD CONSTRAINT "files_uploaded_by_21c63dfc_fk_users_id" FOREIGN KEY ("uploaded_by") REFERENCES "core"."users" ("id");
ALTER TABLE "core"."files" ADD CONSTRAINT "files_tenant_id_ba9f101a_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id");
ALTER TABLE "core"."api_keys" ADD CONSTRAINT "api_keys_user_id_1367826c_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."api_keys" ADD CONSTRAINT "api_keys_project_id_30c2e355_fk_projects_id" FOREIGN KEY ("project_id") REFERENCES "core"."projects" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."api_keys" ADD CONSTRAINT "api_keys_tenant_id_e6c8b0b1_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."users" ADD CONSTRAINT "users_tenant_id_07f315ee_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id");
ALTER TABLE "core"."user_sessions" ADD CONSTRAINT "user_sessions_tenant_id_51747a00_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id");
ALTER TABLE "core"."user_sessions" ADD CONSTRAINT "user_sessions_user_id_43ce9642_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id");
ALTER TABLE "core"."user_2fa" ADD CONSTRAINT "user_2fa_tenant_id_a77e2c26_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id");
ALTER TABLE "core"."user_2fa" ADD CONSTRAINT "user_2fa_user_id_d4218de8_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id");

-- migration contenttypes.0001_initial
--
-- Create model ContentType
--
CREATE TABLE "django_content_type" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "name" varchar(100) NOT NULL, "app_label" varchar(100) NOT NULL, "model" varchar(100) NOT NULL);
--
-- Alter unique_together for contenttype (1 constraint(s))
--
ALTER TABLE "django_content_type" ADD CONSTRAINT "django_content_type_app_label_model_76bd3d3b_uniq" UNIQUE ("app_label", "model");

-- migration admin.0001_initial
--
-- Create model LogEntry
--
CREATE TABLE "django_admin_log" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "action_time" timestamp with time zone NOT NULL, "object_id" text NULL, "object_repr" varchar(200) NOT NULL, "action_flag" smallint NOT NULL CHECK ("action_flag" >= 0), "change_message" text NOT NULL, "content_type_id" integer NULL, "user_id" integer NOT NULL);
ALTER TABLE "django_admin_log" ADD CONSTRAINT "django_admin_log_content_type_id_c4bce8eb_fk_django_co" FOREIGN KEY ("content_type_id") REFERENCES "django_content_type" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "django_admin_log" ADD CONSTRAINT "django_admin_log_user_id_c564eba6_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id") DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX "django_admin_log_content_type_id_c4bce8eb" ON "django_admin_log" ("content_type_id");
CREATE INDEX "django_admin_log_user_id_c564eba6" ON "django_admin_log" ("user_id");

-- migration admin.0002_logentry_remove_auto_add
--
-- Alter field action_time on logentry
--
-- (no-op)

-- migration admin.0003_logentry_add_action_flag_choices
--
-- Alter field action_flag on logentry
--
-- (no-op)

-- migration contenttypes.0002_remove_content_type_name
--
-- Change Meta options on contenttype
--
-- (no-op)
--
-- Alter field name on contenttype
--
ALTER TABLE "django_content_type" ALTER COLUMN "name" DROP NOT NULL;
--
-- Raw Python operation
--
-- THIS OPERATION CANNOT BE WRITTEN AS SQL
--
-- Remove field name from contenttype
--
ALTER TABLE "django_content_type" DROP COLUMN "name" CASCADE;

-- migration auth.0001_initial
--
-- Create model Permission
--
CREATE TABLE "auth_permission" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "name" varchar(50) NOT NULL, "content_type_id" integer NOT NULL, "codename" varchar(100) NOT NULL);
--
-- Create model Group
--
CREATE TABLE "auth_group" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "name" varchar(80) NOT NULL UNIQUE);
CREATE TABLE "auth_group_permissions" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "group_id" integer NOT NULL, "permission_id" integer NOT NULL);
--
-- Create model User
--
-- (no-op)
ALTER TABLE "auth_permission" ADD CONSTRAINT "auth_permission_content_type_id_codename_01ab375a_uniq" UNIQUE ("content_type_id", "codename");
ALTER TABLE "auth_permission" ADD CONSTRAINT "auth_permission_content_type_id_2f476e4b_fk_django_co" FOREIGN KEY ("content_type_id") REFERENCES "django_content_type" ("id") DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX "auth_permission_content_type_id_2f476e4b" ON "auth_permission" ("content_type_id");
CREATE INDEX "auth_group_name_a6ea08ec_like" ON "auth_group" ("name" varchar_pattern_ops);
ALTER TABLE "auth_group_permissions" ADD CONSTRAINT "auth_group_permissions_group_id_permission_id_0cd325b0_uniq" UNIQUE ("group_id", "permission_id");
ALTER TABLE "auth_group_permissions" ADD CONSTRAINT "auth_group_permissions_group_id_b120cbf9_fk_auth_group_id" FOREIGN KEY ("group_id") REFERENCES "auth_group" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "auth_group_permissions" ADD CONSTRAINT "auth_group_permissio_permission_id_84c5c92e_fk_auth_perm" FOREIGN KEY ("permission_id") REFERENCES "auth_permission" ("id") DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX "auth_group_permissions_group_id_b120cbf9" ON "auth_group_permissions" ("group_id");
CREATE INDEX "auth_group_permissions_permission_id_84c5c92e" ON "auth_group_permissions" ("permission_id");

-- migration auth.0002_alter_permission_name_max_length
--
-- Alter field name on permission
--
ALTER TABLE "auth_permission" ALTER COLUMN "name" TYPE varchar(255);

-- migration auth.0003_alter_user_email_max_length
--
-- Alter field email on user
--
-- (no-op)

-- migration auth.0004_alter_user_username_opts
--
-- Alter field username on user
--
-- (no-op)

-- migration auth.0005_alter_user_last_login_null
--
-- Alter field last_login on user
--
-- (no-op)

-- migration auth.0006_require_contenttypes_0002


-- migration auth.0007_alter_validators_add_error_messages
--
-- Alter field username on user
--
-- (no-op)

-- migration auth.0008_alter_user_username_max_length
--
-- Alter field username on user
--
-- (no-op)

-- migration auth.0009_alter_user_last_name_max_length
--
-- Alter field last_name on user
--
-- (no-op)

-- migration auth.0010_alter_group_name_max_length
--
-- Alter field name on group
--
ALTER TABLE "auth_group" ALTER COLUMN "name" TYPE varchar(150);

-- migration auth.0011_update_proxy_permissions
--
-- Raw Python operation
--
-- THIS OPERATION CANNOT BE WRITTEN AS SQL

-- migration auth.0012_alter_user_first_name_max_length
--
-- Alter field first_name on user
--
-- (no-op)

-- migration axes.0001_initial
--
-- Create model AccessAttempt
--
CREATE TABLE "axes_accessattempt" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "user_agent" varchar(255) NOT NULL, "ip_address" inet NULL, "username" varchar(255) NULL, "trusted" boolean NOT NULL, "http_accept" varchar(1025) NOT NULL, "path_info" varchar(255) NOT NULL, "attempt_time" timestamp with time zone NOT NULL, "get_data" text NOT NULL, "post_data" text NOT NULL, "failures_since_start" integer NOT NULL CHECK ("failures_since_start" >= 0));
--
-- Create model AccessLog
--
CREATE TABLE "axes_accesslog" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "user_agent" varchar(255) NOT NULL, "ip_address" inet NULL, "username" varchar(255) NULL, "trusted" boolean NOT NULL, "http_accept" varchar(1025) NOT NULL, "path_info" varchar(255) NOT NULL, "attempt_time" timestamp with time zone NOT NULL, "logout_time" timestamp with time zone NULL);

-- migration axes.0002_auto_20151217_2044
--
-- Alter field ip_address on accessattempt
--
CREATE INDEX "axes_accessattempt_ip_address_10922d9c" ON "axes_accessattempt" ("ip_address");
--
-- Alter field trusted on accessattempt
--
CREATE INDEX "axes_accessattempt_trusted_0eddf52e" ON "axes_accessattempt" ("trusted");
--
-- Alter field user_agent on accessattempt
--
CREATE INDEX "axes_accessattempt_user_agent_ad89678b" ON "axes_accessattempt" ("user_agent");
CREATE INDEX "axes_accessattempt_user_agent_ad89678b_like" ON "axes_accessattempt" ("user_agent" varchar_pattern_ops);
--
-- Alter field username on accessattempt
--
CREATE INDEX "axes_accessattempt_username_3f2d4ca0" ON "axes_accessattempt" ("username");
CREATE INDEX "axes_accessattempt_username_3f2d4ca0_like" ON "axes_accessattempt" ("username" varchar_pattern_ops);
--
-- Alter field ip_address on accesslog
--
CREATE INDEX "axes_accesslog_ip_address_86b417e5" ON "axes_accesslog" ("ip_address");
--
-- Alter field trusted on accesslog
--
CREATE INDEX "axes_accesslog_trusted_496c5681" ON "axes_accesslog" ("trusted");
--
-- Alter field user_agent on accesslog
--
CREATE INDEX "axes_accesslog_user_agent_0e659004" ON "axes_accesslog" ("user_agent");
CREATE INDEX "axes_accesslog_user_agent_0e659004_like" ON "axes_accesslog" ("user_agent" varchar_pattern_ops);
--
-- Alter field username on accesslog
--
CREATE INDEX "axes_accesslog_username_df93064b" ON "axes_accesslog" ("username");
CREATE INDEX "axes_accesslog_username_df93064b_like" ON "axes_accesslog" ("username" varchar_pattern_ops);

-- migration axes.0003_auto_20160322_0929
--
-- Alter field failures_since_start on accessattempt
--
-- (no-op)
--
-- Alter field get_data on accessattempt
--
-- (no-op)
--
-- Alter field http_accept on accessattempt
--
-- (no-op)
--
-- Alter field ip_address on accessattempt
--
-- (no-op)
--
-- Alter field path_info on accessattempt
--
-- (no-op)
--
-- Alter field post_data on accessattempt
--
-- (no-op)
--
-- Alter field http_accept on accesslog
--
-- (no-op)
--
-- Alter field ip_address on accesslog
--
-- (no-op)
--
-- Alter field path_info on accesslog
--
-- (no-op)

-- migration axes.0004_auto_20181024_1538
--
-- Change Meta options on accessattempt
--
-- (no-op)
--
-- Change Meta options on accesslog
--
-- (no-op)
--
-- Alter field attempt_time on accessattempt
--
-- (no-op)
--
-- Alter field user_agent on accessattempt
--
-- (no-op)
--
-- Alter field username on accessattempt
--
-- (no-op)
--
-- Alter field attempt_time on accesslog
--
-- (no-op)
--
-- Alter field logout_time on accesslog
--
-- (no-op)
--
-- Alter field user_agent on accesslog
--
-- (no-op)
--
-- Alter field username on accesslog
--
-- (no-op)

-- migration axes.0005_remove_accessattempt_trusted
--
-- Remove field trusted from accessattempt
--
ALTER TABLE "axes_accessattempt" DROP COLUMN "trusted" CASCADE;

-- migration axes.0006_remove_accesslog_trusted
--
-- Remove field trusted from accesslog
--
ALTER TABLE "axes_accesslog" DROP COLUMN "trusted" CASCADE;

-- migration axes.0007_alter_accessattempt_unique_together
--
-- Raw Python operation
--
-- THIS OPERATION CANNOT BE WRITTEN AS SQL
--
-- Alter unique_together for accessattempt (1 constraint(s))
--
ALTER TABLE "axes_accessattempt" ADD CONSTRAINT "axes_accessattempt_username_ip_address_user_agent_8ea22282_uniq" UNIQUE ("username", "ip_address", "user_agent");

-- migration axes.0008_accessfailurelog
--
-- Create model AccessFailureLog
--
CREATE TABLE "axes_accessfailurelog" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "user_agent" varchar(255) NOT NULL, "ip_address" inet NULL, "username" varchar(255) NULL, "http_accept" varchar(1025) NOT NULL, "path_info" varchar(255) NOT NULL, "attempt_time" timestamp with time zone NOT NULL, "locked_out" boolean NOT NULL);
CREATE INDEX "axes_accessfailurelog_user_agent_ea145dda" ON "axes_accessfailurelog" ("user_agent");
CREATE INDEX "axes_accessfailurelog_user_agent_ea145dda_like" ON "axes_accessfailurelog" ("user_agent" varchar_pattern_ops);
CREATE INDEX "axes_accessfailurelog_ip_address_2e9f5a7f" ON "axes_accessfailurelog" ("ip_address");
CREATE INDEX "axes_accessfailurelog_username_a8b7e8a4" ON "axes_accessfailurelog" ("username");
CREATE INDEX "axes_accessfailurelog_username_a8b7e8a4_like" ON "axes_accessfailurelog" ("username" varchar_pattern_ops);

-- migration axes.0009_add_session_hash
--
-- Add field session_hash to accesslog
--
ALTER TABLE "axes_accesslog" ADD COLUMN "session_hash" varchar(64) DEFAULT '' NOT NULL;
ALTER TABLE "axes_accesslog" ALTER COLUMN "session_hash" DROP DEFAULT;

-- migration axes.0010_accessattemptexpiration
--
-- Create model AccessAttemptExpiration
--
CREATE TABLE "axes_accessattemptexpiration" ("access_attempt_id" integer NOT NULL PRIMARY KEY, "expires_at" timestamp with time zone NOT NULL);
ALTER TABLE "axes_accessattemptexpiration" ADD CONSTRAINT "axes_accessattemptex_access_attempt_id_6b73a47a_fk_axes_acce" FOREIGN KEY ("access_attempt_id") REFERENCES "axes_accessattempt" ("id") DEFERRABLE INITIALLY DEFERRED;

-- migration hzm.0002_runtime_role_and_audit_trail
--
-- Ensure the runtime role exists (settings.HZM_APP_ROLE)
--
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role}}') THEN
    CREATE ROLE "{{runtime_role}}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role}}' AND (rolsuper OR rolbypassrls OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolinherit)) THEN
    ALTER ROLE "{{runtime_role}}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
END
$$;
--
-- Grant usage on schema app to the runtime role
--
GRANT USAGE ON SCHEMA "app" TO "{{runtime_role}}";
--
-- Grant usage on schema core to the runtime role
--
GRANT USAGE ON SCHEMA "core" TO "{{runtime_role}}";
--
-- Grant usage on schema cfg to the runtime role
--
GRANT USAGE ON SCHEMA "cfg" TO "{{runtime_role}}";
--
-- Grant usage on schema ops to the runtime role
--
GRANT USAGE ON SCHEMA "ops" TO "{{runtime_role}}";
--
-- Install function app.set_request_context(p_request_id text, p_ip_address inet, p_user_agent text)
--
CREATE OR REPLACE FUNCTION "app"."set_request_context"(p_request_id text, p_ip_address inet, p_user_agent text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('app.request_id', COALESCE(p_request_id, ''), true);
  PERFORM set_config('app.ip_address', COALESCE(host(p_ip_address), ''), true);
  PERFORM set_config('app.user_agent', COALESCE(p_user_agent, ''), true);
END$$;
--
-- Install function app.redact_secrets(doc jsonb)
--
CREATE OR REPLACE FUNCTION "app"."redact_secrets"(doc jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(jsonb_object_agg(
           key,
           CASE WHEN key IN ('password_hash', 'token', 'key_hash', 'key_encrypted',
                             'secret_encrypted', 'backup_codes_encrypted',
                             'email_verification_token', 'api_key', 'api_key_password')
                     AND value <> 'null'::jsonb
                THEN '"[redacted]"'::jsonb
                ELSE value END), '{}'::jsonb)
  FROM jsonb_each(doc)
$$;
--
-- Replace function ops.log_audit()
--
CREATE OR REPLACE FUNCTION "ops"."log_audit"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
  v_key text;
BEGIN
  IF TG_NARGS > 0 THEN
    SELECT string_agg(v_row ->> k.column_name, ',' ORDER BY k.position) INTO v_key
    FROM unnest(TG_ARGV) WITH ORDINALITY AS k(column_name, position);
  ELSE
    v_key := v_row ->> 'id';
  END IF;
  INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id,
                              old_values, new_values, ip_address, user_agent, request_id)
  VALUES (
    -- The context's tenant; a platform admin (no tenant context) changing a tenant's
    -- row is recorded under that row's tenant (for core.tenants, the row itself), so
    -- the tenant sees it too.
    COALESCE(
      app.current_tenant(),
      (v_row ->> 'tenant_id')::int,
      CASE WHEN TG_TABLE_SCHEMA = 'core' AND TG_TABLE_NAME = 'tenants'
           THEN (v_row ->> 'id')::int END
    ),
    app.current_user_id(),
    TG_OP,
    TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
    v_key,
    CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN app.redact_secrets(to_jsonb(OLD)) END,
    CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN app.redact_secrets(to_jsonb(NEW)) END,
    nullif(current_setting('app.ip_address', true), '')::inet,
    nullif(current_setting('app.user_agent', true), ''),
    nullif(current_setting('app.request_id', true), '')
  );
  RETURN NULL;
END$$;
--
-- Replace function app.soft_delete()
--
CREATE OR REPLACE FUNCTION "app"."soft_delete"()
RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v_user int := app.current_user_id();
BEGIN
  -- An explicit purge (app.purge = 'on') deletes for real, but only for the table's
  -- owner: the runtime role can set the flag, yet never owns a table.
  IF current_setting('app.purge', true) = 'on'
     AND pg_catalog.pg_has_role(current_user,
           (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID), 'USAGE') THEN
    RETURN OLD;
  END IF;
  EXECUTE format(
    'UPDATE %I.%I SET is_deleted = true, deleted_at = now(), deleted_by = $1 WHERE id = $2',
    TG_TABLE_SCHEMA, TG_TABLE_NAME
  ) USING v_user, OLD.id;
  RETURN NULL;
END$$;

-- migration hzm.0003_add_microservices
--
-- Ensure the comms service role exists (<HZM_APP_ROLE>_comms)
--
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role_comms}}') THEN
    CREATE ROLE "{{runtime_role_comms}}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role_comms}}' AND (rolsuper OR rolbypassrls OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolinherit)) THEN
    ALTER ROLE "{{runtime_role_comms}}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
END
$$;
--
-- Grant usage on schema comms to the comms service role
--
GRANT USAGE ON SCHEMA "comms" TO "{{runtime_role_comms}}";
--
-- Grant usage on schema app to the comms service role
--
GRANT USAGE ON SCHEMA "app" TO "{{runtime_role_comms}}";
--
-- Grant usage on schema core to the comms service role
--
GRANT USAGE ON SCHEMA "core" TO "{{runtime_role_comms}}";
--
-- Ensure the billing service role exists (<HZM_APP_ROLE>_billing)
--
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role_billing}}') THEN
    CREATE ROLE "{{runtime_role_billing}}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role_billing}}' AND (rolsuper OR rolbypassrls OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolinherit)) THEN
    ALTER ROLE "{{runtime_role_billing}}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
END
$$;
--
-- Grant usage on schema billing to the billing service role
--
GRANT USAGE ON SCHEMA "billing" TO "{{runtime_role_billing}}";
--
-- Grant usage on schema app to the billing service role
--
GRANT USAGE ON SCHEMA "app" TO "{{runtime_role_billing}}";
--
-- Grant usage on schema core to the billing service role
--
GRANT USAGE ON SCHEMA "core" TO "{{runtime_role_billing}}";

-- migration core.0002_tenant_isolation
--
-- Remove constraint unique_project_name_per_tenant from model project
--
ALTER TABLE "core"."projects" DROP CONSTRAINT "unique_project_name_per_tenant";
--
-- Remove constraint unique_table_per_project from model tablemetadata
--
ALTER TABLE "core"."table_metadata" DROP CONSTRAINT "unique_table_per_project";
--
-- Create constraint unique_project_name_per_tenant on model project
--
CREATE UNIQUE INDEX "unique_project_name_per_tenant" ON "core"."projects" ("tenant_id", "name") WHERE "is_deleted" = false;
--
-- Create constraint projects_tenant_id_id_key on model project
--
ALTER TABLE "core"."projects" ADD CONSTRAINT "projects_tenant_id_id_key" UNIQUE ("tenant_id", "id");
--
-- Create constraint unique_table_per_project on model tablemetadata
--
CREATE UNIQUE INDEX "unique_table_per_project" ON "core"."table_metadata" ("tenant_id", "project_id", "table_name") WHERE "is_deleted" = false;
--
-- Create constraint table_metadata_tenant_project_id_key on model tablemetadata
--
ALTER TABLE "core"."table_metadata" ADD CONSTRAINT "table_metadata_tenant_project_id_key" UNIQUE ("tenant_id", "project_id", "id");
--
-- Create constraint users_tenant_id_id_key on model user
--
ALTER TABLE "core"."users" ADD CONSTRAINT "users_tenant_id_id_key" UNIQUE ("tenant_id", "id");
--
-- Grant SELECT on tenant to the runtime role
--
GRANT SELECT ON "core"."tenants" TO "{{runtime_role}}";
--
-- Enable tenant row level security on tenant
--
ALTER TABLE "core"."tenants" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."tenants" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_tenants_tenant" ON "core"."tenants" USING ("id" = app.current_tenant()) WITH CHECK ("id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on user to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."users" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on usersession to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."user_sessions" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on usertwofactor to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."user_2fa" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on project to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."projects" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on tablemetadata to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."table_metadata" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on apikey to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."api_keys" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on file to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."files" TO "{{runtime_role}}";
--
-- Add tenant foreign key fk_user_sessions_tenant_user on usersession -> user
--
ALTER TABLE "core"."user_sessions" ADD CONSTRAINT "fk_user_sessions_tenant_user" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "core"."users" ("tenant_id", "id");
--
-- Add tenant foreign key fk_user_2fa_tenant_user on usertwofactor -> user
--
ALTER TABLE "core"."user_2fa" ADD CONSTRAINT "fk_user_2fa_tenant_user" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "core"."users" ("tenant_id", "id");
--
-- Add tenant foreign key fk_projects_tenant_user on project -> user (on delete cascade)
--
ALTER TABLE "core"."projects" ADD CONSTRAINT "fk_projects_tenant_user" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "core"."users" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Add tenant foreign key fk_table_metadata_tenant_project on tablemetadata -> project (on delete cascade)
--
ALTER TABLE "core"."table_metadata" ADD CONSTRAINT "fk_table_metadata_tenant_project" FOREIGN KEY ("tenant_id", "project_id") REFERENCES "core"."projects" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Add tenant foreign key fk_api_keys_tenant_project on apikey -> project (on delete cascade)
--
ALTER TABLE "core"."api_keys" ADD CONSTRAINT "fk_api_keys_tenant_project" FOREIGN KEY ("tenant_id", "project_id") REFERENCES "core"."projects" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Add tenant foreign key fk_api_keys_tenant_user on apikey -> user (on delete cascade)
--
ALTER TABLE "core"."api_keys" ADD CONSTRAINT "fk_api_keys_tenant_user" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "core"."users" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Add tenant foreign key fk_files_tenant_uploaded_by on file -> user
--
ALTER TABLE "core"."files" ADD CONSTRAINT "fk_files_tenant_uploaded_by" FOREIGN KEY ("tenant_id", "uploaded_by") REFERENCES "core"."users" ("tenant_id", "id");

-- migration billing.0001_add_billing
--
-- Create model Plan
--
CREATE TABLE "billing"."plans" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "code" varchar(50) NOT NULL, "name" varchar(100) NOT NULL, "description" text NULL, "price_monthly" numeric(12, 2) DEFAULT 0 NOT NULL, "price_yearly" numeric(12, 2) NULL, "trial_days" integer DEFAULT 0 NOT NULL, "max_projects" integer NULL, "max_tables_per_project" integer NULL, "max_records" integer NULL, "limits" jsonb DEFAULT (('{}')::jsonb) NOT NULL, "features" jsonb DEFAULT (('{}')::jsonb) NOT NULL, "is_active" boolean DEFAULT true NOT NULL, "is_public" boolean DEFAULT true NOT NULL, "sort_order" integer DEFAULT 0 NOT NULL, "currency" varchar(3) DEFAULT 'USD' NOT NULL);
--
-- Create model Subscription
--
CREATE TABLE "billing"."subscriptions" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "created_by" integer NULL, "updated_by" integer NULL, "status" varchar(20) DEFAULT 'active' NOT NULL, "billing_cycle" varchar(10) DEFAULT 'monthly' NOT NULL, "current_period_start" timestamp with time zone NOT NULL, "current_period_end" timestamp with time zone NOT NULL, "trial_ends_at" timestamp with time zone NULL, "cancel_at_period_end" boolean DEFAULT false NOT NULL, "canceled_at" timestamp with time zone NULL, "ended_at" timestamp with time zone NULL, "external_id" varchar(255) NULL, "plan_id" integer NOT NULL, "tenant_id" integer NOT NULL);
--
-- Create constraint plans_code_key on model plan
--
ALTER TABLE "billing"."plans" ADD CONSTRAINT "plans_code_key" UNIQUE ("code");
--
-- Create constraint plans_code_format on model plan
--
ALTER TABLE "billing"."plans" ADD CONSTRAINT "plans_code_format" CHECK ("code"::text ~  E'^[a-z][a-z0-9_-]*\\Z');
--
-- Create constraint plans_prices_not_negative on model plan
--
ALTER TABLE "billing"."plans" ADD CONSTRAINT "plans_prices_not_negative" CHECK (("price_monthly" >= 0 AND ("price_yearly" IS NULL OR "price_yearly" >= 0)));
--
-- Create constraint plans_trial_days_check on model plan
--
ALTER TABLE "billing"."plans" ADD CONSTRAINT "plans_trial_days_check" CHECK ("trial_days" >= 0);
--
-- Create constraint plans_limits_not_negative on model plan
--
ALTER TABLE "billing"."plans" ADD CONSTRAINT "plans_limits_not_negative" CHECK ((("max_projects" IS NULL OR "max_projects" >= 0) AND ("max_tables_per_project" IS NULL OR "max_tables_per_project" >= 0) AND ("max_records" IS NULL OR "max_records" >= 0)));
--
-- Create index idx_subscriptions_tenant on field(s) tenant of model subscription
--
CREATE INDEX "idx_subscriptions_tenant" ON "billing"."subscriptions" ("tenant_id");
--
-- Create index idx_subscriptions_plan on field(s) plan of model subscription
--
CREATE INDEX "idx_subscriptions_plan" ON "billing"."subscriptions" ("plan_id");
--
-- Create index idx_subscriptions_period_end on field(s) current_period_end of model subscription
--
CREATE INDEX "idx_subscriptions_period_end" ON "billing"."subscriptions" ("current_period_end") WHERE "status" IN ('trialing', 'active', 'past_due');
--
-- Create constraint unique_current_subscription_per_tenant on model subscription
--
CREATE UNIQUE INDEX "unique_current_subscription_per_tenant" ON "billing"."subscriptions" ("tenant_id") WHERE "status" IN ('trialing', 'active', 'past_due');
--
-- Create constraint subscriptions_external_id_key on model subscription
--
ALTER TABLE "billing"."subscriptions" ADD CONSTRAINT "subscriptions_external_id_key" UNIQUE ("external_id");
--
-- Create constraint subscriptions_status_check on model subscription
--
ALTER TABLE "billing"."subscriptions" ADD CONSTRAINT "subscriptions_status_check" CHECK ("status" IN ('trialing', 'active', 'past_due', 'canceled', 'expired'));
--
-- Create constraint subscriptions_billing_cycle_check on model subscription
--
ALTER TABLE "billing"."subscriptions" ADD CONSTRAINT "subscriptions_billing_cycle_check" CHECK ("billing_cycle" IN ('monthly', 'yearly'));
--
-- Create constraint subscriptions_period_check on model subscription
--
ALTER TABLE "billing"."subscriptions" ADD CONSTRAINT "subscriptions_period_check" CHECK ("current_period_end" > ("current_period_start"));
--
-- Create constraint subscriptions_trial_end_check on model subscription
--
ALTER TABLE "billing"."subscriptions" ADD CONSTRAINT "subscriptions_trial_end_check" CHECK ((NOT ("status" = 'trialing') OR "trial_ends_at" IS NOT NULL));
--
-- Create constraint subscriptions_ended_check on model subscription
--
ALTER TABLE "billing"."subscriptions" ADD CONSTRAINT "subscriptions_ended_check" CHECK ((NOT ("status" IN ('canceled', 'expired')) OR "ended_at" IS NOT NULL));
--
-- Grant usage on schema billing to the runtime role
--
GRANT USAGE ON SCHEMA "billing" TO "{{runtime_role}}";
--
-- Attach touch trigger (app.touch_row) to plan
--
CREATE TRIGGER "trg_plans_touch" BEFORE UPDATE ON "billing"."plans" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach audit trigger (ops.log_audit) to plan
--
CREATE TRIGGER "trg_plans_audit" AFTER INSERT OR UPDATE OR DELETE ON "billing"."plans" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Grant SELECT on plan to the runtime role
--
GRANT SELECT ON "billing"."plans" TO "{{runtime_role}}";
--
-- Grant SELECT on plan to the billing service role
--
GRANT SELECT ON "billing"."plans" TO "{{runtime_role_billing}}";
--
-- Install function billing.sync_tenant_subscription()
--
CREATE OR REPLACE FUNCTION "billing"."sync_tenant_subscription"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_caller_tenant text := current_setting('app.tenant_id', true);
  v_plan_changed boolean;
  v_plan billing.plans%ROWTYPE;
  v_ends timestamptz;
BEGIN
  PERFORM set_config('app.tenant_id', NEW.tenant_id::text, true);
  IF NEW.status NOT IN ('trialing', 'active', 'past_due') AND EXISTS (
       SELECT 1 FROM billing.subscriptions s
       WHERE s.tenant_id = NEW.tenant_id AND s.id <> NEW.id
         AND s.status IN ('trialing', 'active', 'past_due')) THEN
    PERFORM set_config('app.tenant_id', coalesce(v_caller_tenant, ''), true);
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    v_plan_changed := true;
  ELSE
    v_plan_changed := NEW.plan_id IS DISTINCT FROM OLD.plan_id;
  END IF;
  SELECT * INTO STRICT v_plan FROM billing.plans WHERE id = NEW.plan_id;
  v_ends := CASE
    WHEN NEW.status IN ('canceled', 'expired') THEN NEW.ended_at
    WHEN NEW.cancel_at_period_end THEN NEW.current_period_end
  END;
  UPDATE core.tenants t SET
    subscription_status = NEW.status,
    trial_ends_at = NEW.trial_ends_at,
    subscription_ends_at = v_ends,
    plan = CASE WHEN v_plan_changed THEN v_plan.code ELSE t.plan END,
    max_projects = CASE WHEN v_plan_changed THEN v_plan.max_projects ELSE t.max_projects END,
    max_tables_per_project = CASE WHEN v_plan_changed
      THEN v_plan.max_tables_per_project ELSE t.max_tables_per_project END,
    max_records = CASE WHEN v_plan_changed THEN v_plan.max_records ELSE t.max_records END,
    limits = CASE WHEN v_plan_changed THEN v_plan.limits ELSE t.limits END,
    features = CASE WHEN v_plan_changed THEN v_plan.features ELSE t.features END
  WHERE t.id = NEW.tenant_id
    -- Only a real change: every UPDATE bumps the tenant's version and is audited.
    AND ((t.subscription_status, t.trial_ends_at, t.subscription_ends_at)
           IS DISTINCT FROM (NEW.status, NEW.trial_ends_at, v_ends)
         OR (v_plan_changed AND (t.plan, t.max_projects, t.max_tables_per_project,
                                 t.max_records, t.limits, t.features)
               IS DISTINCT FROM (v_plan.code, v_plan.max_projects,
                                 v_plan.max_tables_per_project, v_plan.max_records,
                                 v_plan.limits, v_plan.features)));
  PERFORM set_config('app.tenant_id', coalesce(v_caller_tenant, ''), true);
  RETURN NULL;
END$$;
--
-- Attach touch trigger (app.touch_row) to subscription
--
CREATE TRIGGER "trg_subscriptions_touch" BEFORE UPDATE ON "billing"."subscriptions" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach audit trigger (ops.log_audit) to subscription
--
CREATE TRIGGER "trg_subscriptions_audit" AFTER INSERT OR UPDATE OR DELETE ON "billing"."subscriptions" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Attach tenant_sync trigger (billing.sync_tenant_subscription) to subscription
--
CREATE TRIGGER "trg_subscriptions_tenant_sync" AFTER INSERT OR UPDATE ON "billing"."subscriptions" FOR EACH ROW EXECUTE FUNCTION "billing"."sync_tenant_subscription"();
--
-- Enable tenant row level security on subscription
--
ALTER TABLE "billing"."subscriptions" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "billing"."subscriptions" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_subscriptions_tenant" ON "billing"."subscriptions" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT on subscription to the runtime role
--
GRANT SELECT ON "billing"."subscriptions" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE on subscription to the billing service role
--
GRANT SELECT, INSERT, UPDATE ON "billing"."subscriptions" TO "{{runtime_role_billing}}";
--
-- Grant SELECT on core.tenant (id, name, slug, default_currency, plan, subscription_status, trial_ends_at, subscription_ends_at) to the billing service role
--
GRANT SELECT ("id", "name", "slug", "default_currency", "plan", "subscription_status", "trial_ends_at", "subscription_ends_at") ON "core"."tenants" TO "{{runtime_role_billing}}";
ALTER TABLE "billing"."plans" ADD CONSTRAINT "plans_currency_74b18354_fk_currencies_code" FOREIGN KEY ("currency") REFERENCES "cfg"."currencies" ("code");
ALTER TABLE "billing"."subscriptions" ADD CONSTRAINT "subscriptions_plan_id_b857580e_fk_plans_id" FOREIGN KEY ("plan_id") REFERENCES "billing"."plans" ("id");
ALTER TABLE "billing"."subscriptions" ADD CONSTRAINT "subscriptions_tenant_id_4275a0ca_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;

-- migration ops.0002_audit_trail_rls
--
-- Enable tenant row level security on auditlog
--
ALTER TABLE "ops"."audit_logs" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "ops"."audit_logs" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_audit_logs_tenant" ON "ops"."audit_logs" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Create policy rls_audit_logs_append on auditlog
--
CREATE POLICY "rls_audit_logs_append" ON "ops"."audit_logs" FOR INSERT WITH CHECK (true);
--
-- Grant SELECT on auditlog to the runtime role
--
GRANT SELECT ON "ops"."audit_logs" TO "{{runtime_role}}";

-- migration cfg.0002_runtime_access
--
-- Grant SELECT on language to the runtime role
--
GRANT SELECT ON "cfg"."languages" TO "{{runtime_role}}";
--
-- Grant SELECT on currency to the runtime role
--
GRANT SELECT ON "cfg"."currencies" TO "{{runtime_role}}";
--
-- Grant SELECT on exchangerate to the runtime role
--
GRANT SELECT ON "cfg"."exchange_rates" TO "{{runtime_role}}";
--
-- Grant SELECT on translation to the runtime role
--
GRANT SELECT ON "cfg"."translations" TO "{{runtime_role}}";
--
-- Enable tenant row level security on translation
--
ALTER TABLE "cfg"."translations" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "cfg"."translations" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_translations_tenant" ON "cfg"."translations" USING ("tenant_id" IS NULL OR "tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());

-- migration cfg.0003_audit_triggers
--
-- Attach audit trigger (ops.log_audit) to language
--
CREATE TRIGGER "trg_languages_audit" AFTER INSERT OR UPDATE OR DELETE ON "cfg"."languages" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"('code');
--
-- Attach audit trigger (ops.log_audit) to currency
--
CREATE TRIGGER "trg_currencies_audit" AFTER INSERT OR UPDATE OR DELETE ON "cfg"."currencies" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"('code');
--
-- Attach audit trigger (ops.log_audit) to exchangerate
--
CREATE TRIGGER "trg_exchange_rates_audit" AFTER INSERT OR UPDATE OR DELETE ON "cfg"."exchange_rates" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"('from_currency', 'to_currency', 'rate_date');
--
-- Attach audit trigger (ops.log_audit) to translation
--
CREATE TRIGGER "trg_translations_audit" AFTER INSERT OR UPDATE OR DELETE ON "cfg"."translations" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();

-- migration cfg.0004_add_feature_flags
--
-- Create model FeatureFlag
--
CREATE TABLE "cfg"."feature_flags" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "created_by" integer NULL, "updated_by" integer NULL, "key" varchar(100) NOT NULL, "description" text NULL, "default_enabled" boolean DEFAULT false NOT NULL, "rollout_percentage" smallint NULL);
--
-- Create model FeatureFlagOverride
--
CREATE TABLE "cfg"."feature_flag_overrides" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "created_by" integer NULL, "updated_by" integer NULL, "tenant_id" integer NOT NULL, "enabled" boolean NOT NULL, "reason" text NULL, "flag_id" integer NOT NULL);
--
-- Attach touch trigger (app.touch_row) to featureflag
--
CREATE TRIGGER "trg_feature_flags_touch" BEFORE UPDATE ON "cfg"."feature_flags" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach audit trigger (ops.log_audit) to featureflag
--
CREATE TRIGGER "trg_feature_flags_audit" AFTER INSERT OR UPDATE OR DELETE ON "cfg"."feature_flags" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Grant SELECT on featureflag to the runtime role
--
GRANT SELECT ON "cfg"."feature_flags" TO "{{runtime_role}}";
--
-- Attach touch trigger (app.touch_row) to featureflagoverride
--
CREATE TRIGGER "trg_flag_overrides_touch" BEFORE UPDATE ON "cfg"."feature_flag_overrides" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach audit trigger (ops.log_audit) to featureflagoverride
--
CREATE TRIGGER "trg_flag_overrides_audit" AFTER INSERT OR UPDATE OR DELETE ON "cfg"."feature_flag_overrides" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on featureflagoverride
--
ALTER TABLE "cfg"."feature_flag_overrides" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "cfg"."feature_flag_overrides" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_flag_overrides_tenant" ON "cfg"."feature_flag_overrides" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT on featureflagoverride to the runtime role
--
GRANT SELECT ON "cfg"."feature_flag_overrides" TO "{{runtime_role}}";
ALTER TABLE "cfg"."feature_flags" ADD CONSTRAINT "feature_flags_key_key" UNIQUE ("key");
ALTER TABLE "cfg"."feature_flags" ADD CONSTRAINT "feature_flags_key_format" CHECK ("key"::text ~  E'^[a-z][a-z0-9_.-]*\\Z');
ALTER TABLE "cfg"."feature_flags" ADD CONSTRAINT "feature_flags_rollout_percentage_range" CHECK (("rollout_percentage" IS NULL OR ("rollout_percentage" >= 0 AND "rollout_percentage" <= 100)));
ALTER TABLE "cfg"."feature_flag_overrides" ADD CONSTRAINT "feature_flag_overrides_flag_id_7f7dbcc6_fk_feature_flags_id" FOREIGN KEY ("flag_id") REFERENCES "cfg"."feature_flags" ("id") ON DELETE CASCADE;
ALTER TABLE "cfg"."feature_flag_overrides" ADD CONSTRAINT "unique_flag_override" UNIQUE ("flag_id", "tenant_id");
CREATE INDEX "idx_flag_overrides_tenant" ON "cfg"."feature_flag_overrides" ("tenant_id");

-- migration cfg.0005_unique_global_translations
--
-- Remove constraint translations_tenant_id_language_code_translation_key_key from model translation
--
ALTER TABLE "cfg"."translations" DROP CONSTRAINT "translations_tenant_id_language_code_translation_key_key";
--
-- Create constraint translations_tenant_id_language_code_translation_key_key on model translation
--
ALTER TABLE "cfg"."translations" ADD CONSTRAINT "translations_tenant_id_language_code_translation_key_key" UNIQUE NULLS NOT DISTINCT ("tenant_id", "language_code", "translation_key");

-- migration comms.0001_add_notifications
--
-- Create model EmailQueue
--
CREATE TABLE "comms"."email_queue" ("version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "status" varchar(20) DEFAULT 'pending' NOT NULL, "attempts" integer DEFAULT 0 NOT NULL, "max_attempts" integer DEFAULT 5 NOT NULL, "next_attempt_at" timestamp with time zone DEFAULT (now()) NOT NULL, "last_attempt_at" timestamp with time zone NULL, "locked_at" timestamp with time zone NULL, "locked_by" varchar(100) NULL, "last_error" text NULL, "sent_at" timestamp with time zone NULL, "id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "to_email" citext NOT NULL, "to_name" varchar(200) NULL, "subject" varchar(998) NOT NULL, "body_text" text NULL, "body_html" text NULL, "template" varchar(100) NULL, "template_data" jsonb DEFAULT (('{}')::jsonb) NOT NULL, "tenant_id" integer NOT NULL, "user_id" integer NULL);
--
-- Create model Notification
--
CREATE TABLE "comms"."notifications" ("version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "kind" varchar(100) NOT NULL, "title" varchar(200) NOT NULL, "body" text NULL, "data" jsonb DEFAULT (('{}')::jsonb) NOT NULL, "link_url" varchar(500) NULL, "read_at" timestamp with time zone NULL, "tenant_id" integer NOT NULL, "user_id" integer NOT NULL);
--
-- Grant usage on schema comms to the runtime role
--
GRANT USAGE ON SCHEMA "comms" TO "{{runtime_role}}";
--
-- Attach touch trigger (app.touch_row) to notification
--
CREATE TRIGGER "trg_notifications_touch" BEFORE UPDATE ON "comms"."notifications" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Enable tenant row level security on notification
--
ALTER TABLE "comms"."notifications" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "comms"."notifications" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_notifications_tenant" ON "comms"."notifications" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on notification to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "comms"."notifications" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE on notification to the comms service role
--
GRANT SELECT, INSERT, UPDATE ON "comms"."notifications" TO "{{runtime_role_comms}}";
--
-- Add tenant foreign key fk_notifications_tenant_user on notification -> core.user (on delete cascade)
--
ALTER TABLE "comms"."notifications" ADD CONSTRAINT "fk_notifications_tenant_user" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "core"."users" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Attach touch trigger (app.touch_row) to emailqueue
--
CREATE TRIGGER "trg_email_queue_touch" BEFORE UPDATE ON "comms"."email_queue" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Enable tenant row level security on emailqueue
--
ALTER TABLE "comms"."email_queue" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "comms"."email_queue" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_email_queue_tenant" ON "comms"."email_queue" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on emailqueue to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "comms"."email_queue" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE on emailqueue to the comms service role
--
GRANT SELECT, INSERT, UPDATE ON "comms"."email_queue" TO "{{runtime_role_comms}}";
--
-- Add tenant foreign key fk_email_queue_tenant_user on emailqueue -> core.user (on delete set null)
--
ALTER TABLE "comms"."email_queue" ADD CONSTRAINT "fk_email_queue_tenant_user" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "core"."users" ("tenant_id", "id") ON DELETE SET NULL ("user_id");
--
-- Grant SELECT on core.user (id, tenant_id, email, name, timezone, is_active, is_deleted) to the comms service role
--
GRANT SELECT ("id", "tenant_id", "email", "name", "timezone", "is_active", "is_deleted") ON "core"."users" TO "{{runtime_role_comms}}";
--
-- Grant SELECT on core.tenant (id, name, slug, domain, default_language, timezone, logo_url) to the comms service role
--
GRANT SELECT ("id", "name", "slug", "domain", "default_language", "timezone", "logo_url") ON "core"."tenants" TO "{{runtime_role_comms}}";
ALTER TABLE "comms"."email_queue" ADD CONSTRAINT "email_queue_tenant_id_83207c68_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "comms"."email_queue" ADD CONSTRAINT "email_queue_user_id_965a37c7_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id") ON DELETE SET NULL;
ALTER TABLE "comms"."email_queue" ADD CONSTRAINT "email_queue_status_check" CHECK ("status" IN ('pending', 'sending', 'sent', 'failed', 'dead'));
ALTER TABLE "comms"."email_queue" ADD CONSTRAINT "email_queue_attempts_check" CHECK (("attempts" >= 0 AND "attempts" <= ("max_attempts") AND "max_attempts" >= 1));
ALTER TABLE "comms"."email_queue" ADD CONSTRAINT "email_queue_sending_locked" CHECK ((NOT ("status" = 'sending') OR "locked_at" IS NOT NULL));
ALTER TABLE "comms"."email_queue" ADD CONSTRAINT "email_queue_sent_at" CHECK ((NOT ("status" = 'sent') OR "sent_at" IS NOT NULL));
ALTER TABLE "comms"."email_queue" ADD CONSTRAINT "email_queue_has_content" CHECK (("body_text" IS NOT NULL OR "body_html" IS NOT NULL OR "template" IS NOT NULL));
CREATE INDEX "idx_email_queue_tenant" ON "comms"."email_queue" ("tenant_id");
CREATE INDEX "idx_email_queue_user" ON "comms"."email_queue" ("user_id");
CREATE INDEX "idx_email_queue_due" ON "comms"."email_queue" ("next_attempt_at") WHERE "status" IN ('pending', 'failed');
CREATE INDEX "idx_email_queue_sending" ON "comms"."email_queue" ("locked_at") WHERE "status" = 'sending';
ALTER TABLE "comms"."notifications" ADD CONSTRAINT "notifications_tenant_id_30726c95_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "comms"."notifications" ADD CONSTRAINT "notifications_user_id_468e288d_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id") ON DELETE CASCADE;
CREATE INDEX "idx_notifications_tenant" ON "comms"."notifications" ("tenant_id");
CREATE INDEX "idx_notifications_user" ON "comms"."notifications" ("user_id", "created_at" DESC);
CREATE INDEX "idx_notifications_unread" ON "comms"."notifications" ("user_id") WHERE "read_at" IS NULL;

-- migration comms.0002_add_webhooks
--
-- Create model Webhook
--
CREATE TABLE "comms"."webhooks" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "created_by" integer NULL, "updated_by" integer NULL, "name" varchar(100) NOT NULL, "url" varchar(2000) NOT NULL, "events" text[] NOT NULL, "secret_encrypted" text NOT NULL, "description" text NULL, "is_active" boolean DEFAULT true NULL, "tenant_id" integer NOT NULL);
--
-- Create model WebhookDelivery
--
CREATE TABLE "comms"."webhook_deliveries" ("version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "status" varchar(20) DEFAULT 'pending' NOT NULL, "attempts" integer DEFAULT 0 NOT NULL, "max_attempts" integer DEFAULT 5 NOT NULL, "next_attempt_at" timestamp with time zone DEFAULT (now()) NOT NULL, "last_attempt_at" timestamp with time zone NULL, "locked_at" timestamp with time zone NULL, "locked_by" varchar(100) NULL, "last_error" text NULL, "sent_at" timestamp with time zone NULL, "id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "event" varchar(100) NOT NULL, "payload" jsonb NOT NULL, "signature" varchar(100) NOT NULL, "response_code" smallint NULL, "response_body" text NULL, "duration_ms" integer NULL, "tenant_id" integer NOT NULL, "webhook_id" integer NOT NULL);
--
-- Create index idx_webhooks_tenant on field(s) tenant of model webhook
--
CREATE INDEX "idx_webhooks_tenant" ON "comms"."webhooks" ("tenant_id");
--
-- Create index idx_webhooks_active on field(s) tenant of model webhook
--
CREATE INDEX "idx_webhooks_active" ON "comms"."webhooks" ("tenant_id") WHERE ("is_active" = true AND "is_deleted" = false);
--
-- Create index idx_webhooks_events on field(s) events of model webhook
--
CREATE INDEX "idx_webhooks_events" ON "comms"."webhooks" USING gin ("events");
--
-- Create constraint webhooks_tenant_id_id_key on model webhook
--
ALTER TABLE "comms"."webhooks" ADD CONSTRAINT "webhooks_tenant_id_id_key" UNIQUE ("tenant_id", "id");
--
-- Create constraint webhooks_url_http on model webhook
--
ALTER TABLE "comms"."webhooks" ADD CONSTRAINT "webhooks_url_http" CHECK ("url"::text ~ '^https?://');
--
-- Create constraint webhooks_events_not_empty on model webhook
--
ALTER TABLE "comms"."webhooks" ADD CONSTRAINT "webhooks_events_not_empty" CHECK (NOT ("events" = '{}'::text[]));
--
-- Create index idx_webhook_deliveries_tenant on field(s) tenant of model webhookdelivery
--
CREATE INDEX "idx_webhook_deliveries_tenant" ON "comms"."webhook_deliveries" ("tenant_id");
--
-- Create index idx_webhook_deliveries_webhook on F(webhook), OrderBy(F(created_at), descending=True) on model webhookdelivery
--
CREATE INDEX "idx_webhook_deliveries_webhook" ON "comms"."webhook_deliveries" ("webhook_id", "created_at" DESC);
--
-- Create index idx_webhook_deliveries_due on field(s) next_attempt_at of model webhookdelivery
--
CREATE INDEX "idx_webhook_deliveries_due" ON "comms"."webhook_deliveries" ("next_attempt_at") WHERE "status" IN ('pending', 'failed');
--
-- Create index idx_webhook_deliveries_sending on field(s) locked_at of model webhookdelivery
--
CREATE INDEX "idx_webhook_deliveries_sending" ON "comms"."webhook_deliveries" ("locked_at") WHERE "status" = 'sending';
--
-- Create constraint webhook_deliveries_status_check on model webhookdelivery
--
ALTER TABLE "comms"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_status_check" CHECK ("status" IN ('pending', 'sending', 'sent', 'failed', 'dead'));
--
-- Create constraint webhook_deliveries_attempts_check on model webhookdelivery
--
ALTER TABLE "comms"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_attempts_check" CHECK (("attempts" >= 0 AND "attempts" <= ("max_attempts") AND "max_attempts" >= 1));
--
-- Create constraint webhook_deliveries_sending_locked on model webhookdelivery
--
ALTER TABLE "comms"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_sending_locked" CHECK ((NOT ("status" = 'sending') OR "locked_at" IS NOT NULL));
--
-- Create constraint webhook_deliveries_sent_at on model webhookdelivery
--
ALTER TABLE "comms"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_sent_at" CHECK ((NOT ("status" = 'sent') OR "sent_at" IS NOT NULL));
--
-- Create constraint webhook_deliveries_response_code_range on model webhookdelivery
--
ALTER TABLE "comms"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_response_code_range" CHECK (("response_code" IS NULL OR ("response_code" >= 100 AND "response_code" <= 599)));
--
-- Attach touch trigger (app.touch_row) to webhook
--
CREATE TRIGGER "trg_webhooks_touch" BEFORE UPDATE ON "comms"."webhooks" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to webhook
--
CREATE TRIGGER "trg_webhooks_softdel" BEFORE DELETE ON "comms"."webhooks" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to webhook
--
CREATE TRIGGER "trg_webhooks_audit" AFTER INSERT OR UPDATE OR DELETE ON "comms"."webhooks" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on webhook
--
ALTER TABLE "comms"."webhooks" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "comms"."webhooks" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_webhooks_tenant" ON "comms"."webhooks" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on webhook to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "comms"."webhooks" TO "{{runtime_role}}";
--
-- Grant SELECT on webhook to the comms service role
--
GRANT SELECT ON "comms"."webhooks" TO "{{runtime_role_comms}}";
--
-- Attach touch trigger (app.touch_row) to webhookdelivery
--
CREATE TRIGGER "trg_webhook_deliveries_touch" BEFORE UPDATE ON "comms"."webhook_deliveries" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Enable tenant row level security on webhookdelivery
--
ALTER TABLE "comms"."webhook_deliveries" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "comms"."webhook_deliveries" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_webhook_deliveries_tenant" ON "comms"."webhook_deliveries" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on webhookdelivery to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "comms"."webhook_deliveries" TO "{{runtime_role}}";
--
-- Grant SELECT, INSERT, UPDATE on webhookdelivery to the comms service role
--
GRANT SELECT, INSERT, UPDATE ON "comms"."webhook_deliveries" TO "{{runtime_role_comms}}";
--
-- Add tenant foreign key fk_webhook_deliveries_tenant_webhook on webhookdelivery -> webhook (on delete cascade)
--
ALTER TABLE "comms"."webhook_deliveries" ADD CONSTRAINT "fk_webhook_deliveries_tenant_webhook" FOREIGN KEY ("tenant_id", "webhook_id") REFERENCES "comms"."webhooks" ("tenant_id", "id") ON DELETE CASCADE;
ALTER TABLE "comms"."webhooks" ADD CONSTRAINT "webhooks_tenant_id_37f214b7_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "comms"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_tenant_id_1e42846d_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "comms"."webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_webhook_id_484e7f8a_fk_webhooks_id" FOREIGN KEY ("webhook_id") REFERENCES "comms"."webhooks" ("id") ON DELETE CASCADE;

-- migration ops.0003_add_monitoring
--
-- Custom state/database change combination
--
CREATE TABLE "ops"."system_logs" (
  "id" bigint GENERATED BY DEFAULT AS IDENTITY,
  "level" varchar(10) NOT NULL,
  "source" varchar(100) NOT NULL,
  "message" text NOT NULL,
  "context" jsonb NOT NULL DEFAULT '{}'::jsonb,
  "request_id" varchar(100),
  "created_at" timestamp with time zone NOT NULL DEFAULT now(),
  PRIMARY KEY ("id", "created_at")
) PARTITION BY RANGE ("created_at");
CREATE TABLE "ops"."system_logs_default" PARTITION OF "ops"."system_logs" DEFAULT;
--
-- Create index idx_system_logs_created on field(s) created_at of model systemlog
--
CREATE INDEX "idx_system_logs_created" ON "ops"."system_logs" ("created_at");
--
-- Create index idx_system_logs_level on field(s) level, created_at of model systemlog
--
CREATE INDEX "idx_system_logs_level" ON "ops"."system_logs" ("level", "created_at");
--
-- Create index idx_system_logs_source on field(s) source, created_at of model systemlog
--
CREATE INDEX "idx_system_logs_source" ON "ops"."system_logs" ("source", "created_at");
--
-- Create index idx_system_logs_request on field(s) request_id of model systemlog
--
CREATE INDEX "idx_system_logs_request" ON "ops"."system_logs" ("request_id") WHERE "request_id" IS NOT NULL;
--
-- Create constraint system_logs_level_check on model systemlog
--
ALTER TABLE "ops"."system_logs" ADD CONSTRAINT "system_logs_level_check" CHECK ("level" IN ('debug', 'info', 'warning', 'error', 'critical'));
--
-- Install function ops.write_system_log(p_level text, p_source text, p_message text, p_context jsonb, p_request_id text)
--
CREATE OR REPLACE FUNCTION "ops"."write_system_log"(p_level text, p_source text, p_message text, p_context jsonb DEFAULT '{}', p_request_id text DEFAULT NULL)
RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  INSERT INTO ops.system_logs (level, source, message, context, request_id)
  VALUES (
    p_level,
    p_source,
    p_message,
    -- The caller never names the tenant or user: those come from the context only.
    (coalesce(p_context, '{}'::jsonb) - 'tenant_id' - 'user_id')
      || jsonb_strip_nulls(jsonb_build_object(
           'tenant_id', app.current_tenant(), 'user_id', app.current_user_id())),
    coalesce(p_request_id, nullif(current_setting('app.request_id', true), ''))
  )
  RETURNING id
$$;
--
-- Create policy rls_audit_logs_owner_read on auditlog
--
CREATE POLICY "rls_audit_logs_owner_read" ON "ops"."audit_logs" FOR SELECT USING (pg_catalog.pg_has_role(CURRENT_USER, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = 'ops.audit_logs'::pg_catalog.regclass), 'USAGE'));
--
-- Create policy rls_audit_logs_owner_prune on auditlog
--
CREATE POLICY "rls_audit_logs_owner_prune" ON "ops"."audit_logs" FOR DELETE USING (pg_catalog.pg_has_role(CURRENT_USER, (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = 'ops.audit_logs'::pg_catalog.regclass), 'USAGE'));

-- migration sessions.0001_initial
--
-- Create model Session
--
CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, "session_data" text NOT NULL, "expire_date" timestamp with time zone NOT NULL);
CREATE INDEX "django_session_session_key_c0390e0f_like" ON "django_session" ("session_key" varchar_pattern_ops);
CREATE INDEX "django_session_expire_date_a5c62663" ON "django_session" ("expire_date");

-- migration generic_data.0001_add_generic_data
--
-- Create model GenericData
--
CREATE TABLE "app"."generic_data" ("version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "created_by" integer NULL, "updated_by" integer NULL, "id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "data" jsonb DEFAULT (('{}')::jsonb) NOT NULL, "search_text" text GENERATED ALWAYS AS (app.jsonb_to_text("data")) STORED, "project_id" integer NOT NULL, "table_id" integer NOT NULL, "tenant_id" integer NOT NULL);
--
-- Attach touch trigger (app.touch_row) to genericdata
--
CREATE TRIGGER "trg_generic_data_touch" BEFORE UPDATE ON "app"."generic_data" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to genericdata
--
CREATE TRIGGER "trg_generic_data_softdel" BEFORE DELETE ON "app"."generic_data" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to genericdata
--
CREATE TRIGGER "trg_generic_data_audit" AFTER INSERT OR UPDATE OR DELETE ON "app"."generic_data" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on genericdata
--
ALTER TABLE "app"."generic_data" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "app"."generic_data" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_generic_data_tenant" ON "app"."generic_data" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
ALTER TABLE "app"."generic_data" ADD CONSTRAINT "generic_data_project_id_7731b38d_fk_projects_id" FOREIGN KEY ("project_id") REFERENCES "core"."projects" ("id") ON DELETE CASCADE;
ALTER TABLE "app"."generic_data" ADD CONSTRAINT "generic_data_table_id_9739915d_fk_table_metadata_id" FOREIGN KEY ("table_id") REFERENCES "core"."table_metadata" ("id") ON DELETE CASCADE;
ALTER TABLE "app"."generic_data" ADD CONSTRAINT "generic_data_tenant_id_71aa3a9b_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "app"."generic_data" ADD CONSTRAINT "unique_generic_data_per_table" UNIQUE ("tenant_id", "project_id", "table_id", "id");
CREATE INDEX "idx_generic_data_tenant" ON "app"."generic_data" ("tenant_id");
CREATE INDEX "idx_generic_data_project" ON "app"."generic_data" ("project_id");
CREATE INDEX "idx_generic_data_table" ON "app"."generic_data" ("table_id");
CREATE INDEX "idx_generic_data_composite" ON "app"."generic_data" ("tenant_id", "project_id", "table_id") WHERE "is_deleted" = false;
CREATE INDEX "idx_generic_data_search" ON "app"."generic_data" USING gin ((to_tsvector('english', "search_text")));
CREATE INDEX "idx_generic_data_jsonb" ON "app"."generic_data" USING gin ("data");

-- migration generic_data.0002_tenant_isolation
--
-- Grant SELECT, INSERT, UPDATE, DELETE on genericdata to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "app"."generic_data" TO "{{runtime_role}}";
--
-- Add tenant foreign key fk_generic_data_tenant_project_table on genericdata -> core.tablemetadata (on delete cascade)
--
ALTER TABLE "app"."generic_data" ADD CONSTRAINT "fk_generic_data_tenant_project_table" FOREIGN KEY ("tenant_id", "project_id", "table_id") REFERENCES "core"."table_metadata" ("tenant_id", "project_id", "id") ON DELETE CASCADE;

-- migration generic_data.0003_search_and_api_key_functions
--
-- Install function app.search_rows(p_table_id int, p_query text)
--
CREATE OR REPLACE FUNCTION "app"."search_rows"(p_table_id int, p_query text)
RETURNS SETOF bigint LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_tenant int := app.current_tenant();
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing, never everything
  END IF;
  -- The table is matched as table_id + 0, so that no index combines it with tenant_id:
  -- the planner cannot see that a table id implies its tenant, estimates the pair at a
  -- hundredth of its rows, and would run every row of a large table through
  -- to_tsvector() instead of intersecting the tenant's rows with the full-text index.
  RETURN QUERY EXECUTE
    'SELECT g.id FROM app.generic_data AS g
      WHERE g.tenant_id = $1 AND g.table_id + 0 = $2 AND g.is_deleted = false
        AND to_tsvector(''english''::regconfig, g.search_text)
            @@ websearch_to_tsquery(''english''::regconfig, $3)'
    USING v_tenant, p_table_id, p_query;
END$$;
--
-- Grant execute on app.search_rows(p_table_id int, p_query text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."search_rows"(p_table_id int, p_query text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."search_rows"(p_table_id int, p_query text) TO "{{runtime_role}}";
--
-- Run function app.search_rows with enable_indexscan = off
--
ALTER FUNCTION "app"."search_rows"(p_table_id int, p_query text) SET "enable_indexscan" = off;
--
-- Install function app.rows_containing(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint, p_limit int, p_descending boolean)
--
CREATE OR REPLACE FUNCTION "app"."rows_containing"(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint DEFAULT NULL, p_limit int DEFAULT NULL, p_descending boolean DEFAULT false)
RETURNS SETOF bigint LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_tenant int := app.current_tenant();
  v_query text := 'SELECT g.id FROM app.generic_data AS g
      WHERE g.tenant_id = $1 AND g.project_id = $2 AND g.table_id = $3
        AND g.is_deleted = false AND g.data @> $4';
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing, never everything
  END IF;
  IF p_limit IS NOT NULL THEN
    IF p_descending THEN
      IF p_after IS NOT NULL THEN
        v_query := v_query || ' AND g.id < $5';
      END IF;
      v_query := v_query || ' ORDER BY g.id DESC LIMIT $6';
    ELSE
      IF p_after IS NOT NULL THEN
        v_query := v_query || ' AND g.id > $5';
      END IF;
      v_query := v_query || ' ORDER BY g.id LIMIT $6';
    END IF;
  END IF;
  RETURN QUERY EXECUTE v_query USING v_tenant, p_project_id, p_table_id, p_doc, p_after, p_limit;
END$$;
--
-- Grant execute on app.rows_containing(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint, p_limit int, p_descending boolean) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."rows_containing"(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint, p_limit int, p_descending boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."rows_containing"(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint, p_limit int, p_descending boolean) TO "{{runtime_role}}";
--
-- Install function app.api_key_tenant(p_prefix text)
--
CREATE OR REPLACE FUNCTION "app"."api_key_tenant"(p_prefix text)
RETURNS TABLE(key_id int, tenant_id int, project_id int, user_id int, key_hash text, usable boolean) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT k.id, k.tenant_id, k.project_id, k.user_id, k.key_hash::text,
         k.is_active IS TRUE AND k.revoked_at IS NULL
         AND (k.expires_at IS NULL OR k.expires_at > now())
         AND t.is_active IS TRUE AND t.is_deleted IS NOT TRUE
         AND u.is_active IS TRUE AND u.is_deleted IS NOT TRUE
         AND (k.project_id IS NULL OR (p.is_active IS TRUE AND p.is_deleted IS NOT TRUE))
  FROM core.api_keys AS k
  JOIN core.tenants AS t ON t.id = k.tenant_id
  JOIN core.users AS u ON u.id = k.user_id
  LEFT JOIN core.projects AS p ON p.id = k.project_id
  WHERE k.key_prefix = p_prefix
$$;
--
-- Grant execute on app.api_key_tenant(p_prefix text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."api_key_tenant"(p_prefix text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."api_key_tenant"(p_prefix text) TO "{{runtime_role}}";

-- migration generic_data.0004_unique_field_values
--
-- Create model GenericDataUnique
--
CREATE TABLE "app"."generic_data_unique" ("table_id" integer NOT NULL, "field" varchar(63) NOT NULL, "value" text NOT NULL, "row_id" bigint NOT NULL, PRIMARY KEY ("table_id", "field", "value"));
--
-- Install function app.sync_unique_values()
--
CREATE OR REPLACE FUNCTION "app"."sync_unique_values"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    DELETE FROM app.generic_data_unique AS u USING old_rows AS o WHERE u.row_id = o.id;
  END IF;
  INSERT INTO app.generic_data_unique (table_id, field, value, row_id)
  SELECT n.table_id, f.name, n.data ->> f.name, n.id
  FROM new_rows AS n
  JOIN (
    SELECT t.id AS table_id, e.value ->> 'name' AS name
    FROM core.table_metadata AS t
    CROSS JOIN LATERAL jsonb_array_elements(
      CASE WHEN jsonb_typeof(t.fields) = 'array' THEN t.fields ELSE '[]'::jsonb END
    ) AS e(value)
    WHERE t.id IN (SELECT DISTINCT r.table_id FROM new_rows AS r)
      AND e.value -> 'unique' = 'true'::jsonb
  ) AS f ON f.table_id = n.table_id
  WHERE n.is_deleted IS NOT TRUE AND n.data ->> f.name IS NOT NULL;
  RETURN NULL;
END$$;
--
-- Attach statement trigger unique_insert (AFTER INSERT, app.sync_unique_values) to genericdata
--
CREATE TRIGGER "trg_generic_data_unique_insert" AFTER INSERT ON "app"."generic_data" REFERENCING NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "app"."sync_unique_values"();
--
-- Attach statement trigger unique_update (AFTER UPDATE, app.sync_unique_values) to genericdata
--
CREATE TRIGGER "trg_generic_data_unique_update" AFTER UPDATE ON "app"."generic_data" REFERENCING OLD TABLE AS "old_rows" NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "app"."sync_unique_values"();
ALTER TABLE "app"."generic_data_unique" ADD CONSTRAINT "generic_data_unique_row_id_f89d9224_fk_generic_data_id" FOREIGN KEY ("row_id") REFERENCES "app"."generic_data" ("id") ON DELETE CASCADE;
CREATE INDEX "idx_generic_data_unique_row" ON "app"."generic_data_unique" ("row_id");

-- migration core.0003_add_organizations
--
-- Create model Organization
--
CREATE TABLE "core"."organizations" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "created_by" integer NULL, "updated_by" integer NULL, "name" varchar(200) NOT NULL, "slug" varchar(100) NOT NULL, "description" text NULL, "settings" jsonb DEFAULT (('{}')::jsonb) NULL, "is_active" boolean DEFAULT true NULL, "tenant_id" integer NOT NULL);
--
-- Create model OrganizationMember
--
CREATE TABLE "core"."organization_members" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "created_by" integer NULL, "updated_by" integer NULL, "role" varchar(20) DEFAULT 'member' NOT NULL, "invited_at" timestamp with time zone NULL, "joined_at" timestamp with time zone NULL, "invited_by" integer NULL, "organization_id" integer NOT NULL, "tenant_id" integer NOT NULL, "user_id" integer NOT NULL);
--
-- Create index idx_organizations_tenant on field(s) tenant of model organization
--
CREATE INDEX "idx_organizations_tenant" ON "core"."organizations" ("tenant_id");
--
-- Create index idx_organizations_active on field(s) tenant of model organization
--
CREATE INDEX "idx_organizations_active" ON "core"."organizations" ("tenant_id") WHERE ("is_active" = true AND "is_deleted" = false);
--
-- Create constraint unique_organization_slug_per_tenant on model organization
--
CREATE UNIQUE INDEX "unique_organization_slug_per_tenant" ON "core"."organizations" ("tenant_id", "slug") WHERE "is_deleted" = false;
--
-- Create constraint organizations_tenant_id_id_key on model organization
--
ALTER TABLE "core"."organizations" ADD CONSTRAINT "organizations_tenant_id_id_key" UNIQUE ("tenant_id", "id");
--
-- Create index idx_org_members_tenant on field(s) tenant of model organizationmember
--
CREATE INDEX "idx_org_members_tenant" ON "core"."organization_members" ("tenant_id");
--
-- Create index idx_org_members_org on field(s) organization of model organizationmember
--
CREATE INDEX "idx_org_members_org" ON "core"."organization_members" ("organization_id");
--
-- Create index idx_org_members_user on field(s) user of model organizationmember
--
CREATE INDEX "idx_org_members_user" ON "core"."organization_members" ("user_id");
--
-- Create constraint unique_organization_member on model organizationmember
--
CREATE UNIQUE INDEX "unique_organization_member" ON "core"."organization_members" ("tenant_id", "organization_id", "user_id") WHERE "is_deleted" = false;
--
-- Create constraint organization_members_role_check on model organizationmember
--
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "organization_members_role_check" CHECK ("role" IN ('owner', 'admin', 'member'));
--
-- Create constraint organization_members_invited_or_joined on model organizationmember
--
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "organization_members_invited_or_joined" CHECK (("invited_at" IS NOT NULL OR "joined_at" IS NOT NULL));
--
-- Create constraint organization_members_joined_after_invited on model organizationmember
--
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "organization_members_joined_after_invited" CHECK (("joined_at" IS NULL OR "invited_at" IS NULL OR "joined_at" >= ("invited_at")));
--
-- Attach touch trigger (app.touch_row) to organization
--
CREATE TRIGGER "trg_organizations_touch" BEFORE UPDATE ON "core"."organizations" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to organization
--
CREATE TRIGGER "trg_organizations_softdel" BEFORE DELETE ON "core"."organizations" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to organization
--
CREATE TRIGGER "trg_organizations_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."organizations" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on organization
--
ALTER TABLE "core"."organizations" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."organizations" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_organizations_tenant" ON "core"."organizations" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on organization to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."organizations" TO "{{runtime_role}}";
--
-- Attach touch trigger (app.touch_row) to organizationmember
--
CREATE TRIGGER "trg_org_members_touch" BEFORE UPDATE ON "core"."organization_members" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to organizationmember
--
CREATE TRIGGER "trg_org_members_softdel" BEFORE DELETE ON "core"."organization_members" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to organizationmember
--
CREATE TRIGGER "trg_org_members_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."organization_members" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on organizationmember
--
ALTER TABLE "core"."organization_members" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."organization_members" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_org_members_tenant" ON "core"."organization_members" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on organizationmember to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."organization_members" TO "{{runtime_role}}";
--
-- Add tenant foreign key fk_org_members_tenant_organization on organizationmember -> organization (on delete cascade)
--
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "fk_org_members_tenant_organization" FOREIGN KEY ("tenant_id", "organization_id") REFERENCES "core"."organizations" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Add tenant foreign key fk_org_members_tenant_user on organizationmember -> user (on delete cascade)
--
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "fk_org_members_tenant_user" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "core"."users" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Add tenant foreign key fk_org_members_tenant_invited_by on organizationmember -> user (on delete set null)
--
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "fk_org_members_tenant_invited_by" FOREIGN KEY ("tenant_id", "invited_by") REFERENCES "core"."users" ("tenant_id", "id") ON DELETE SET NULL ("invited_by");
ALTER TABLE "core"."organizations" ADD CONSTRAINT "organizations_tenant_id_0ca219e0_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "organization_members_invited_by_7849838e_fk_users_id" FOREIGN KEY ("invited_by") REFERENCES "core"."users" ("id") ON DELETE SET NULL;
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "organization_members_organization_id_d55f4961_fk_organizat" FOREIGN KEY ("organization_id") REFERENCES "core"."organizations" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "organization_members_tenant_id_699f3200_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."organization_members" ADD CONSTRAINT "organization_members_user_id_e6013fda_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id") ON DELETE CASCADE;

-- migration core.0004_add_rbac
--
-- Create model Permission
--
CREATE TABLE "core"."permissions" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "code" varchar(100) NOT NULL, "description" text NULL);
--
-- Create model Role
--
CREATE TABLE "core"."roles" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "is_deleted" boolean DEFAULT false NULL, "deleted_at" timestamp with time zone NULL, "deleted_by" integer NULL, "created_by" integer NULL, "updated_by" integer NULL, "code" varchar(50) NOT NULL, "name" varchar(100) NOT NULL, "description" text NULL, "tenant_id" integer NULL);
--
-- Create model RolePermission
--
CREATE TABLE "core"."role_permissions" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "permission_id" integer NOT NULL, "role_id" integer NOT NULL, "tenant_id" integer NULL);
--
-- Add field permissions to role
--
-- (no-op)
--
-- Create model UserRole
--
CREATE TABLE "core"."user_roles" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "expires_at" timestamp with time zone NULL, "granted_by" integer NULL, "organization_id" integer NULL, "role_id" integer NOT NULL, "tenant_id" integer NOT NULL, "user_id" integer NOT NULL);
--
-- Create index idx_role_permissions_tenant on field(s) tenant of model rolepermission
--
CREATE INDEX "idx_role_permissions_tenant" ON "core"."role_permissions" ("tenant_id");
--
-- Create index idx_role_permissions_perm on field(s) permission of model rolepermission
--
CREATE INDEX "idx_role_permissions_perm" ON "core"."role_permissions" ("permission_id");
--
-- Create constraint unique_role_permission on model rolepermission
--
ALTER TABLE "core"."role_permissions" ADD CONSTRAINT "unique_role_permission" UNIQUE NULLS NOT DISTINCT ("tenant_id", "role_id", "permission_id");
--
-- Create index idx_role_permissions_role on field(s) role of model rolepermission
--
CREATE INDEX "idx_role_permissions_role" ON "core"."role_permissions" ("role_id");
--
-- Create index idx_roles_tenant on field(s) tenant of model role
--
CREATE INDEX "idx_roles_tenant" ON "core"."roles" ("tenant_id");
--
-- Create constraint unique_role_code_per_tenant on model role
--
CREATE UNIQUE INDEX "unique_role_code_per_tenant" ON "core"."roles" ("tenant_id", "code") NULLS NOT DISTINCT WHERE "is_deleted" = false;
--
-- Create constraint roles_code_format on model role
--
ALTER TABLE "core"."roles" ADD CONSTRAINT "roles_code_format" CHECK ("code"::text ~  E'^[a-z][a-z0-9_]*\\Z');
--
-- Create index idx_user_roles_tenant on field(s) tenant of model userrole
--
CREATE INDEX "idx_user_roles_tenant" ON "core"."user_roles" ("tenant_id");
--
-- Create index idx_user_roles_user on field(s) user of model userrole
--
CREATE INDEX "idx_user_roles_user" ON "core"."user_roles" ("user_id");
--
-- Create index idx_user_roles_role on field(s) role of model userrole
--
CREATE INDEX "idx_user_roles_role" ON "core"."user_roles" ("role_id");
--
-- Create index idx_user_roles_organization on field(s) organization of model userrole
--
CREATE INDEX "idx_user_roles_organization" ON "core"."user_roles" ("organization_id");
--
-- Create constraint unique_user_role on model userrole
--
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "unique_user_role" UNIQUE NULLS NOT DISTINCT ("tenant_id", "user_id", "role_id", "organization_id");
--
-- Install function core.check_role_tenant()
--
CREATE OR REPLACE FUNCTION "core"."check_role_tenant"()
RETURNS trigger LANGUAGE plpgsql SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_found boolean;
  v_role_tenant int;
BEGIN
  SELECT true, r.tenant_id INTO v_found, v_role_tenant FROM core.roles r WHERE r.id = NEW.role_id;
  IF v_found IS NULL THEN
    -- Absent, or another tenant's: row level security hides those from tenant code.
    RAISE EXCEPTION '%.%: role % does not exist', TG_TABLE_SCHEMA, TG_TABLE_NAME, NEW.role_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  -- role_permissions rows have exactly their role's tenant (NULL for a global role);
  -- user_roles rows may also be granted a global role.
  IF v_role_tenant IS DISTINCT FROM NEW.tenant_id
     AND NOT (TG_TABLE_NAME = 'user_roles' AND v_role_tenant IS NULL) THEN
    RAISE EXCEPTION '%.%: role % belongs to %, the row to %',
      TG_TABLE_SCHEMA, TG_TABLE_NAME, NEW.role_id,
      coalesce('tenant ' || v_role_tenant, 'no tenant (a global role)'),
      coalesce('tenant ' || NEW.tenant_id, 'no tenant')
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END$$;
--
-- Install function app.has_permission(p_user_id int, p_permission text, p_organization_id int)
--
CREATE OR REPLACE FUNCTION "app"."has_permission"(p_user_id int, p_permission text, p_organization_id int DEFAULT NULL)
RETURNS boolean LANGUAGE sql STABLE SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT EXISTS (
    SELECT 1
    FROM core.user_roles ur
    JOIN core.users u ON u.id = ur.user_id
    JOIN core.roles r ON r.id = ur.role_id
    JOIN core.role_permissions rp ON rp.role_id = ur.role_id
    JOIN core.permissions p ON p.id = rp.permission_id
    WHERE ur.user_id = p_user_id
      AND p.code = p_permission
      AND u.is_active IS NOT FALSE AND u.is_deleted IS NOT TRUE
      AND r.is_deleted IS NOT TRUE
      AND (ur.expires_at IS NULL OR ur.expires_at > now())
      -- The organization asked about must be a live, active one of the user's tenant.
      AND (p_organization_id IS NULL OR EXISTS (
            SELECT 1 FROM core.organizations o
            WHERE o.id = p_organization_id AND o.tenant_id = ur.tenant_id
              AND o.is_deleted IS NOT TRUE AND o.is_active IS NOT FALSE))
      -- A tenant-wide grant counts everywhere in the tenant; an organization's grant
      -- only for that organization, and only while the user is a joined member of it.
      AND (ur.organization_id IS NULL OR (
            ur.organization_id = p_organization_id AND EXISTS (
              SELECT 1 FROM core.organization_members m
              WHERE m.organization_id = ur.organization_id AND m.user_id = ur.user_id
                AND m.joined_at IS NOT NULL AND m.is_deleted IS NOT TRUE)))
  )
$$;
--
-- Attach touch trigger (app.touch_row) to permission
--
CREATE TRIGGER "trg_permissions_touch" BEFORE UPDATE ON "core"."permissions" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach audit trigger (ops.log_audit) to permission
--
CREATE TRIGGER "trg_permissions_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."permissions" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Grant SELECT on permission to the runtime role
--
GRANT SELECT ON "core"."permissions" TO "{{runtime_role}}";
--
-- Attach touch trigger (app.touch_row) to role
--
CREATE TRIGGER "trg_roles_touch" BEFORE UPDATE ON "core"."roles" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach softdel trigger (app.soft_delete) to role
--
CREATE TRIGGER "trg_roles_softdel" BEFORE DELETE ON "core"."roles" FOR EACH ROW EXECUTE FUNCTION "app"."soft_delete"();
--
-- Attach audit trigger (ops.log_audit) to role
--
CREATE TRIGGER "trg_roles_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."roles" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on role
--
ALTER TABLE "core"."roles" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."roles" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_roles_tenant" ON "core"."roles" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Create policy rls_roles_shared on role
--
CREATE POLICY "rls_roles_shared" ON "core"."roles" FOR SELECT USING (tenant_id IS NULL);
--
-- Grant SELECT, INSERT, UPDATE, DELETE on role to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."roles" TO "{{runtime_role}}";
--
-- Attach role_tenant trigger (core.check_role_tenant) to rolepermission
--
CREATE TRIGGER "trg_role_permissions_role_tenant" AFTER INSERT OR UPDATE ON "core"."role_permissions" FOR EACH ROW EXECUTE FUNCTION "core"."check_role_tenant"();
--
-- Attach touch trigger (app.touch_row) to rolepermission
--
CREATE TRIGGER "trg_role_permissions_touch" BEFORE UPDATE ON "core"."role_permissions" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach audit trigger (ops.log_audit) to rolepermission
--
CREATE TRIGGER "trg_role_permissions_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."role_permissions" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on rolepermission
--
ALTER TABLE "core"."role_permissions" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."role_permissions" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_role_permissions_tenant" ON "core"."role_permissions" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Create policy rls_role_permissions_shared on rolepermission
--
CREATE POLICY "rls_role_permissions_shared" ON "core"."role_permissions" FOR SELECT USING (tenant_id IS NULL);
--
-- Grant SELECT, INSERT, UPDATE, DELETE on rolepermission to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."role_permissions" TO "{{runtime_role}}";
--
-- Attach role_tenant trigger (core.check_role_tenant) to userrole
--
CREATE TRIGGER "trg_user_roles_role_tenant" AFTER INSERT OR UPDATE ON "core"."user_roles" FOR EACH ROW EXECUTE FUNCTION "core"."check_role_tenant"();
--
-- Attach touch trigger (app.touch_row) to userrole
--
CREATE TRIGGER "trg_user_roles_touch" BEFORE UPDATE ON "core"."user_roles" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Attach audit trigger (ops.log_audit) to userrole
--
CREATE TRIGGER "trg_user_roles_audit" AFTER INSERT OR UPDATE OR DELETE ON "core"."user_roles" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Enable tenant row level security on userrole
--
ALTER TABLE "core"."user_roles" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."user_roles" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_user_roles_tenant" ON "core"."user_roles" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on userrole to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."user_roles" TO "{{runtime_role}}";
--
-- Add tenant foreign key fk_user_roles_tenant_user on userrole -> user (on delete cascade)
--
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "fk_user_roles_tenant_user" FOREIGN KEY ("tenant_id", "user_id") REFERENCES "core"."users" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Add tenant foreign key fk_user_roles_tenant_organization on userrole -> organization (on delete cascade)
--
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "fk_user_roles_tenant_organization" FOREIGN KEY ("tenant_id", "organization_id") REFERENCES "core"."organizations" ("tenant_id", "id") ON DELETE CASCADE;
--
-- Add tenant foreign key fk_user_roles_tenant_granted_by on userrole -> user (on delete set null)
--
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "fk_user_roles_tenant_granted_by" FOREIGN KEY ("tenant_id", "granted_by") REFERENCES "core"."users" ("tenant_id", "id") ON DELETE SET NULL ("granted_by");
ALTER TABLE "core"."permissions" ADD CONSTRAINT "permissions_code_key" UNIQUE ("code");
ALTER TABLE "core"."permissions" ADD CONSTRAINT "permissions_code_format" CHECK ("code"::text ~  E'^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+\\Z');
ALTER TABLE "core"."roles" ADD CONSTRAINT "roles_tenant_id_2f74b73b_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."role_permissions" ADD CONSTRAINT "role_permissions_permission_id_ad343843_fk_permissions_id" FOREIGN KEY ("permission_id") REFERENCES "core"."permissions" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."role_permissions" ADD CONSTRAINT "role_permissions_role_id_216516f2_fk_roles_id" FOREIGN KEY ("role_id") REFERENCES "core"."roles" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."role_permissions" ADD CONSTRAINT "role_permissions_tenant_id_3e6b18fa_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "user_roles_granted_by_159cd50d_fk_users_id" FOREIGN KEY ("granted_by") REFERENCES "core"."users" ("id") ON DELETE SET NULL;
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "user_roles_organization_id_fe06d974_fk_organizations_id" FOREIGN KEY ("organization_id") REFERENCES "core"."organizations" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "user_roles_role_id_816a4486_fk_roles_id" FOREIGN KEY ("role_id") REFERENCES "core"."roles" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "user_roles_tenant_id_fe2cc37c_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."user_roles" ADD CONSTRAINT "user_roles_user_id_9d9f8dbb_fk_users_id" FOREIGN KEY ("user_id") REFERENCES "core"."users" ("id") ON DELETE CASCADE;

-- migration core.0005_add_file_storage
--
-- Create model ImageVariant
--
CREATE TABLE "core"."image_variants" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "version" integer DEFAULT 1 NULL, "created_at" timestamp with time zone DEFAULT (now()) NULL, "updated_at" timestamp with time zone DEFAULT (now()) NULL, "variant" varchar(50) NOT NULL, "storage_path" text NOT NULL, "storage_provider" varchar(50) NULL, "mime_type" varchar(100) NULL, "file_size" bigint NULL, "width" integer NOT NULL, "height" integer NOT NULL, "file_id" uuid NOT NULL, "tenant_id" integer NOT NULL);
--
-- Custom state/database change combination
--
ALTER TABLE "core"."files" ADD CONSTRAINT "files_tenant_id_id_key" UNIQUE ("tenant_id", "id");
--
-- Attach touch trigger (app.touch_row) to imagevariant
--
CREATE TRIGGER "trg_image_variants_touch" BEFORE UPDATE ON "core"."image_variants" FOR EACH ROW EXECUTE FUNCTION "app"."touch_row"();
--
-- Enable tenant row level security on imagevariant
--
ALTER TABLE "core"."image_variants" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "core"."image_variants" FORCE ROW LEVEL SECURITY;
CREATE POLICY "rls_image_variants_tenant" ON "core"."image_variants" USING ("tenant_id" = app.current_tenant()) WITH CHECK ("tenant_id" = app.current_tenant());
--
-- Grant SELECT, INSERT, UPDATE, DELETE on imagevariant to the runtime role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."image_variants" TO "{{runtime_role}}";
--
-- Add tenant foreign key fk_image_variants_tenant_file on imagevariant -> file (on delete cascade)
--
ALTER TABLE "core"."image_variants" ADD CONSTRAINT "fk_image_variants_tenant_file" FOREIGN KEY ("tenant_id", "file_id") REFERENCES "core"."files" ("tenant_id", "id") ON DELETE CASCADE;
ALTER TABLE "core"."image_variants" ADD CONSTRAINT "image_variants_file_id_ab011bca_fk_files_id" FOREIGN KEY ("file_id") REFERENCES "core"."files" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."image_variants" ADD CONSTRAINT "image_variants_tenant_id_03979134_fk_tenants_id" FOREIGN KEY ("tenant_id") REFERENCES "core"."tenants" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."image_variants" ADD CONSTRAINT "unique_image_variant" UNIQUE ("tenant_id", "file_id", "variant");
ALTER TABLE "core"."image_variants" ADD CONSTRAINT "image_variants_variant_format" CHECK ("variant"::text ~  E'^[a-z0-9][a-z0-9_-]*\\Z');
ALTER TABLE "core"."image_variants" ADD CONSTRAINT "image_variants_dimensions_positive" CHECK (("height" > 0 AND "width" > 0));
ALTER TABLE "core"."image_variants" ADD CONSTRAINT "image_variants_file_size_not_negative" CHECK (("file_size" IS NULL OR "file_size" >= 0));
CREATE INDEX "idx_image_variants_file" ON "core"."image_variants" ("file_id");

-- migration hzm.0004_web_sign_in_and_admin_role
--
-- Ensure the admin service role exists (<HZM_APP_ROLE>_admin)
--
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role_admin}}') THEN
    CREATE ROLE "{{runtime_role_admin}}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  ELSIF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{{runtime_role_admin}}' AND (rolsuper OR rolbypassrls OR rolcanlogin OR rolcreatedb OR rolcreaterole OR rolinherit)) THEN
    ALTER ROLE "{{runtime_role_admin}}" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
END
$$;
--
-- Grant usage on schema app to the admin service role
--
GRANT USAGE ON SCHEMA "app" TO "{{runtime_role_admin}}";
--
-- Grant usage on schema core to the admin service role
--
GRANT USAGE ON SCHEMA "core" TO "{{runtime_role_admin}}";
--
-- Grant usage on schema cfg to the admin service role
--
GRANT USAGE ON SCHEMA "cfg" TO "{{runtime_role_admin}}";
--
-- Grant usage on schema ops to the admin service role
--
GRANT USAGE ON SCHEMA "ops" TO "{{runtime_role_admin}}";
--
-- Grant usage on schema comms to the admin service role
--
GRANT USAGE ON SCHEMA "comms" TO "{{runtime_role_admin}}";
--
-- Grant usage on schema billing to the admin service role
--
GRANT USAGE ON SCHEMA "billing" TO "{{runtime_role_admin}}";
--
-- Install function app.session_load(p_session_key text)
--
CREATE OR REPLACE FUNCTION "app"."session_load"(p_session_key text)
RETURNS text LANGUAGE sql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT s.session_data FROM public.django_session AS s
  WHERE s.session_key = p_session_key AND s.expire_date > now()
$$;
--
-- Grant execute on app.session_load(p_session_key text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."session_load"(p_session_key text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."session_load"(p_session_key text) TO "{{runtime_role}}";
--
-- Grant execute on app.session_load(p_session_key text) to the admin service role
--
GRANT EXECUTE ON FUNCTION "app"."session_load"(p_session_key text) TO "{{runtime_role_admin}}";
--
-- Install function app.session_exists(p_session_key text)
--
CREATE OR REPLACE FUNCTION "app"."session_exists"(p_session_key text)
RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT EXISTS (SELECT FROM public.django_session AS s WHERE s.session_key = p_session_key)
$$;
--
-- Grant execute on app.session_exists(p_session_key text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."session_exists"(p_session_key text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."session_exists"(p_session_key text) TO "{{runtime_role}}";
--
-- Grant execute on app.session_exists(p_session_key text) to the admin service role
--
GRANT EXECUTE ON FUNCTION "app"."session_exists"(p_session_key text) TO "{{runtime_role_admin}}";
--
-- Install function app.session_save(p_session_key text, p_session_data text, p_expire_date timestamptz, p_must_create boolean)
--
CREATE OR REPLACE FUNCTION "app"."session_save"(p_session_key text, p_session_data text, p_expire_date timestamptz, p_must_create boolean)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
BEGIN
  IF p_must_create THEN
    INSERT INTO public.django_session AS s (session_key, session_data, expire_date)
    VALUES (p_session_key, p_session_data, p_expire_date)
    ON CONFLICT (session_key) DO NOTHING;
  ELSE
    UPDATE public.django_session AS s
       SET session_data = p_session_data, expire_date = p_expire_date
     WHERE s.session_key = p_session_key;
  END IF;
  RETURN FOUND;
END$$;
--
-- Grant execute on app.session_save(p_session_key text, p_session_data text, p_expire_date timestamptz, p_must_create boolean) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."session_save"(p_session_key text, p_session_data text, p_expire_date timestamptz, p_must_create boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."session_save"(p_session_key text, p_session_data text, p_expire_date timestamptz, p_must_create boolean) TO "{{runtime_role}}";
--
-- Grant execute on app.session_save(p_session_key text, p_session_data text, p_expire_date timestamptz, p_must_create boolean) to the admin service role
--
GRANT EXECUTE ON FUNCTION "app"."session_save"(p_session_key text, p_session_data text, p_expire_date timestamptz, p_must_create boolean) TO "{{runtime_role_admin}}";
--
-- Install function app.session_delete(p_session_key text)
--
CREATE OR REPLACE FUNCTION "app"."session_delete"(p_session_key text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  DELETE FROM public.django_session AS s WHERE s.session_key = p_session_key
$$;
--
-- Grant execute on app.session_delete(p_session_key text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."session_delete"(p_session_key text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."session_delete"(p_session_key text) TO "{{runtime_role}}";
--
-- Grant execute on app.session_delete(p_session_key text) to the admin service role
--
GRANT EXECUTE ON FUNCTION "app"."session_delete"(p_session_key text) TO "{{runtime_role_admin}}";
--
-- Install function app.auth_user(p_user_id int)
--
CREATE OR REPLACE FUNCTION "app"."auth_user"(p_user_id int)
RETURNS TABLE(id int, tenant_id int, email text, name text, role text, timezone text, is_active boolean, is_deleted boolean, version int, last_login_at timestamptz, password_fingerprint text, usable boolean) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT u.id, u.tenant_id, u.email::text, u.name::text, u.role::text, u.timezone::text,
         u.is_active, u.is_deleted, u.version, u.last_login_at,
         encode(sha256(convert_to(u.password_hash, 'UTF8')), 'hex'),
         u.is_active IS TRUE AND u.is_deleted IS NOT TRUE
         AND t.is_active IS TRUE AND t.is_deleted IS NOT TRUE
  FROM core.users AS u
  JOIN core.tenants AS t ON t.id = u.tenant_id
  WHERE u.id = p_user_id
$$;
--
-- Grant execute on app.auth_user(p_user_id int) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."auth_user"(p_user_id int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."auth_user"(p_user_id int) TO "{{runtime_role}}";
--
-- Grant execute on app.auth_user(p_user_id int) to the admin service role
--
GRANT EXECUTE ON FUNCTION "app"."auth_user"(p_user_id int) TO "{{runtime_role_admin}}";
--
-- Install function app.auth_login(p_email text)
--
CREATE OR REPLACE FUNCTION "app"."auth_login"(p_email text)
RETURNS TABLE(id int, password_hash text) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT u.id, u.password_hash::text
  FROM core.users AS u
  WHERE u.email OPERATOR(public.=) p_email::public.citext
$$;
--
-- Grant execute on app.auth_login(p_email text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."auth_login"(p_email text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."auth_login"(p_email text) TO "{{runtime_role}}";
--
-- Grant execute on app.auth_login(p_email text) to the admin service role
--
GRANT EXECUTE ON FUNCTION "app"."auth_login"(p_email text) TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on core.tenant to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."tenants" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, UPDATE on core.user to the admin service role
--
GRANT SELECT, UPDATE ON "core"."users" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on core.organization to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."organizations" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on core.organizationmember to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."organization_members" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on core.permission to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."permissions" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on core.role to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."roles" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on core.rolepermission to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."role_permissions" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on core.userrole to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."user_roles" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on cfg.language to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "cfg"."languages" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on cfg.currency to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "cfg"."currencies" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on cfg.exchangerate to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "cfg"."exchange_rates" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on cfg.translation to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "cfg"."translations" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on cfg.featureflag to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "cfg"."feature_flags" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on cfg.featureflagoverride to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "cfg"."feature_flag_overrides" TO "{{runtime_role_admin}}";
--
-- Grant SELECT on ops.auditlog to the admin service role
--
GRANT SELECT ON "ops"."audit_logs" TO "{{runtime_role_admin}}";
--
-- Grant SELECT on ops.systemlog to the admin service role
--
GRANT SELECT ON "ops"."system_logs" TO "{{runtime_role_admin}}";
--
-- Grant SELECT on comms.notification to the admin service role
--
GRANT SELECT ON "comms"."notifications" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, UPDATE on comms.emailqueue to the admin service role
--
GRANT SELECT, UPDATE ON "comms"."email_queue" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, UPDATE on comms.webhookdelivery to the admin service role
--
GRANT SELECT, UPDATE ON "comms"."webhook_deliveries" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on comms.webhook to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "comms"."webhooks" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on billing.plan to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "billing"."plans" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE on billing.subscription to the admin service role
--
GRANT SELECT, INSERT, UPDATE ON "billing"."subscriptions" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT on admin.logentry to the admin service role
--
GRANT SELECT, INSERT ON "django_admin_log" TO "{{runtime_role_admin}}";
--
-- Grant SELECT on contenttypes.contenttype to the admin service role
--
GRANT SELECT ON "django_content_type" TO "{{runtime_role_admin}}";
--
-- Grant SELECT on django_migrations to the runtime role
--
GRANT SELECT ON "django_migrations" TO "{{runtime_role}}";
--
-- Grant SELECT on django_migrations to the admin service role
--
GRANT SELECT ON "django_migrations" TO "{{runtime_role_admin}}";

-- migration ops.0004_admin_sign_in_throttling
--
-- Grant SELECT, INSERT, UPDATE, DELETE on axes.accessattempt to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "axes_accessattempt" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, DELETE on axes.accessattemptexpiration to the admin service role
--
GRANT SELECT, DELETE ON "axes_accessattemptexpiration" TO "{{runtime_role_admin}}";

-- migration ops.0005_audit_logs_tenant_id_index
--
-- Concurrently create index idx_audit_tenant_id on field(s) tenant_id, id of model auditlog
--
CREATE INDEX "idx_audit_tenant_id" ON "ops"."audit_logs" ("tenant_id", "id");

-- migration generic_data.0005_record_counts
--
-- Create model RecordCount
--
CREATE TABLE "app"."record_counts" ("table_id" integer NOT NULL PRIMARY KEY, "live_records" bigint DEFAULT 0 NOT NULL);
--
-- Install function app.count_records()
--
CREATE OR REPLACE FUNCTION "app"."count_records"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_tenants int[];
  v_tenant int;
  v_limit int;
  v_total bigint;
  v_added bigint;
BEGIN
  -- 1. The tenants this statement gives live rows (new rows, restored rows), locked first
  --    and in id order, so that two writers of one tenant never deadlock here.
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(DISTINCT n.tenant_id ORDER BY n.tenant_id) INTO v_tenants
    FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE;
  ELSIF TG_OP = 'UPDATE' THEN
    SELECT array_agg(DISTINCT n.tenant_id ORDER BY n.tenant_id) INTO v_tenants
    FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE n.is_deleted IS NOT TRUE AND (o.is_deleted IS TRUE OR o.table_id <> n.table_id);
  END IF;
  IF v_tenants IS NOT NULL THEN
    PERFORM 1 FROM core.tenants AS t WHERE t.id = ANY (v_tenants)
    ORDER BY t.id FOR NO KEY UPDATE;
  END IF;

  -- 2. The counts: +1 for each live row the statement made, -1 for each it ended.
  IF TG_OP = 'INSERT' THEN
    INSERT INTO app.record_counts AS c (table_id, live_records)
    SELECT n.table_id, count(*) FROM new_rows AS n
    WHERE n.is_deleted IS NOT TRUE GROUP BY 1
    ON CONFLICT (table_id) DO UPDATE SET live_records = c.live_records + excluded.live_records;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE app.record_counts AS c SET live_records = c.live_records - d.ended
    FROM (SELECT o.table_id, count(*) AS ended FROM old_rows AS o
          WHERE o.is_deleted IS NOT TRUE GROUP BY 1) AS d
    WHERE c.table_id = d.table_id;
  ELSE
    INSERT INTO app.record_counts AS c (table_id, live_records)
    SELECT d.table_id, sum(d.delta) FROM (
      SELECT n.table_id, 1 AS delta FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE
      UNION ALL
      SELECT o.table_id, -1 FROM old_rows AS o WHERE o.is_deleted IS NOT TRUE
    ) AS d GROUP BY 1 HAVING sum(d.delta) <> 0
    ON CONFLICT (table_id) DO UPDATE SET live_records = c.live_records + excluded.live_records;
  END IF;

  -- 3. The limit: live rows of the tenant's live tables, at most core.tenants.max_records.
  FOREACH v_tenant IN ARRAY coalesce(v_tenants, '{}'::int[]) LOOP
    SELECT t.max_records INTO v_limit FROM core.tenants AS t WHERE t.id = v_tenant;
    CONTINUE WHEN v_limit IS NULL;
    SELECT coalesce(sum(c.live_records), 0) INTO v_total
    FROM core.table_metadata AS m
    JOIN app.record_counts AS c ON c.table_id = m.id
    WHERE m.tenant_id = v_tenant AND m.is_deleted IS NOT TRUE;
    IF v_total > v_limit THEN
      IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO v_added FROM new_rows AS n
        WHERE n.tenant_id = v_tenant AND n.is_deleted IS NOT TRUE;
      ELSE
        SELECT count(*) INTO v_added FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.tenant_id = v_tenant AND n.is_deleted IS NOT TRUE AND o.is_deleted IS TRUE;
      END IF;
      RAISE EXCEPTION 'the tenant has % records; % more would exceed its plan''s max_records (%)',
        v_total - v_added, v_added, v_limit
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_max_records';
    END IF;
  END LOOP;
  RETURN NULL;
END$$;
--
-- Revoke execute on app.count_records() from PUBLIC
--
REVOKE EXECUTE ON FUNCTION "app"."count_records"() FROM PUBLIC;
--
-- Attach statement trigger count_insert (AFTER INSERT, app.count_records) to genericdata
--
CREATE TRIGGER "trg_generic_data_count_insert" AFTER INSERT ON "app"."generic_data" REFERENCING NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "app"."count_records"();
--
-- Attach statement trigger count_update (AFTER UPDATE, app.count_records) to genericdata
--
CREATE TRIGGER "trg_generic_data_count_update" AFTER UPDATE ON "app"."generic_data" REFERENCING OLD TABLE AS "old_rows" NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "app"."count_records"();
--
-- Attach statement trigger count_delete (AFTER DELETE, app.count_records) to genericdata
--
CREATE TRIGGER "trg_generic_data_count_delete" AFTER DELETE ON "app"."generic_data" REFERENCING OLD TABLE AS "old_rows" FOR EACH STATEMENT EXECUTE FUNCTION "app"."count_records"();
--
-- Raw SQL operation
--

INSERT INTO app.record_counts (table_id, live_records)
SELECT g.table_id, count(*) FILTER (WHERE g.is_deleted IS NOT TRUE)
FROM app.generic_data AS g GROUP BY 1
;

-- migration hzm.0005_security_hardening
--
-- Revoke execute on ops.log_audit() from PUBLIC
--
REVOKE EXECUTE ON FUNCTION "ops"."log_audit"() FROM PUBLIC;
--
-- Revoke execute on app.sync_unique_values() from PUBLIC
--
REVOKE EXECUTE ON FUNCTION "app"."sync_unique_values"() FROM PUBLIC;
--
-- Revoke execute on billing.sync_tenant_subscription() from PUBLIC
--
REVOKE EXECUTE ON FUNCTION "billing"."sync_tenant_subscription"() FROM PUBLIC;
--
-- Replace function ops.write_system_log(p_level text, p_source text, p_message text, p_context jsonb, p_request_id text)
--
CREATE OR REPLACE FUNCTION "ops"."write_system_log"(p_level text, p_source text, p_message text, p_context jsonb DEFAULT '{}', p_request_id text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_id bigint;
BEGIN
  IF length(p_source) > 100 THEN
    RAISE EXCEPTION 'system log source: % characters, at most 100', length(p_source)
      USING ERRCODE = 'string_data_right_truncation';
  END IF;
  IF length(p_message) > 10000 THEN
    RAISE EXCEPTION 'system log message: % characters, at most 10000', length(p_message)
      USING ERRCODE = 'string_data_right_truncation';
  END IF;
  IF octet_length(p_context::text) > 65536 THEN
    RAISE EXCEPTION 'system log context: % bytes of JSON, at most 65536',
      octet_length(p_context::text) USING ERRCODE = 'string_data_right_truncation';
  END IF;
  IF length(p_request_id) > 100 THEN
    RAISE EXCEPTION 'system log request id: % characters, at most 100', length(p_request_id)
      USING ERRCODE = 'string_data_right_truncation';
  END IF;
  INSERT INTO ops.system_logs (level, source, message, context, request_id)
  VALUES (
    p_level,
    p_source,
    p_message,
    -- The caller never names the tenant or user: those come from the context only.
    (coalesce(p_context, '{}'::jsonb) - 'tenant_id' - 'user_id')
      || jsonb_strip_nulls(jsonb_build_object(
           'tenant_id', app.current_tenant(), 'user_id', app.current_user_id())),
    coalesce(p_request_id, nullif(current_setting('app.request_id', true), ''))
  )
  RETURNING id INTO v_id;
  RETURN v_id;
END$$;
--
-- Grant execute on ops.write_system_log(p_level text, p_source text, p_message text, p_context jsonb, p_request_id text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "ops"."write_system_log"(p_level text, p_source text, p_message text, p_context jsonb, p_request_id text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "ops"."write_system_log"(p_level text, p_source text, p_message text, p_context jsonb, p_request_id text) TO "{{runtime_role}}";
--
-- Revoke TEMPORARY on the database from PUBLIC
--
DO $$
BEGIN
  EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$$;
--
-- Revoke large objects and backend signals from PUBLIC (superuser only)
--
DO $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION pg_catalog.lo_creat(integer) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION pg_catalog.lo_import(text) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION pg_catalog.lo_import(text, oid) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION pg_catalog.lo_from_bytea(oid, bytea) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer) FROM PUBLIC;
    REVOKE EXECUTE ON FUNCTION pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC;
  ELSE
    RAISE NOTICE 'not a superuser: run the README''s superuser set-up to take large objects and backend signals from PUBLIC';
  END IF;
END
$$;
--
-- Grant INSERT, UPDATE on core.user only on columns other than id, role
--
REVOKE INSERT, UPDATE ON "core"."users" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "email", "password_hash", "email_verified", "email_verification_token", "phone", "phone_verified", "name", "timezone", "is_active", "last_login_at", "login_count", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "email", "password_hash", "email_verified", "email_verification_token", "phone", "phone_verified", "name", "timezone", "is_active", "last_login_at", "login_count", "tenant_id") ON "core"."users" TO "{{runtime_role}}";
--
-- Grant UPDATE on core.file only on columns other than id
--
REVOKE UPDATE ON "core"."files" FROM "{{runtime_role}}";
GRANT UPDATE ("version", "created_at", "updated_at", "original_filename", "filename", "storage_path", "storage_provider", "mime_type", "file_size", "file_hash", "width", "height", "is_public", "virus_scan_status", "virus_scan_at", "expires_at", "is_deleted", "uploaded_by", "tenant_id") ON "core"."files" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.usersession only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."user_sessions" FROM "{{runtime_role}}";
GRANT INSERT ("token", "device_id", "device_name", "device_type", "ip_address", "user_agent", "location", "expires_at", "last_activity_at", "is_active", "created_at", "updated_at", "version", "tenant_id", "user_id"), UPDATE ("token", "device_id", "device_name", "device_type", "ip_address", "user_agent", "location", "expires_at", "last_activity_at", "is_active", "created_at", "updated_at", "version", "tenant_id", "user_id") ON "core"."user_sessions" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.usertwofactor only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."user_2fa" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "method", "secret_encrypted", "backup_codes_encrypted", "is_enabled", "enabled_at", "last_used_at", "tenant_id", "user_id"), UPDATE ("version", "created_at", "updated_at", "method", "secret_encrypted", "backup_codes_encrypted", "is_enabled", "enabled_at", "last_used_at", "tenant_id", "user_id") ON "core"."user_2fa" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.project only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."projects" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "name", "description", "template_type", "template_config", "api_key", "api_key_password", "is_active", "user_id", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "name", "description", "template_type", "template_config", "api_key", "api_key_password", "is_active", "user_id", "tenant_id") ON "core"."projects" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.tablemetadata only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."table_metadata" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "table_name", "physical_table_name", "fields", "from_template", "template_table_name", "is_active", "project_id", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "table_name", "physical_table_name", "fields", "from_template", "template_table_name", "is_active", "project_id", "tenant_id") ON "core"."table_metadata" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.apikey only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."api_keys" FROM "{{runtime_role}}";
GRANT INSERT ("name", "key_prefix", "key_hash", "key_encrypted", "permissions", "scopes", "rate_limit_per_minute", "rate_limit_per_day", "allowed_ips", "allowed_domains", "last_used_at", "total_requests", "total_errors", "expires_at", "is_active", "created_at", "updated_at", "revoked_at", "revoked_by", "revoke_reason", "version", "user_id", "project_id", "tenant_id"), UPDATE ("name", "key_prefix", "key_hash", "key_encrypted", "permissions", "scopes", "rate_limit_per_minute", "rate_limit_per_day", "allowed_ips", "allowed_domains", "last_used_at", "total_requests", "total_errors", "expires_at", "is_active", "created_at", "updated_at", "revoked_at", "revoked_by", "revoke_reason", "version", "user_id", "project_id", "tenant_id") ON "core"."api_keys" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.imagevariant only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."image_variants" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "variant", "storage_path", "storage_provider", "mime_type", "file_size", "width", "height", "file_id", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "variant", "storage_path", "storage_provider", "mime_type", "file_size", "width", "height", "file_id", "tenant_id") ON "core"."image_variants" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.organization only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."organizations" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "name", "slug", "description", "settings", "is_active", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "name", "slug", "description", "settings", "is_active", "tenant_id") ON "core"."organizations" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.organizationmember only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."organization_members" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "role", "invited_at", "joined_at", "invited_by", "organization_id", "tenant_id", "user_id"), UPDATE ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "role", "invited_at", "joined_at", "invited_by", "organization_id", "tenant_id", "user_id") ON "core"."organization_members" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.role only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."roles" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "code", "name", "description", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "code", "name", "description", "tenant_id") ON "core"."roles" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.rolepermission only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."role_permissions" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "permission_id", "role_id", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "permission_id", "role_id", "tenant_id") ON "core"."role_permissions" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on core.userrole only on columns other than id
--
REVOKE INSERT, UPDATE ON "core"."user_roles" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "expires_at", "granted_by", "organization_id", "role_id", "tenant_id", "user_id"), UPDATE ("version", "created_at", "updated_at", "expires_at", "granted_by", "organization_id", "role_id", "tenant_id", "user_id") ON "core"."user_roles" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on generic_data.genericdata only on columns other than id
--
REVOKE INSERT, UPDATE ON "app"."generic_data" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "data", "search_text", "project_id", "table_id", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "data", "search_text", "project_id", "table_id", "tenant_id") ON "app"."generic_data" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on comms.notification only on columns other than id
--
REVOKE INSERT, UPDATE ON "comms"."notifications" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "kind", "title", "body", "data", "link_url", "read_at", "tenant_id", "user_id"), UPDATE ("version", "created_at", "updated_at", "kind", "title", "body", "data", "link_url", "read_at", "tenant_id", "user_id") ON "comms"."notifications" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on comms.emailqueue only on columns other than id
--
REVOKE INSERT, UPDATE ON "comms"."email_queue" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "status", "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "locked_at", "locked_by", "last_error", "sent_at", "to_email", "to_name", "subject", "body_text", "body_html", "template", "template_data", "tenant_id", "user_id"), UPDATE ("version", "created_at", "updated_at", "status", "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "locked_at", "locked_by", "last_error", "sent_at", "to_email", "to_name", "subject", "body_text", "body_html", "template", "template_data", "tenant_id", "user_id") ON "comms"."email_queue" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on comms.webhook only on columns other than id
--
REVOKE INSERT, UPDATE ON "comms"."webhooks" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "name", "url", "events", "secret_encrypted", "description", "is_active", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "is_deleted", "deleted_at", "deleted_by", "created_by", "updated_by", "name", "url", "events", "secret_encrypted", "description", "is_active", "tenant_id") ON "comms"."webhooks" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on comms.webhookdelivery only on columns other than id
--
REVOKE INSERT, UPDATE ON "comms"."webhook_deliveries" FROM "{{runtime_role}}";
GRANT INSERT ("version", "created_at", "updated_at", "status", "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "locked_at", "locked_by", "last_error", "sent_at", "event", "payload", "signature", "response_code", "response_body", "duration_ms", "tenant_id", "webhook_id"), UPDATE ("version", "created_at", "updated_at", "status", "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "locked_at", "locked_by", "last_error", "sent_at", "event", "payload", "signature", "response_code", "response_body", "duration_ms", "tenant_id", "webhook_id") ON "comms"."webhook_deliveries" TO "{{runtime_role}}";
--
-- Grant INSERT, UPDATE on comms.notification only on columns other than id
--
REVOKE INSERT, UPDATE ON "comms"."notifications" FROM "{{runtime_role_comms}}";
GRANT INSERT ("version", "created_at", "updated_at", "kind", "title", "body", "data", "link_url", "read_at", "tenant_id", "user_id"), UPDATE ("version", "created_at", "updated_at", "kind", "title", "body", "data", "link_url", "read_at", "tenant_id", "user_id") ON "comms"."notifications" TO "{{runtime_role_comms}}";
--
-- Grant INSERT, UPDATE on comms.emailqueue only on columns other than id
--
REVOKE INSERT, UPDATE ON "comms"."email_queue" FROM "{{runtime_role_comms}}";
GRANT INSERT ("version", "created_at", "updated_at", "status", "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "locked_at", "locked_by", "last_error", "sent_at", "to_email", "to_name", "subject", "body_text", "body_html", "template", "template_data", "tenant_id", "user_id"), UPDATE ("version", "created_at", "updated_at", "status", "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "locked_at", "locked_by", "last_error", "sent_at", "to_email", "to_name", "subject", "body_text", "body_html", "template", "template_data", "tenant_id", "user_id") ON "comms"."email_queue" TO "{{runtime_role_comms}}";
--
-- Grant INSERT, UPDATE on comms.webhookdelivery only on columns other than id
--
REVOKE INSERT, UPDATE ON "comms"."webhook_deliveries" FROM "{{runtime_role_comms}}";
GRANT INSERT ("version", "created_at", "updated_at", "status", "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "locked_at", "locked_by", "last_error", "sent_at", "event", "payload", "signature", "response_code", "response_body", "duration_ms", "tenant_id", "webhook_id"), UPDATE ("version", "created_at", "updated_at", "status", "attempts", "max_attempts", "next_attempt_at", "last_attempt_at", "locked_at", "locked_by", "last_error", "sent_at", "event", "payload", "signature", "response_code", "response_body", "duration_ms", "tenant_id", "webhook_id") ON "comms"."webhook_deliveries" TO "{{runtime_role_comms}}";
--
-- Grant INSERT, UPDATE on billing.subscription only on columns other than id
--
REVOKE INSERT, UPDATE ON "billing"."subscriptions" FROM "{{runtime_role_billing}}";
GRANT INSERT ("version", "created_at", "updated_at", "created_by", "updated_by", "status", "billing_cycle", "current_period_start", "current_period_end", "trial_ends_at", "cancel_at_period_end", "canceled_at", "ended_at", "external_id", "plan_id", "tenant_id"), UPDATE ("version", "created_at", "updated_at", "created_by", "updated_by", "status", "billing_cycle", "current_period_start", "current_period_end", "trial_ends_at", "cancel_at_period_end", "canceled_at", "ended_at", "external_id", "plan_id", "tenant_id") ON "billing"."subscriptions" TO "{{runtime_role_billing}}";
--
-- Alter policy rls_generic_data_tenant on generic_data.genericdata
--
ALTER POLICY "rls_generic_data_tenant" ON "app"."generic_data" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_subscriptions_tenant on billing.subscription
--
ALTER POLICY "rls_subscriptions_tenant" ON "billing"."subscriptions" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_flag_overrides_tenant on cfg.featureflagoverride
--
ALTER POLICY "rls_flag_overrides_tenant" ON "cfg"."feature_flag_overrides" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_translations_tenant on cfg.translation
--
ALTER POLICY "rls_translations_tenant" ON "cfg"."translations" USING ("tenant_id" IS NULL OR "tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_email_queue_tenant on comms.emailqueue
--
ALTER POLICY "rls_email_queue_tenant" ON "comms"."email_queue" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_notifications_tenant on comms.notification
--
ALTER POLICY "rls_notifications_tenant" ON "comms"."notifications" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_webhook_deliveries_tenant on comms.webhookdelivery
--
ALTER POLICY "rls_webhook_deliveries_tenant" ON "comms"."webhook_deliveries" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_webhooks_tenant on comms.webhook
--
ALTER POLICY "rls_webhooks_tenant" ON "comms"."webhooks" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_api_keys_tenant on core.apikey
--
ALTER POLICY "rls_api_keys_tenant" ON "core"."api_keys" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_files_tenant on core.file
--
ALTER POLICY "rls_files_tenant" ON "core"."files" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_image_variants_tenant on core.imagevariant
--
ALTER POLICY "rls_image_variants_tenant" ON "core"."image_variants" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_org_members_tenant on core.organizationmember
--
ALTER POLICY "rls_org_members_tenant" ON "core"."organization_members" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_organizations_tenant on core.organization
--
ALTER POLICY "rls_organizations_tenant" ON "core"."organizations" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_projects_tenant on core.project
--
ALTER POLICY "rls_projects_tenant" ON "core"."projects" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_role_permissions_tenant on core.rolepermission
--
ALTER POLICY "rls_role_permissions_tenant" ON "core"."role_permissions" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_roles_tenant on core.role
--
ALTER POLICY "rls_roles_tenant" ON "core"."roles" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_table_metadata_tenant on core.tablemetadata
--
ALTER POLICY "rls_table_metadata_tenant" ON "core"."table_metadata" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_tenants_tenant on core.tenant
--
ALTER POLICY "rls_tenants_tenant" ON "core"."tenants" USING ("id" = (SELECT app.current_tenant())) WITH CHECK ("id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_2fa_tenant on core.usertwofactor
--
ALTER POLICY "rls_2fa_tenant" ON "core"."user_2fa" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_user_roles_tenant on core.userrole
--
ALTER POLICY "rls_user_roles_tenant" ON "core"."user_roles" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_sessions_tenant on core.usersession
--
ALTER POLICY "rls_sessions_tenant" ON "core"."user_sessions" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_users_tenant on core.user
--
ALTER POLICY "rls_users_tenant" ON "core"."users" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_audit_logs_tenant on ops.auditlog
--
ALTER POLICY "rls_audit_logs_tenant" ON "ops"."audit_logs" USING ("tenant_id" = (SELECT app.current_tenant())) WITH CHECK ("tenant_id" = (SELECT app.current_tenant()));
--
-- Alter policy rls_audit_logs_owner_read on ops.auditlog
--
ALTER POLICY "rls_audit_logs_owner_read" ON "ops"."audit_logs" TO CURRENT_USER;
--
-- Alter policy rls_audit_logs_owner_prune on ops.auditlog
--
ALTER POLICY "rls_audit_logs_owner_prune" ON "ops"."audit_logs" TO CURRENT_USER;

-- migration core.0006_onboarding_and_key_limits
--
-- Create model ApiKeyUsage
--
CREATE TABLE "core"."api_key_usage" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "day" date NOT NULL, "requests" bigint DEFAULT 0 NOT NULL, "errors" bigint DEFAULT 0 NOT NULL, "day_count" integer DEFAULT 0 NOT NULL, "minute_start" timestamp with time zone NOT NULL, "minute_count" integer DEFAULT 0 NOT NULL, "last_used_at" timestamp with time zone NULL, "api_key_id" integer NOT NULL);
--
-- Install function app.count_api_key_request(p_key_id int, p_refused boolean)
--
CREATE OR REPLACE FUNCTION "app"."count_api_key_request"(p_key_id int, p_refused boolean)
RETURNS TABLE(allowed boolean, limit_name text, retry_after int) LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_tenant int := app.current_tenant();
  v_now timestamptz := now();
  v_day date := (v_now AT TIME ZONE 'UTC')::date;
  v_minute timestamptz := date_trunc('minute', v_now, 'UTC');
  v_per_minute int;
  v_per_day int;
  v_day_count int;
  v_minute_count int;
  v_minute_start timestamptz;
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing counted, no answer
  END IF;
  SELECT k.rate_limit_per_minute, k.rate_limit_per_day INTO v_per_minute, v_per_day
    FROM core.api_keys AS k
   WHERE k.id = p_key_id AND k.tenant_id = v_tenant;
  IF NOT FOUND THEN
    RETURN;  -- not a key of the context's tenant
  END IF;

  INSERT INTO core.api_key_usage AS u (api_key_id, day, minute_start)
  VALUES (p_key_id, v_day, v_minute)
  ON CONFLICT (api_key_id, day) DO NOTHING;
  IF FOUND THEN
    -- The key's first request of the day: fold the days before into its own totals.
    WITH folded AS (
      DELETE FROM core.api_key_usage AS d
       WHERE d.api_key_id = p_key_id AND d.day < v_day
      RETURNING d.requests, d.errors, d.last_used_at
    ), total AS (
      SELECT sum(f.requests) AS requests, sum(f.errors) AS errors,
             max(f.last_used_at) AS last_used_at
        FROM folded AS f
    )
    UPDATE core.api_keys AS k
       SET total_requests = coalesce(k.total_requests, 0) + t.requests,
           total_errors = coalesce(k.total_errors, 0) + t.errors,
           last_used_at = greatest(k.last_used_at, t.last_used_at)
      FROM total AS t
     WHERE k.id = p_key_id AND t.requests IS NOT NULL;
  END IF;

  -- The day's row, locked until the caller's transaction ends: the next request of this
  -- key, from any process, reads the counts this one leaves.
  SELECT u.day_count, u.minute_count, u.minute_start
    INTO v_day_count, v_minute_count, v_minute_start
    FROM core.api_key_usage AS u
   WHERE u.api_key_id = p_key_id AND u.day = v_day
     FOR UPDATE;
  IF v_minute_start IS DISTINCT FROM v_minute THEN
    v_minute_count := 0;  -- a new minute
  END IF;

  allowed := NOT p_refused;
  IF allowed AND v_per_day IS NOT NULL AND v_day_count >= v_per_day THEN
    allowed := false;
    limit_name := 'day';
    retry_after := greatest(1, ceil(extract(epoch FROM
      ((v_day + 1)::timestamp AT TIME ZONE 'UTC') - v_now)));
  ELSIF allowed AND v_per_minute IS NOT NULL AND v_minute_count >= v_per_minute THEN
    allowed := false;
    limit_name := 'minute';
    retry_after := greatest(1, ceil(extract(epoch FROM
      (v_minute + interval '1 minute') - v_now)));
  END IF;

  UPDATE core.api_key_usage AS u
     SET requests = u.requests + 1,
         errors = u.errors + CASE WHEN allowed THEN 0 ELSE 1 END,
         day_count = u.day_count + CASE WHEN allowed THEN 1 ELSE 0 END,
         minute_start = v_minute,
         minute_count = v_minute_count + CASE WHEN allowed THEN 1 ELSE 0 END,
         last_used_at = v_now
   WHERE u.api_key_id = p_key_id AND u.day = v_day;
  RETURN NEXT;
END$$;
--
-- Grant execute on app.count_api_key_request(p_key_id int, p_refused boolean) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."count_api_key_request"(p_key_id int, p_refused boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."count_api_key_request"(p_key_id int, p_refused boolean) TO "{{runtime_role}}";
--
-- Install function app.count_api_key_error(p_key_id int)
--
CREATE OR REPLACE FUNCTION "app"."count_api_key_error"(p_key_id int)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  UPDATE core.api_key_usage AS u
     SET errors = u.errors + 1
   WHERE u.api_key_id = p_key_id
     AND u.day = (SELECT max(l.day) FROM core.api_key_usage AS l WHERE l.api_key_id = p_key_id)
     AND EXISTS (SELECT FROM core.api_keys AS k
                  WHERE k.id = p_key_id AND k.tenant_id = app.current_tenant())
$$;
--
-- Grant execute on app.count_api_key_error(p_key_id int) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."count_api_key_error"(p_key_id int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."count_api_key_error"(p_key_id int) TO "{{runtime_role}}";
--
-- Grant INSERT, DELETE on user to the admin service role
--
GRANT INSERT, DELETE ON "core"."users" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE, DELETE on project to the admin service role
--
GRANT SELECT, INSERT, UPDATE, DELETE ON "core"."projects" TO "{{runtime_role_admin}}";
--
-- Grant SELECT, INSERT, UPDATE on apikey to the admin service role
--
GRANT SELECT, INSERT, UPDATE ON "core"."api_keys" TO "{{runtime_role_admin}}";
--
-- Grant SELECT on apikeyusage to the admin service role
--
GRANT SELECT ON "core"."api_key_usage" TO "{{runtime_role_admin}}";
ALTER TABLE "core"."api_key_usage" ADD CONSTRAINT "api_key_usage_api_key_id_0e9d5b6c_fk_api_keys_id" FOREIGN KEY ("api_key_id") REFERENCES "core"."api_keys" ("id") ON DELETE CASCADE;
ALTER TABLE "core"."api_key_usage" ADD CONSTRAINT "api_key_usage_key_day_key" UNIQUE ("api_key_id", "day");

-- migration generic_data.0006_api_key_lookup_by_whole_key
--
-- Install function app.api_key_lookup(p_key text)
--
CREATE OR REPLACE FUNCTION "app"."api_key_lookup"(p_key text)
RETURNS TABLE(key_id int, tenant_id int, project_id int, user_id int, usable boolean) LANGUAGE sql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT k.id, k.tenant_id, k.project_id, k.user_id,
         k.is_active IS TRUE AND k.revoked_at IS NULL
         AND (k.expires_at IS NULL OR k.expires_at > now())
         AND t.is_active IS TRUE AND t.is_deleted IS NOT TRUE
         AND u.is_active IS TRUE AND u.is_deleted IS NOT TRUE
         AND (k.project_id IS NULL OR (p.is_active IS TRUE AND p.is_deleted IS NOT TRUE))
  FROM core.api_keys AS k
  JOIN core.tenants AS t ON t.id = k.tenant_id
  JOIN core.users AS u ON u.id = k.user_id
  LEFT JOIN core.projects AS p ON p.id = k.project_id
  WHERE k.key_prefix = substr(p_key, 1, 16)
    AND k.key_hash = encode(sha256(convert_to(p_key, 'UTF8')), 'hex')
$$;
--
-- Grant execute on app.api_key_lookup(p_key text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."api_key_lookup"(p_key text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."api_key_lookup"(p_key text) TO "{{runtime_role}}";
--
-- Revoke execute on app.api_key_tenant(p_prefix text) from the runtime role
--
REVOKE EXECUTE ON FUNCTION "app"."api_key_tenant"(p_prefix text) FROM "{{runtime_role}}";

-- migration core.0007_index_user_references
--
-- Concurrently create index idx_api_keys_user on field(s) user of model apikey
--
CREATE INDEX "idx_api_keys_user" ON "core"."api_keys" ("user_id");
--
-- Concurrently create index idx_files_uploaded_by on field(s) uploaded_by of model file
--
CREATE INDEX "idx_files_uploaded_by" ON "core"."files" ("uploaded_by");
--
-- Concurrently create index idx_org_members_invited_by on field(s) invited_by of model organizationmember
--
CREATE INDEX "idx_org_members_invited_by" ON "core"."organization_members" ("invited_by");
--
-- Concurrently create index idx_user_roles_granted_by on field(s) granted_by of model userrole
--
CREATE INDEX "idx_user_roles_granted_by" ON "core"."user_roles" ("granted_by");

-- migration hzm.0006_verified_tenant_context
--
-- Create the owner-only context key table hzm_private.context_keys
--
CREATE SCHEMA "hzm_private";
REVOKE ALL ON SCHEMA "hzm_private" FROM PUBLIC;
CREATE TABLE "hzm_private".context_keys (
  position smallint PRIMARY KEY CHECK (position >= 1),
  key bytea NOT NULL UNIQUE CHECK (octet_length(key) = 32)
);
REVOKE ALL ON TABLE "hzm_private".context_keys FROM PUBLIC;
--
-- Install function hzm_private.verifying_keys()
--
CREATE OR REPLACE FUNCTION "hzm_private"."verifying_keys"()
RETURNS bytea[] LANGUAGE sql IMMUTABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT coalesce(array_agg(k.key ORDER BY k.position), '{}') FROM hzm_private.context_keys AS k
$$;
--
-- Revoke execute on hzm_private.verifying_keys() from PUBLIC
--
REVOKE EXECUTE ON FUNCTION "hzm_private"."verifying_keys"() FROM PUBLIC;
--
-- Install function app.sign_context(p_tenant_id int, p_user_id int)
--
CREATE OR REPLACE FUNCTION "app"."sign_context"(p_tenant_id int, p_user_id int)
RETURNS text LANGUAGE sql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT t.m || '.' || encode(public.hmac(convert_to(t.m, 'UTF8'), k.key, 'sha256'), 'hex')
  FROM (
    SELECT concat_ws('.', 'v1',
                     coalesce(p_tenant_id::text, ''), coalesce(p_user_id::text, ''),
                     extract(epoch FROM statement_timestamp())::bigint + 3600,
                     pg_backend_pid(),
                     (extract(epoch FROM now()) * 1000000)::bigint) AS m
  ) AS t
  JOIN hzm_private.context_keys AS k ON k.position = 1
$$;
--
-- Revoke execute on app.sign_context(p_tenant_id int, p_user_id int) from PUBLIC
--
REVOKE EXECUTE ON FUNCTION "app"."sign_context"(p_tenant_id int, p_user_id int) FROM PUBLIC;
--
-- Replace function app.current_tenant()
--
CREATE OR REPLACE FUNCTION "app"."current_tenant"()
RETURNS int LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  p text[] := string_to_array(current_setting('app.context', true), '.');
  k bytea;
BEGIN
  IF cardinality(p) = 7 AND p[1] = 'v1' AND p[5] = pg_backend_pid()::text
     AND p[6] = ((extract(epoch FROM now()) * 1000000)::bigint)::text
     AND p[4] ~ '^[0-9]{1,12}$' THEN
    IF p[4]::bigint > extract(epoch FROM statement_timestamp()) THEN
      FOREACH k IN ARRAY hzm_private.verifying_keys() LOOP
        IF encode(public.hmac(convert_to(array_to_string(p[1:6], '.'), 'UTF8'), k, 'sha256'),
                  'hex') = p[7] THEN
          RETURN nullif(p[2], '')::int;
        END IF;
      END LOOP;
    END IF;
  END IF;
  RETURN NULL;
END$$;
--
-- Grant execute on app.current_tenant() to PUBLIC (reviewed)
--
GRANT EXECUTE ON FUNCTION "app"."current_tenant"() TO PUBLIC;
--
-- Replace function app.current_user_id()
--
CREATE OR REPLACE FUNCTION "app"."current_user_id"()
RETURNS int LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  p text[] := string_to_array(current_setting('app.context', true), '.');
  k bytea;
BEGIN
  IF cardinality(p) = 7 AND p[1] = 'v1' AND p[5] = pg_backend_pid()::text
     AND p[6] = ((extract(epoch FROM now()) * 1000000)::bigint)::text
     AND p[4] ~ '^[0-9]{1,12}$' THEN
    IF p[4]::bigint > extract(epoch FROM statement_timestamp()) THEN
      FOREACH k IN ARRAY hzm_private.verifying_keys() LOOP
        IF encode(public.hmac(convert_to(array_to_string(p[1:6], '.'), 'UTF8'), k, 'sha256'),
                  'hex') = p[7] THEN
          RETURN nullif(p[3], '')::int;
        END IF;
      END LOOP;
    END IF;
  END IF;
  RETURN NULL;
END$$;
--
-- Grant execute on app.current_user_id() to PUBLIC (reviewed)
--
GRANT EXECUTE ON FUNCTION "app"."current_user_id"() TO PUBLIC;
--
-- Replace function app.set_context(p_tenant_id int, p_user_id int)
--
CREATE OR REPLACE FUNCTION "app"."set_context"(p_tenant_id int, p_user_id int)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  -- A tenant context is a signed token now (app.context): naming a tenant proves nothing,
  -- so this ends the context in force instead of switching it.
  PERFORM set_config('app.context', '', true);
END$$;
--
-- Replace function app.auth_login(p_email text)
--
CREATE OR REPLACE FUNCTION "app"."auth_login"(p_email text)
RETURNS TABLE(id int, password_hash text) LANGUAGE sql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT u.id, 's1.' || translate(encode(s.iv || public.encrypt_iv(
           convert_to(u.password_hash::text, 'UTF8'),
           public.hmac('password seal'::bytea, k.key, 'sha256'), s.iv, 'aes-cbc/pad:pkcs'),
         'base64'), E'\n', '')
  FROM core.users AS u
  CROSS JOIN (SELECT public.gen_random_bytes(16) AS iv) AS s
  JOIN hzm_private.context_keys AS k ON k.position = 1
  WHERE u.email OPERATOR(public.=) p_email::public.citext
$$;
--
-- Replace function billing.sync_tenant_subscription()
--
CREATE OR REPLACE FUNCTION "billing"."sync_tenant_subscription"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_caller_context text := current_setting('app.context', true);
  v_plan_changed boolean;
  v_plan billing.plans%ROWTYPE;
  v_ends timestamptz;
BEGIN
  PERFORM set_config('app.context', app.sign_context(NEW.tenant_id, app.current_user_id()), true);
  IF NEW.status NOT IN ('trialing', 'active', 'past_due') AND EXISTS (
       SELECT 1 FROM billing.subscriptions s
       WHERE s.tenant_id = NEW.tenant_id AND s.id <> NEW.id
         AND s.status IN ('trialing', 'active', 'past_due')) THEN
    PERFORM set_config('app.context', coalesce(v_caller_context, ''), true);
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    v_plan_changed := true;
  ELSE
    v_plan_changed := NEW.plan_id IS DISTINCT FROM OLD.plan_id;
  END IF;
  SELECT * INTO STRICT v_plan FROM billing.plans WHERE id = NEW.plan_id;
  v_ends := CASE
    WHEN NEW.status IN ('canceled', 'expired') THEN NEW.ended_at
    WHEN NEW.cancel_at_period_end THEN NEW.current_period_end
  END;
  UPDATE core.tenants t SET
    subscription_status = NEW.status,
    trial_ends_at = NEW.trial_ends_at,
    subscription_ends_at = v_ends,
    plan = CASE WHEN v_plan_changed THEN v_plan.code ELSE t.plan END,
    max_projects = CASE WHEN v_plan_changed THEN v_plan.max_projects ELSE t.max_projects END,
    max_tables_per_project = CASE WHEN v_plan_changed
      THEN v_plan.max_tables_per_project ELSE t.max_tables_per_project END,
    max_records = CASE WHEN v_plan_changed THEN v_plan.max_records ELSE t.max_records END,
    limits = CASE WHEN v_plan_changed THEN v_plan.limits ELSE t.limits END,
    features = CASE WHEN v_plan_changed THEN v_plan.features ELSE t.features END
  WHERE t.id = NEW.tenant_id
    -- Only a real change: every UPDATE bumps the tenant's version and is audited.
    AND ((t.subscription_status, t.trial_ends_at, t.subscription_ends_at)
           IS DISTINCT FROM (NEW.status, NEW.trial_ends_at, v_ends)
         OR (v_plan_changed AND (t.plan, t.max_projects, t.max_tables_per_project,
                                 t.max_records, t.limits, t.features)
               IS DISTINCT FROM (v_plan.code, v_plan.max_projects,
                                 v_plan.max_tables_per_project, v_plan.max_records,
                                 v_plan.limits, v_plan.features)));
  PERFORM set_config('app.context', coalesce(v_caller_context, ''), true);
  RETURN NULL;
END$$;

-- migration core.0008_sign_in_throttle
--
-- Create model SignInFailure
--
CREATE TABLE "app"."sign_in_failures" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, "email" text NOT NULL, "ip_address" text NOT NULL, "failures" integer NOT NULL, "last_failure" timestamp with time zone NOT NULL, "locked_until" timestamp with time zone NULL, CONSTRAINT "sign_in_failures_email_ip_key" UNIQUE ("email", "ip_address"), CONSTRAINT "sign_in_failures_failures_check" CHECK ("failures" >= 1));
--
-- Install function app.sign_in_wait(p_email text, p_ip text)
--
CREATE OR REPLACE FUNCTION "app"."sign_in_wait"(p_email text, p_ip text)
RETURNS int LANGUAGE sql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  SELECT coalesce(max(ceil(extract(epoch FROM f.locked_until - now())))::int, 0)
  FROM app.sign_in_failures AS f
  WHERE f.email = lower(p_email) AND f.ip_address = coalesce(p_ip, '')
    AND f.locked_until > now()
$$;
--
-- Grant execute on app.sign_in_wait(p_email text, p_ip text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."sign_in_wait"(p_email text, p_ip text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."sign_in_wait"(p_email text, p_ip text) TO "{{runtime_role}}";
--
-- Install function app.sign_in_failed(p_email text, p_ip text, p_limit int, p_cool_off_seconds int)
--
CREATE OR REPLACE FUNCTION "app"."sign_in_failed"(p_email text, p_ip text, p_limit int, p_cool_off_seconds int)
RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_cool_off interval;
  v_locked_until timestamptz;
BEGIN
  IF p_limit IS NULL OR p_limit < 1
     OR p_cool_off_seconds IS NULL OR p_cool_off_seconds NOT BETWEEN 1 AND 86400 THEN
    RAISE EXCEPTION 'sign-in throttle: limit % and cool-off % s (the limit at least 1, the '
                    'cool-off 1 to 86400 seconds)', p_limit, p_cool_off_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_cool_off := make_interval(secs => p_cool_off_seconds);
  INSERT INTO app.sign_in_failures AS f (email, ip_address, failures, last_failure, locked_until)
  VALUES (lower(p_email), coalesce(p_ip, ''), 1, now(),
          CASE WHEN p_limit <= 1 THEN now() + v_cool_off END)
  ON CONFLICT (email, ip_address) DO UPDATE SET
    failures = CASE WHEN f.last_failure > now() - v_cool_off THEN f.failures + 1 ELSE 1 END,
    last_failure = now(),
    locked_until = CASE
      WHEN (CASE WHEN f.last_failure > now() - v_cool_off THEN f.failures + 1 ELSE 1 END)
           >= p_limit
      THEN now() + v_cool_off END
  RETURNING f.locked_until INTO v_locked_until;
  -- Rows older than any cool-off count for nothing: a few go with each new failure.
  DELETE FROM app.sign_in_failures AS o
  WHERE o.ctid = ANY (ARRAY(
    SELECT x.ctid FROM app.sign_in_failures AS x
    WHERE x.last_failure < now() - interval '1 day'
      AND (x.locked_until IS NULL OR x.locked_until < now())
    LIMIT 100));
  RETURN coalesce(ceil(extract(epoch FROM v_locked_until - now()))::int, 0);
END$$;
--
-- Grant execute on app.sign_in_failed(p_email text, p_ip text, p_limit int, p_cool_off_seconds int) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."sign_in_failed"(p_email text, p_ip text, p_limit int, p_cool_off_seconds int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."sign_in_failed"(p_email text, p_ip text, p_limit int, p_cool_off_seconds int) TO "{{runtime_role}}";
--
-- Install function app.sign_in_succeeded(p_ip text)
--
CREATE OR REPLACE FUNCTION "app"."sign_in_succeeded"(p_ip text)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
  DELETE FROM app.sign_in_failures AS f
  USING core.users AS u
  WHERE u.id = app.current_user_id()
    AND f.email = lower(u.email::text) AND f.ip_address = coalesce(p_ip, '')
$$;
--
-- Grant execute on app.sign_in_succeeded(p_ip text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."sign_in_succeeded"(p_ip text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."sign_in_succeeded"(p_ip text) TO "{{runtime_role}}";
CREATE INDEX "idx_sign_in_failures_last" ON "app"."sign_in_failures" ("last_failure");

-- migration core.0009_sign_in_failures_for_the_admin
--
-- Grant SELECT, DELETE on core.signinfailure to the admin service role
--
GRANT SELECT, DELETE ON "app"."sign_in_failures" TO "{{runtime_role_admin}}";

-- migration core.0010_signed_sign_in_failures
--
-- Install function app.count_sign_in_failure(p_email text, p_ip text, p_limit int, p_cool_off_seconds int, p_signature text)
--
CREATE OR REPLACE FUNCTION "app"."count_sign_in_failure"(p_email text, p_ip text, p_limit int, p_cool_off_seconds int, p_signature text)
RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_message text;
  v_key bytea;
  v_signed boolean := false;
  v_cool_off interval;
  v_locked_until timestamptz;
BEGIN
  IF p_limit IS NULL OR p_limit < 1
     OR p_cool_off_seconds IS NULL OR p_cool_off_seconds NOT BETWEEN 1 AND 86400 THEN
    RAISE EXCEPTION 'sign-in throttle: limit % and cool-off % s (the limit at least 1, the '
                    'cool-off 1 to 86400 seconds)', p_limit, p_cool_off_seconds
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_message := 'sign-in-failure.v1.'
    || encode(convert_to(p_email, 'UTF8'), 'hex') || '.'
    || encode(convert_to(coalesce(p_ip, ''), 'UTF8'), 'hex') || '.'
    || p_limit::text || '.' || p_cool_off_seconds::text || '.'
    || pg_backend_pid()::text || '.' || ((extract(epoch FROM now()) * 1000000)::bigint)::text;
  FOREACH v_key IN ARRAY hzm_private.verifying_keys() LOOP
    IF encode(public.hmac(convert_to(v_message, 'UTF8'), v_key, 'sha256'), 'hex')
       = p_signature THEN
      v_signed := true;
      EXIT;
    END IF;
  END LOOP;
  IF p_email IS NULL OR NOT v_signed THEN
    RAISE EXCEPTION 'sign-in throttle: this failure is not signed for this transaction'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  v_cool_off := make_interval(secs => p_cool_off_seconds);
  INSERT INTO app.sign_in_failures AS f (email, ip_address, failures, last_failure, locked_until)
  VALUES (lower(p_email), coalesce(p_ip, ''), 1, now(),
          CASE WHEN p_limit <= 1 THEN now() + v_cool_off END)
  ON CONFLICT (email, ip_address) DO UPDATE SET
    failures = CASE WHEN f.last_failure > now() - v_cool_off THEN f.failures + 1 ELSE 1 END,
    last_failure = now(),
    locked_until = CASE
      WHEN (CASE WHEN f.last_failure > now() - v_cool_off THEN f.failures + 1 ELSE 1 END)
           >= p_limit
      THEN now() + v_cool_off END
  RETURNING f.locked_until INTO v_locked_until;
  -- Rows older than any cool-off count for nothing: a few go with each new failure.
  DELETE FROM app.sign_in_failures AS o
  WHERE o.ctid = ANY (ARRAY(
    SELECT x.ctid FROM app.sign_in_failures AS x
    WHERE x.last_failure < now() - interval '1 day'
      AND (x.locked_until IS NULL OR x.locked_until < now())
    LIMIT 100));
  RETURN coalesce(ceil(extract(epoch FROM v_locked_until - now()))::int, 0);
END$$;
--
-- Grant execute on app.count_sign_in_failure(p_email text, p_ip text, p_limit int, p_cool_off_seconds int, p_signature text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."count_sign_in_failure"(p_email text, p_ip text, p_limit int, p_cool_off_seconds int, p_signature text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."count_sign_in_failure"(p_email text, p_ip text, p_limit int, p_cool_off_seconds int, p_signature text) TO "{{runtime_role}}";
--
-- Revoke execute on app.sign_in_failed(p_email text, p_ip text, p_limit int, p_cool_off_seconds int) from the runtime role
--
REVOKE EXECUTE ON FUNCTION "app"."sign_in_failed"(p_email text, p_ip text, p_limit int, p_cool_off_seconds int) FROM "{{runtime_role}}";

-- migration ops.0006_cheaper_audit
--
-- Replace function app.redact_secrets(doc jsonb)
--
CREATE OR REPLACE FUNCTION "app"."redact_secrets"(doc jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  c_secrets CONSTANT text[] := ARRAY['password_hash', 'token', 'key_hash', 'key_encrypted',
                                     'secret_encrypted', 'backup_codes_encrypted',
                                     'email_verification_token', 'api_key', 'api_key_password'];
BEGIN
  IF NOT doc ?| c_secrets THEN
    RETURN doc;
  END IF;
  RETURN (
    SELECT coalesce(jsonb_object_agg(
             key,
             CASE WHEN key = ANY (c_secrets) AND value <> 'null'::jsonb
                  THEN '"[redacted]"'::jsonb
                  ELSE value END), '{}'::jsonb)
    FROM jsonb_each(doc));
END$$;
--
-- Replace function ops.log_audit()
--
CREATE OR REPLACE FUNCTION "ops"."log_audit"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
  v_before jsonb;
  v_old jsonb;
  v_new jsonb;
  v_key text;
  v_tenant int;
  v_user int;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    -- The columns whose value changed, old and new.
    v_before := to_jsonb(OLD);
    SELECT jsonb_object_agg(n.key, v_before -> n.key), jsonb_object_agg(n.key, n.value)
      INTO v_old, v_new
    FROM jsonb_each(v_row) AS n
    WHERE n.value IS DISTINCT FROM v_before -> n.key;
    -- Nothing but the touch trigger's bookkeeping changed: no change to record.
    IF v_new IS NULL OR v_new - ARRAY['updated_at', 'version'] = '{}'::jsonb THEN
      RETURN NULL;
    END IF;
    -- With the row's key, so that each side names its row.
    IF TG_NARGS > 0 THEN
      SELECT jsonb_object_agg(k.column_name, v_before -> k.column_name) || v_old,
             jsonb_object_agg(k.column_name, v_row -> k.column_name) || v_new
        INTO v_old, v_new
      FROM unnest(TG_ARGV) AS k(column_name);
    ELSE
      v_old := jsonb_build_object('id', v_before -> 'id') || v_old;
      v_new := jsonb_build_object('id', v_row -> 'id') || v_new;
    END IF;
  ELSIF TG_OP = 'INSERT' THEN
    v_new := v_row;
  ELSE
    v_old := v_row;
  END IF;
  IF TG_NARGS > 0 THEN
    SELECT string_agg(v_row ->> k.column_name, ',' ORDER BY k.position) INTO v_key
    FROM unnest(TG_ARGV) WITH ORDINALITY AS k(column_name, position);
  ELSE
    v_key := v_row ->> 'id';
  END IF;
  -- Assigned apart, not called inside the INSERT: a plain expression's function keeps its
  -- state for the transaction, a statement's is set up again each time it runs.
  v_tenant := app.current_tenant();
  v_user := app.current_user_id();
  INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id,
                              old_values, new_values, ip_address, user_agent, request_id)
  VALUES (
    -- The context's tenant; a platform admin (no tenant context) changing a tenant's
    -- row is recorded under that row's tenant (for core.tenants, the row itself), so
    -- the tenant sees it too.
    COALESCE(
      v_tenant,
      (v_row ->> 'tenant_id')::int,
      CASE WHEN TG_TABLE_SCHEMA = 'core' AND TG_TABLE_NAME = 'tenants'
           THEN (v_row ->> 'id')::int END
    ),
    v_user,
    TG_OP,
    TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
    v_key,
    app.redact_secrets(v_old),
    app.redact_secrets(v_new),
    nullif(current_setting('app.ip_address', true), '')::inet,
    nullif(current_setting('app.user_agent', true), ''),
    nullif(current_setting('app.request_id', true), '')
  );
  RETURN NULL;
END$$;
--
-- Install function ops.log_audit_inserts()
--
CREATE OR REPLACE FUNCTION "ops"."log_audit_inserts"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  -- Once per statement, whatever the number of rows.
  v_tenant int := app.current_tenant();
  v_user int := app.current_user_id();
  v_ip inet := nullif(current_setting('app.ip_address', true), '')::inet;
  v_agent text := nullif(current_setting('app.user_agent', true), '');
  v_request text := nullif(current_setting('app.request_id', true), '');
  v_entity text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
  v_tenants boolean := TG_TABLE_SCHEMA = 'core' AND TG_TABLE_NAME = 'tenants';
BEGIN
  INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id,
                              old_values, new_values, ip_address, user_agent, request_id)
  SELECT
    -- As ops.log_audit(): the context's tenant, else the row's.
    COALESCE(v_tenant, (r.doc ->> 'tenant_id')::int,
             CASE WHEN v_tenants THEN (r.doc ->> 'id')::int END),
    v_user,
    'INSERT',
    v_entity,
    CASE WHEN TG_NARGS = 0 THEN r.doc ->> 'id'
         ELSE (SELECT string_agg(r.doc ->> k.column_name, ',' ORDER BY k.position)
               FROM unnest(TG_ARGV) WITH ORDINALITY AS k(column_name, position)) END,
    NULL,
    app.redact_secrets(r.doc),
    v_ip,
    v_agent,
    v_request
  -- OFFSET 0 keeps the subquery apart, so each row's to_jsonb() is computed once; the
  -- rows come in the order they were inserted.
  FROM (SELECT to_jsonb(n) AS doc FROM new_rows AS n OFFSET 0) AS r;
  RETURN NULL;
END$$;
--
-- Revoke execute on ops.log_audit_inserts() from PUBLIC
--
REVOKE EXECUTE ON FUNCTION "ops"."log_audit_inserts"() FROM PUBLIC;

-- migration generic_data.0007_containment_gin_first
--
-- Replace function app.rows_containing(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint, p_limit int, p_descending boolean)
--
CREATE OR REPLACE FUNCTION "app"."rows_containing"(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint DEFAULT NULL, p_limit int DEFAULT NULL, p_descending boolean DEFAULT false)
RETURNS SETOF bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_tenant int := app.current_tenant();
  v_page boolean := p_limit IS NOT NULL AND p_descending IS NOT NULL;  -- first p_limit, in order
  v_cap boolean := p_limit IS NOT NULL AND p_descending IS NULL;  -- all, or NULL past p_limit
  v_op text := CASE WHEN p_descending THEN '<' ELSE '>' END;
  v_order text := CASE WHEN p_descending THEN 'DESC' ELSE 'ASC' END;
  v_after bigint := coalesce(p_after, CASE WHEN p_descending THEN 9223372036854775807 ELSE 0 END);
  v_pairs jsonb[];  -- the document's top-level pairs, one document each
  v_seen int;
  v_last bigint;  -- the window's last row
  v_found bigint[];
  v_rows jsonb[];
  v_window bigint[];  -- the window's matches (the GIN path may replace v_found)
  v_more bigint[];
  v_too_many boolean := false;
  v_live bigint;
  v_total real;
  v_pair jsonb;
  v_plan json;
  v_rare boolean := false;
  v_reach int;
  v_reached int;
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing, never everything
  END IF;
  IF jsonb_typeof(p_doc) = 'object' AND p_doc <> '{}' THEN
    SELECT array_agg(jsonb_build_object(p.key, p.value)) INTO v_pairs FROM jsonb_each(p_doc) AS p;
  END IF;
  <<search>>
  BEGIN
    -- 1. The window (its rows' documents too when there are pairs to look for in them).
    EXECUTE format($q$SELECT count(*)::int, %3$s(w.id),
       array_agg(w.id ORDER BY w.id %2$s) FILTER (WHERE w.data @> $4),
       array_agg(w.data) FILTER (WHERE $6)
FROM (SELECT g.id, g.data FROM app.generic_data AS g
      WHERE g.tenant_id = $1 AND g.project_id = $2 AND g.table_id = $3
        AND g.is_deleted = false AND g.id %1$s $5
      ORDER BY g.id %2$s LIMIT 32) AS w$q$, v_op, v_order,
                   CASE WHEN p_descending THEN 'min' ELSE 'max' END)
      INTO v_seen, v_last, v_found, v_rows
      USING v_tenant, p_project_id, p_table_id, p_doc, v_after, cardinality(v_pairs) > 1;
    v_window := v_found;
    IF v_seen < 32 OR (v_page AND cardinality(v_found) >= p_limit)
       OR (v_cap AND cardinality(v_found) > p_limit) THEN
      EXIT search;  -- the table ends in the window, the page is full, or too many already
    END IF;
    IF v_cap OR v_found IS NULL THEN
      SELECT c.live_records INTO v_live FROM app.record_counts AS c WHERE c.table_id = p_table_id;
    END IF;
    IF v_cap AND cardinality(v_found)::real * coalesce(v_live, 0) > p_limit::real * v_seen THEN
      v_too_many := true;  -- as frequent in the rest of the table, it holds more than p_limit
      EXIT search;
    END IF;
    -- 2. The GIN index, for a document with a pair that neither the window nor the
    --    planner's statistics have seen.
    IF v_found IS NULL THEN
      SELECT c.reltuples INTO v_total FROM pg_class AS c WHERE c.oid = 'app.generic_data'::regclass;
      FOR v_pair IN SELECT p FROM unnest(v_pairs) AS p
                    WHERE NOT EXISTS (SELECT FROM unnest(v_rows) AS r WHERE r @> p) LOOP
        EXECUTE $q$EXPLAIN (FORMAT JSON) SELECT FROM app.generic_data AS g WHERE g.data @> $1$q$ INTO v_plan USING v_pair;
        v_rare := (v_plan -> 0 -> 'Plan' ->> 'Plan Rows')::real <= 0.001 * v_total;
        EXIT WHEN v_rare;
      END LOOP;
    END IF;
    IF v_rare THEN
      v_reach := greatest(16, least(1000, coalesce(v_live, 0) / 40));
      EXECUTE format($q$SELECT count(*)::int,
       array_agg(c.id ORDER BY c.id %2$s) FILTER (
         WHERE c.tenant_id = $1 AND c.project_id = $2 AND c.table_id = $3
           AND c.is_deleted = false AND c.id %1$s $5)
FROM (SELECT g.id, g.tenant_id, g.project_id, g.table_id, g.is_deleted
      FROM app.generic_data AS g WHERE g.data @> $4 LIMIT $6) AS c$q$, v_op, v_order)
        INTO v_reached, v_found
        USING v_tenant, p_project_id, p_table_id, p_doc, v_after, v_reach;
      IF v_reached < v_reach THEN
        EXIT search;  -- every row containing the document was seen
      END IF;
    END IF;
    -- 3. The ordered scan, on from the window's last row, for what the page still needs.
    v_found := coalesce(v_window, '{}');
    EXECUTE format($q$SELECT array_agg(s.id) FROM (
  SELECT g.id FROM app.generic_data AS g
  WHERE g.tenant_id = $1 AND g.project_id = $2 AND g.table_id = $3
        AND g.is_deleted = false AND g.id %1$s $5 AND g.data @> $4
  %3$s LIMIT $6) AS s$q$, v_op, v_order,
                   CASE WHEN p_limit IS NOT NULL THEN 'ORDER BY g.id ' || v_order END)
      INTO v_more
      USING v_tenant, p_project_id, p_table_id, p_doc, v_last,
            CASE WHEN v_cap THEN p_limit + 1 ELSE p_limit END - cardinality(v_found);
    v_found := v_found || v_more;
  END search;
  IF v_too_many OR (v_cap AND cardinality(v_found) > p_limit) THEN
    RETURN NEXT NULL;
  ELSE
    RETURN QUERY SELECT unnest(CASE WHEN v_page THEN v_found[1:p_limit] ELSE v_found END);
  END IF;
END$$;
--
-- Run function app.rows_containing with enable_sort = off
--
ALTER FUNCTION "app"."rows_containing"(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint, p_limit int, p_descending boolean) SET "enable_sort" = off;
--
-- Run function app.rows_containing with enable_incremental_sort = off
--
ALTER FUNCTION "app"."rows_containing"(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint, p_limit int, p_descending boolean) SET "enable_incremental_sort" = off;

-- migration generic_data.0008_cheaper_writes
--
-- Replace function app.count_records()
--
CREATE OR REPLACE FUNCTION "app"."count_records"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_tenants int[];
  v_limits int[];
  v_total bigint;
  v_added bigint;
BEGIN
  -- 1. The tenants this statement gives live rows (new rows, restored rows, rows moved to
  --    another table), locked first and in id order, with their limits.
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.max_records ORDER BY l.id)
      INTO v_tenants, v_limits
    FROM (SELECT t.id, t.max_records FROM core.tenants AS t
          WHERE t.id IN (SELECT n.tenant_id FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE)
          ORDER BY t.id FOR NO KEY UPDATE) AS l;
  ELSIF TG_OP = 'UPDATE' THEN
    -- Nothing for the counts unless a row was deleted, restored or moved.
    PERFORM 1 FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE n.is_deleted IS DISTINCT FROM o.is_deleted OR n.table_id <> o.table_id LIMIT 1;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.max_records ORDER BY l.id)
      INTO v_tenants, v_limits
    FROM (SELECT t.id, t.max_records FROM core.tenants AS t
          WHERE t.id IN (SELECT n.tenant_id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
                         WHERE n.is_deleted IS NOT TRUE
                           AND (o.is_deleted IS TRUE OR o.table_id <> n.table_id))
          ORDER BY t.id FOR NO KEY UPDATE) AS l;
  END IF;

  -- 2. The counts: +1 for each live row the statement made, -1 for each it ended.
  IF TG_OP = 'INSERT' THEN
    INSERT INTO app.record_counts AS c (table_id, live_records)
    SELECT n.table_id, count(*) FROM new_rows AS n
    WHERE n.is_deleted IS NOT TRUE GROUP BY 1
    ON CONFLICT (table_id) DO UPDATE SET live_records = c.live_records + excluded.live_records;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE app.record_counts AS c SET live_records = c.live_records - d.ended
    FROM (SELECT o.table_id, count(*) AS ended FROM old_rows AS o
          WHERE o.is_deleted IS NOT TRUE GROUP BY 1) AS d
    WHERE c.table_id = d.table_id;
  ELSE
    INSERT INTO app.record_counts AS c (table_id, live_records)
    SELECT d.table_id, sum(d.delta) FROM (
      SELECT n.table_id, 1 AS delta FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE
      UNION ALL
      SELECT o.table_id, -1 FROM old_rows AS o WHERE o.is_deleted IS NOT TRUE
    ) AS d GROUP BY 1 HAVING sum(d.delta) <> 0
    ON CONFLICT (table_id) DO UPDATE SET live_records = c.live_records + excluded.live_records;
  END IF;

  -- 3. The limit: live rows of the tenant's live tables, at most core.tenants.max_records.
  FOR i IN 1 .. coalesce(array_length(v_tenants, 1), 0) LOOP
    CONTINUE WHEN v_limits[i] IS NULL;
    SELECT coalesce(sum(c.live_records), 0) INTO v_total
    FROM core.table_metadata AS m
    JOIN app.record_counts AS c ON c.table_id = m.id
    WHERE m.tenant_id = v_tenants[i] AND m.is_deleted IS NOT TRUE;
    IF v_total > v_limits[i] THEN
      IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO v_added FROM new_rows AS n
        WHERE n.tenant_id = v_tenants[i] AND n.is_deleted IS NOT TRUE;
      ELSE
        SELECT count(*) INTO v_added FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.tenant_id = v_tenants[i] AND n.is_deleted IS NOT TRUE AND o.is_deleted IS TRUE;
      END IF;
      RAISE EXCEPTION 'the tenant has % records; % more would exceed its plan''s max_records (%)',
        v_total - v_added, v_added, v_limits[i]
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_max_records';
    END IF;
  END LOOP;
  RETURN NULL;
END$$;
--
-- Attach statement trigger audit_insert (AFTER INSERT, ops.log_audit_inserts) to genericdata
--
CREATE TRIGGER "trg_generic_data_audit_insert" AFTER INSERT ON "app"."generic_data" REFERENCING NEW TABLE AS "new_rows" FOR EACH STATEMENT EXECUTE FUNCTION "ops"."log_audit_inserts"();
--
-- Audit genericdata rows on UPDATE, DELETE only
--
CREATE OR REPLACE TRIGGER "trg_generic_data_audit" AFTER UPDATE OR DELETE ON "app"."generic_data" FOR EACH ROW EXECUTE FUNCTION "ops"."log_audit"();
--
-- Custom state/database change combination
--
ALTER TABLE "app"."generic_data" DROP CONSTRAINT "generic_data_tenant_id_71aa3a9b_fk_tenants_id";
ALTER TABLE "app"."generic_data" DROP CONSTRAINT "generic_data_project_id_7731b38d_fk_projects_id";
ALTER TABLE "app"."generic_data" DROP CONSTRAINT "generic_data_table_id_9739915d_fk_table_metadata_id";

-- migration generic_data.0009_search_plans
--
-- Replace function app.rows_containing(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint, p_limit int, p_descending boolean)
--
CREATE OR REPLACE FUNCTION "app"."rows_containing"(p_project_id int, p_table_id int, p_doc jsonb, p_after bigint DEFAULT NULL, p_limit int DEFAULT NULL, p_descending boolean DEFAULT false)
RETURNS SETOF bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" SET "enable_sort" = off SET "enable_incremental_sort" = off SET "enable_indexscan" = on SET "plan_cache_mode" = force_custom_plan AS $$
DECLARE
  v_tenant int := app.current_tenant();
  v_page boolean := p_limit IS NOT NULL AND p_descending IS NOT NULL;  -- first p_limit, in order
  v_cap boolean := p_limit IS NOT NULL AND p_descending IS NULL;  -- all, or NULL past p_limit
  v_desc boolean := p_descending IS TRUE;
  v_op text := CASE WHEN p_descending THEN '<' ELSE '>' END;
  v_order text := CASE WHEN p_descending THEN 'DESC' ELSE 'ASC' END;
  v_after bigint := coalesce(p_after, CASE WHEN p_descending THEN 9223372036854775807 ELSE 0 END);
  v_want int := CASE WHEN v_cap THEN p_limit + 1 ELSE p_limit END;  -- ids at most (NULL: all)
  v_keys int := 0;  -- the document's top-level pairs
  v_seen int;
  v_last bigint;  -- the window's last row
  v_found bigint[];
  v_rows jsonb[];  -- the window's documents, for a document of several pairs
  v_more bigint[];
  v_too_many boolean := false;
  v_live bigint;
  v_reach int;
  v_reached int;
BEGIN
  IF v_tenant IS NULL THEN
    RETURN;  -- no tenant context: nothing, never everything
  END IF;
  IF jsonb_typeof(p_doc) = 'object' THEN
    SELECT count(*)::int INTO v_keys FROM jsonb_object_keys(p_doc);
  END IF;
  <<search>>
  BEGIN
    -- 1. The window.
    IF v_desc THEN
      SELECT count(*)::int, min(w.id),
             array_agg(w.id ORDER BY w.id DESC) FILTER (WHERE w.data @> p_doc),
             array_agg(w.data) FILTER (WHERE v_keys > 1)
        INTO v_seen, v_last, v_found, v_rows
      FROM (SELECT g.id, g.data FROM app.generic_data AS g
            WHERE g.tenant_id = v_tenant AND g.project_id = p_project_id AND g.table_id = p_table_id
          AND g.is_deleted = false AND g.id < v_after
            ORDER BY g.id DESC LIMIT 32) AS w;
    ELSE
      SELECT count(*)::int, max(w.id),
             array_agg(w.id ORDER BY w.id ASC) FILTER (WHERE w.data @> p_doc),
             array_agg(w.data) FILTER (WHERE v_keys > 1)
        INTO v_seen, v_last, v_found, v_rows
      FROM (SELECT g.id, g.data FROM app.generic_data AS g
            WHERE g.tenant_id = v_tenant AND g.project_id = p_project_id AND g.table_id = p_table_id
          AND g.is_deleted = false AND g.id > v_after
            ORDER BY g.id ASC LIMIT 32) AS w;
    END IF;
    IF v_seen < 32 OR (v_page AND cardinality(v_found) >= p_limit)
       OR (v_cap AND cardinality(v_found) > p_limit) THEN
      EXIT search;  -- the table ends in the window, the page is full, or too many already
    END IF;
    SELECT coalesce(max(c.live_records), 0) INTO v_live
    FROM app.record_counts AS c WHERE c.table_id = p_table_id;
    IF v_cap AND cardinality(v_found)::real * v_live > p_limit::real * v_seen THEN
      v_too_many := true;  -- as frequent in the rest of the table, it holds more than p_limit
      EXIT search;
    END IF;
    IF v_found IS NULL AND v_keys > 0 THEN
      -- 2. The GIN index alone, for a document none of whose pairs the window has seen.
      IF v_keys = 1 OR NOT EXISTS (
           SELECT FROM jsonb_each(p_doc) AS p CROSS JOIN unnest(v_rows) AS r
           WHERE r @> jsonb_build_object(p.key, p.value)) THEN
        v_reach := greatest(16, least(1000, v_live / 40));
        EXECUTE format($q$SELECT count(*)::int,
       array_agg(c.id ORDER BY c.id %2$s) FILTER (
         WHERE c.tenant_id = $1 AND c.project_id = $2 AND c.table_id = $3
           AND c.is_deleted = false AND c.id %1$s $5)
FROM (SELECT g.id, g.tenant_id, g.project_id, g.table_id, g.is_deleted
      FROM app.generic_data AS g WHERE g.data @> $4 LIMIT $6) AS c$q$, v_op, v_order)
          INTO v_reached, v_found
          USING v_tenant, p_project_id, p_table_id, p_doc, v_after, v_reach;
        IF v_reached < v_reach THEN
          EXIT search;  -- every row containing the document was seen
        END IF;
      END IF;
      -- 3. The GIN index AND-ed with the tenant's rows, for a large table.
      IF v_live > 2000 THEN
        PERFORM set_config('enable_indexscan', 'off', true);
        EXECUTE format($q$SELECT (array_agg(g.id ORDER BY g.id %2$s))[1:coalesce($6, 2147483647)]
FROM app.generic_data AS g
WHERE g.tenant_id = $1 AND g.project_id + 0 = $2 AND g.table_id + 0 = $3
  AND g.is_deleted = false AND g.id %1$s $5 AND g.data @> $4$q$, v_op, v_order)
          INTO v_found
          USING v_tenant, p_project_id, p_table_id, p_doc, v_after, v_want;
        PERFORM set_config('enable_indexscan', 'on', true);
        EXIT search;
      END IF;
      v_found := NULL;  -- the window's matches (none), for the ordered scan
    END IF;
    -- 4. The ordered scan, on from the window's last row, for what the page still needs.
    v_want := v_want - coalesce(cardinality(v_found), 0);
    IF v_desc THEN
      SELECT array_agg(s.id) INTO v_more
      FROM (SELECT g.id FROM app.generic_data AS g
            WHERE g.tenant_id = v_tenant AND g.project_id = p_project_id AND g.table_id = p_table_id
          AND g.is_deleted = false AND g.id < v_last AND g.data @> p_doc
            ORDER BY g.id DESC LIMIT v_want) AS s;
    ELSE
      SELECT array_agg(s.id) INTO v_more
      FROM (SELECT g.id FROM app.generic_data AS g
            WHERE g.tenant_id = v_tenant AND g.project_id = p_project_id AND g.table_id = p_table_id
          AND g.is_deleted = false AND g.id > v_last AND g.data @> p_doc
            ORDER BY g.id ASC LIMIT v_want) AS s;
    END IF;
    v_found := coalesce(v_found, '{}') || v_more;
  END search;
  IF v_too_many OR (v_cap AND cardinality(v_found) > p_limit) THEN
    RETURN NEXT NULL;
  ELSE
    RETURN QUERY SELECT unnest(CASE WHEN v_page THEN v_found[1:p_limit] ELSE v_found END);
  END IF;
END$$;

-- migration generic_data.0010_cheaper_updates
--
-- Replace function app.sync_unique_values()
--
CREATE OR REPLACE FUNCTION "app"."sync_unique_values"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    DELETE FROM app.generic_data_unique AS u USING old_rows AS o WHERE u.row_id = o.id;
  END IF;
  INSERT INTO app.generic_data_unique (table_id, field, value, row_id)
  SELECT n.table_id, f.name, n.data ->> f.name, n.id
  FROM new_rows AS n
  JOIN core.table_metadata AS t ON t.id = n.table_id
  CROSS JOIN LATERAL jsonb_path_query(
    CASE WHEN jsonb_typeof(t.fields) = 'array' THEN t.fields ELSE '[]'::jsonb END,
    'strict $[*] ? (@.unique == true && exists (@.name)).name'
  ) AS u(name)
  CROSS JOIN LATERAL (SELECT u.name #>> '{}' AS name) AS f
  WHERE n.is_deleted IS NOT TRUE AND n.data ->> f.name IS NOT NULL;
  RETURN NULL;
END$$;
--
-- Replace function app.count_records()
--
CREATE OR REPLACE FUNCTION "app"."count_records"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_tenants int[];
  v_limits int[];
  v_total bigint;
  v_added bigint;
BEGIN
  -- 1. The tenants this statement gives live rows (new rows, restored rows, rows moved to
  --    another table), locked first and in id order, with their limits.
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(l.id), array_agg(l.max_records)
      INTO v_tenants, v_limits
    FROM (SELECT t.id, t.max_records FROM core.tenants AS t
          WHERE t.id IN (SELECT n.tenant_id FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE)
          ORDER BY t.id FOR NO KEY UPDATE) AS l;
  ELSIF TG_OP = 'UPDATE' THEN
    -- Nothing for the counts unless a row was deleted, restored or moved.
    PERFORM 1 FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE n.is_deleted IS DISTINCT FROM o.is_deleted OR n.table_id <> o.table_id LIMIT 1;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    SELECT array_agg(l.id), array_agg(l.max_records)
      INTO v_tenants, v_limits
    FROM (SELECT t.id, t.max_records FROM core.tenants AS t
          WHERE t.id IN (SELECT n.tenant_id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
                         WHERE n.is_deleted IS NOT TRUE
                           AND (o.is_deleted IS TRUE OR o.table_id <> n.table_id))
          ORDER BY t.id FOR NO KEY UPDATE) AS l;
  END IF;

  -- 2. The counts: +1 for each live row the statement made, -1 for each it ended.
  IF TG_OP = 'INSERT' THEN
    INSERT INTO app.record_counts AS c (table_id, live_records)
    SELECT n.table_id, count(*) FROM new_rows AS n
    WHERE n.is_deleted IS NOT TRUE GROUP BY 1
    ON CONFLICT (table_id) DO UPDATE SET live_records = c.live_records + excluded.live_records;
  ELSIF TG_OP = 'DELETE' THEN
    UPDATE app.record_counts AS c SET live_records = c.live_records - d.ended
    FROM (SELECT o.table_id, count(*) AS ended FROM old_rows AS o
          WHERE o.is_deleted IS NOT TRUE GROUP BY 1) AS d
    WHERE c.table_id = d.table_id;
  ELSE
    INSERT INTO app.record_counts AS c (table_id, live_records)
    SELECT d.table_id, sum(d.delta) FROM (
      SELECT n.table_id, 1 AS delta FROM new_rows AS n WHERE n.is_deleted IS NOT TRUE
      UNION ALL
      SELECT o.table_id, -1 FROM old_rows AS o WHERE o.is_deleted IS NOT TRUE
    ) AS d GROUP BY 1 HAVING sum(d.delta) <> 0
    ON CONFLICT (table_id) DO UPDATE SET live_records = c.live_records + excluded.live_records;
  END IF;

  -- 3. The limit: live rows of the tenant's live tables, at most core.tenants.max_records.
  FOR i IN 1 .. coalesce(array_length(v_tenants, 1), 0) LOOP
    CONTINUE WHEN v_limits[i] IS NULL;
    SELECT coalesce(sum(c.live_records), 0) INTO v_total
    FROM core.table_metadata AS m
    JOIN app.record_counts AS c ON c.table_id = m.id
    WHERE m.tenant_id = v_tenants[i] AND m.is_deleted IS NOT TRUE;
    IF v_total > v_limits[i] THEN
      IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO v_added FROM new_rows AS n
        WHERE n.tenant_id = v_tenants[i] AND n.is_deleted IS NOT TRUE;
      ELSE
        SELECT count(*) INTO v_added FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.tenant_id = v_tenants[i] AND n.is_deleted IS NOT TRUE AND o.is_deleted IS TRUE;
      END IF;
      RAISE EXCEPTION 'the tenant has % records; % more would exceed its plan''s max_records (%)',
        v_total - v_added, v_added, v_limits[i]
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tenant_max_records';
    END IF;
  END LOOP;
  RETURN NULL;
END$$;

-- migration generic_data.0011_unique_value_lookup
--
-- Install function app.unique_value_row(p_table_id int, p_field text, p_value text)
--
CREATE OR REPLACE FUNCTION "app"."unique_value_row"(p_table_id int, p_field text, p_value text)
RETURNS bigint LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_tenant int := app.current_tenant();
  v_row bigint;
BEGIN
  IF v_tenant IS NULL THEN
    RETURN NULL;  -- no tenant context: nothing, never everything
  END IF;
  SELECT u.row_id INTO v_row
  FROM app.generic_data_unique AS u
  JOIN core.table_metadata AS t ON t.id = u.table_id
  WHERE u.table_id = p_table_id AND u.field = p_field AND u.value = p_value
    AND t.tenant_id = v_tenant;
  RETURN v_row;
END$$;
--
-- Grant execute on app.unique_value_row(p_table_id int, p_field text, p_value text) to the runtime role only
--
REVOKE EXECUTE ON FUNCTION "app"."unique_value_row"(p_table_id int, p_field text, p_value text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION "app"."unique_value_row"(p_table_id int, p_field text, p_value text) TO "{{runtime_role}}";

-- migration ops.0007_cheaper_update_audit
--
-- Install function ops.audit_entity_id(doc jsonb, key_columns text[])
--
CREATE OR REPLACE FUNCTION "ops"."audit_entity_id"(doc jsonb, key_columns text[])
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  RETURN (SELECT string_agg(doc ->> k.column_name, ',' ORDER BY k.position)
          FROM unnest(key_columns) WITH ORDINALITY AS k(column_name, position));
END$$;
--
-- Replace function ops.log_audit()
--
CREATE OR REPLACE FUNCTION "ops"."log_audit"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  v_row jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
  v_before jsonb;
  v_same text[];
  v_old jsonb;
  v_new jsonb;
  v_key text;
  v_tenant int;
  v_user int;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    -- The columns whose value is unchanged, in one pass; both images less those are the
    -- changed columns, old and new.
    v_before := to_jsonb(OLD);
    v_same := ARRAY(SELECT n.key FROM jsonb_each(v_row) AS n
                    WHERE n.value IS NOT DISTINCT FROM v_before -> n.key);
    v_old := v_before - v_same;
    v_new := v_row - v_same;
    -- Nothing but the touch trigger's bookkeeping changed: no change to record.
    IF v_new - ARRAY['updated_at', 'version'] = '{}'::jsonb THEN
      RETURN NULL;
    END IF;
    -- With the row's key, so that each side names its row.
    IF TG_NARGS > 0 THEN
      SELECT jsonb_object_agg(k.column_name, v_before -> k.column_name) || v_old,
             jsonb_object_agg(k.column_name, v_row -> k.column_name) || v_new
        INTO v_old, v_new
      FROM unnest(TG_ARGV) AS k(column_name);
    ELSE
      v_old := jsonb_build_object('id', v_before -> 'id') || v_old;
      v_new := jsonb_build_object('id', v_row -> 'id') || v_new;
    END IF;
  ELSIF TG_OP = 'INSERT' THEN
    v_new := v_row;
  ELSE
    v_old := v_row;
  END IF;
  v_key := CASE WHEN TG_NARGS = 0 THEN v_row ->> 'id' ELSE ops.audit_entity_id(v_row, TG_ARGV) END;
  -- Every function in a plain expression, none inside the INSERT: a plain expression's
  -- function keeps its state for the transaction, a statement's is set up again each time.
  v_tenant := app.current_tenant();
  v_user := app.current_user_id();
  v_old := app.redact_secrets(v_old);
  v_new := app.redact_secrets(v_new);
  INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id,
                              old_values, new_values, ip_address, user_agent, request_id)
  VALUES (
    -- The context's tenant; a platform admin (no tenant context) changing a tenant's
    -- row is recorded under that row's tenant (for core.tenants, the row itself), so
    -- the tenant sees it too.
    COALESCE(
      v_tenant,
      (v_row ->> 'tenant_id')::int,
      CASE WHEN TG_TABLE_SCHEMA = 'core' AND TG_TABLE_NAME = 'tenants'
           THEN (v_row ->> 'id')::int END
    ),
    v_user,
    TG_OP,
    TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
    v_key,
    v_old,
    v_new,
    nullif(current_setting('app.ip_address', true), '')::inet,
    nullif(current_setting('app.user_agent', true), ''),
    nullif(current_setting('app.request_id', true), '')
  );
  RETURN NULL;
END$$;
--
-- Replace function ops.log_audit_inserts()
--
CREATE OR REPLACE FUNCTION "ops"."log_audit_inserts"()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = "pg_catalog", "pg_temp" AS $$
DECLARE
  -- Once per statement, whatever the number of rows.
  v_tenant int := app.current_tenant();
  v_user int := app.current_user_id();
  v_ip inet := nullif(current_setting('app.ip_address', true), '')::inet;
  v_agent text := nullif(current_setting('app.user_agent', true), '');
  v_request text := nullif(current_setting('app.request_id', true), '');
  v_entity text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
  v_tenants boolean := TG_TABLE_SCHEMA = 'core' AND TG_TABLE_NAME = 'tenants';
BEGIN
  INSERT INTO ops.audit_logs (tenant_id, user_id, action, entity_type, entity_id,
                              old_values, new_values, ip_address, user_agent, request_id)
  SELECT
    -- As ops.log_audit(): the context's tenant, else the row's.
    COALESCE(v_tenant, (r.doc ->> 'tenant_id')::int,
             CASE WHEN v_tenants THEN (r.doc ->> 'id')::int END),
    v_user,
    'INSERT',
    v_entity,
    -- A function, not a subquery: a subquery's plan is set up on every run of the
    -- statement, even when no row needs it.
    CASE WHEN TG_NARGS = 0 THEN r.doc ->> 'id' ELSE ops.audit_entity_id(r.doc, TG_ARGV) END,
    NULL,
    app.redact_secrets(r.doc),
    v_ip,
    v_agent,
    v_request
  -- OFFSET 0 keeps the subquery apart, so each row's to_jsonb() is computed once; the
  -- rows come in the order they were inserted.
  FROM (SELECT to_jsonb(n) AS doc FROM new_rows AS n OFFSET 0) AS r;
  RETURN NULL;
END$$;
