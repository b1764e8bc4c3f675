-- 0005 data keys: the wrapped data keys of field-level encryption, one scope per (org, subject)
-- (subject_id NULL: the org-level key of org secrets). compliance.db.data_keys is the store.
--
-- Crypto-shredding overwrites wrapped_key with NULL and sets destroyed_at: the row stays as the
-- record of which key was destroyed and when (proof of erasure), so the application may update
-- but never delete. A destroyed row cannot change again (trigger), so a key is never revived.
-- A scope shredded before it ever had a key gets one destroyed row with no key material and no
-- KMS key (a tombstone): shredding closes the scope to new keys either way.
--
-- "Current" (the key new values are sealed with) is an explicit flag, unique per scope among
-- live keys: old keys of a scope (after a rekey) stay readable with current = false.
-- No foreign key to subjects: the row must outlive the subject's row, which an erasure deletes.

CREATE TABLE data_keys (
    key_id        uuid        PRIMARY KEY,
    org_id        uuid        NOT NULL REFERENCES organisations (id),
    subject_id    uuid,
    -- KMS ciphertext of the 32-byte data key (a few hundred bytes); NULL once destroyed.
    wrapped_key   bytea       CHECK (octet_length(wrapped_key) BETWEEN 1 AND 6144),
    -- The KMS key (id or ARN) that wrapped it; NULL only for a tombstone.
    kms_key_id    text        CHECK (length(kms_key_id) BETWEEN 1 AND 2048),
    current       boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    destroyed_at  timestamptz,
    CONSTRAINT data_keys_destroyed_has_no_key
        CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL)),
    CONSTRAINT data_keys_destroyed_not_current CHECK (destroyed_at IS NULL OR NOT current),
    CONSTRAINT data_keys_live_has_kms_key CHECK (destroyed_at IS NOT NULL OR kms_key_id IS NOT NULL)
);

-- One current key per scope; NULLS NOT DISTINCT: one org-level key per org too. The store's
-- INSERT ... ON CONFLICT (org_id, subject_id) WHERE current infers this index.
CREATE UNIQUE INDEX data_keys_one_current_idx ON data_keys (org_id, subject_id) NULLS NOT DISTINCT
    WHERE current;
-- Every key of a scope (reads check the scope for destroyed keys; shred destroys them all).
CREATE INDEX data_keys_scope_idx ON data_keys (org_id, subject_id);

ALTER TABLE data_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON data_keys
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Destruction is final, for the owner by mistake too: a destroyed row never changes, and no
-- row is deleted (TRUNCATE neither). The grants below keep the application out already.
CREATE FUNCTION data_keys_protect_destroyed()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.destroyed_at IS NULL THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'data_keys: % refused (destroyed keys are final, rows are never removed)', TG_OP
        USING ERRCODE = 'raise_exception';
END
$$;

CREATE TRIGGER data_keys_protect_destroyed
    BEFORE UPDATE OR DELETE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION data_keys_protect_destroyed();

CREATE TRIGGER data_keys_no_truncate
    BEFORE TRUNCATE ON data_keys
    FOR EACH STATEMENT EXECUTE FUNCTION data_keys_protect_destroyed();

REVOKE ALL ON FUNCTION data_keys_protect_destroyed() FROM PUBLIC;

-- Least privilege: keys are read, added, re-wrapped (wrapped_key), retired (current) and
-- destroyed (wrapped_key, destroyed_at); never deleted, never moved to another scope or id.
GRANT SELECT, INSERT ON data_keys TO compliance_rw;
GRANT UPDATE (wrapped_key, destroyed_at, current) ON data_keys TO compliance_rw;
