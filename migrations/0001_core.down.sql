-- Rollback of 0001 core. Drops every object 0001 created in this database.
-- The group role compliance_rw is cluster-wide (other databases of the cluster may use
-- it) and is left in place; without these objects it holds no privilege here but USAGE
-- on the schema, which is revoked.

DROP FUNCTION IF EXISTS auth_find_api_key(text);
DROP TABLE IF EXISTS usage_records;
DROP TABLE IF EXISTS subjects;
DROP TABLE IF EXISTS api_keys;
DROP TABLE IF EXISTS organisations;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'compliance_rw') THEN
        REVOKE USAGE ON SCHEMA public FROM compliance_rw;
    END IF;
END
$$;
