-- Copied verbatim from /work/shared/seed/hzm-migrations-guide.md, section "### 004_add_generic_data.sql" (the ```sql block); do not edit, fixes live in tests/parity/seed_sql.py.
-- ===============================
-- HZM Platform - Generic Data Table
-- (CRITICAL: Bu tablo fiziksel tablo çoğalmasını önler!)
-- ===============================

CREATE TABLE app.generic_data (
  id BIGSERIAL PRIMARY KEY,
  tenant_id INT NOT NULL REFERENCES core.tenants(id) ON DELETE CASCADE,
  project_id INT NOT NULL REFERENCES core.projects(id) ON DELETE CASCADE,
  table_id INT NOT NULL REFERENCES core.table_metadata(id) ON DELETE CASCADE,
  data JSONB NOT NULL DEFAULT '{}'::jsonb,
  search_text TEXT GENERATED ALWAYS AS (jsonb_to_text(data)) STORED,
  is_deleted BOOLEAN DEFAULT FALSE,
  deleted_at TIMESTAMPTZ,
  deleted_by INT,
  version INT DEFAULT 1,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW(),
  created_by INT,
  updated_by INT,
  CONSTRAINT unique_generic_data_per_table UNIQUE (tenant_id, project_id, table_id, id)
);

CREATE INDEX idx_generic_data_tenant ON app.generic_data(tenant_id);
CREATE INDEX idx_generic_data_project ON app.generic_data(project_id);
CREATE INDEX idx_generic_data_table ON app.generic_data(table_id);
CREATE INDEX idx_generic_data_composite ON app.generic_data(tenant_id, project_id, table_id) WHERE is_deleted = FALSE;
CREATE INDEX idx_generic_data_search ON app.generic_data USING GIN(to_tsvector('english', search_text));
CREATE INDEX idx_generic_data_jsonb ON app.generic_data USING GIN(data);

CREATE TRIGGER trg_generic_data_touch BEFORE UPDATE ON app.generic_data FOR EACH ROW EXECUTE FUNCTION app.touch_row();
CREATE TRIGGER trg_generic_data_softdel BEFORE DELETE ON app.generic_data FOR EACH ROW EXECUTE FUNCTION app.soft_delete();
CREATE TRIGGER trg_generic_data_audit AFTER INSERT OR UPDATE OR DELETE ON app.generic_data FOR EACH ROW EXECUTE FUNCTION ops.log_audit();

ALTER TABLE app.generic_data ENABLE ROW LEVEL SECURITY;
CREATE POLICY rls_generic_data_tenant ON app.generic_data
  USING (tenant_id = app.current_tenant())
  WITH CHECK (tenant_id = app.current_tenant());
