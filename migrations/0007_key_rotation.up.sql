-- 0007 key rotation: re-wrapping data keys under the KMS key's newest material (scheduled job,
-- compliance.crypto.rotation) and re-keying an organisation's values onto new data keys
-- (`compliance keys rekey`, resumable). Format and procedure: docs/crypto-format.md.

-- When the wrapped form was last re-wrapped (KMS ReEncrypt); NULL: as created. The daily job
-- re-wraps live keys whose wrapped form is older than its cutoff or under another KMS key.
ALTER TABLE data_keys ADD COLUMN rewrapped_at timestamptz;
-- Re-wrapping replaces wrapped_key (granted in 0005) and records the wrapping KMS key and time.
GRANT UPDATE (kms_key_id, rewrapped_at) ON data_keys TO compliance_rw;
-- The re-wrap walks an org's live keys by key_id (keyset pages).
CREATE INDEX data_keys_live_idx ON data_keys (org_id, key_id) WHERE destroyed_at IS NULL;

-- One row per re-key run of an organisation: the run's position, advanced in the same transaction
-- as the batch of values it re-encrypted, so a crashed run resumes exactly where it stopped.
-- phase: walk (tables in name order, by primary key), catch_up (rows received since
-- started_at - cache_max_age_s, once every process's key cache dropped the retired keys), done.
CREATE TABLE key_rekey_runs (
    run_id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid        NOT NULL REFERENCES organisations (id),
    started_at       timestamptz NOT NULL DEFAULT now(),
    cache_max_age_s  integer     NOT NULL CHECK (cache_max_age_s BETWEEN 0 AND 86400),
    batch_size       integer     NOT NULL CHECK (batch_size BETWEEN 1 AND 100000),
    keys_retired     integer     NOT NULL CHECK (keys_retired >= 0),
    phase            text        NOT NULL DEFAULT 'walk' CHECK (phase IN ('walk', 'catch_up', 'done')),
    -- The table being walked and the primary key (as text, org_id excluded) of the last row done;
    -- NULL cursor_key: the table's first row next.
    cursor_table     text        CHECK (length(cursor_table) BETWEEN 1 AND 63),
    cursor_key       text[]      CHECK (cardinality(cursor_key) BETWEEN 1 AND 8),
    rows_done        bigint      NOT NULL DEFAULT 0 CHECK (rows_done >= 0),
    values_rekeyed   bigint      NOT NULL DEFAULT 0 CHECK (values_rekeyed >= 0),
    values_skipped   bigint      NOT NULL DEFAULT 0 CHECK (values_skipped >= 0),
    -- Legacy plaintext of a shredded subject: cleared (NULL), the shred's intent.
    values_erased    bigint      NOT NULL DEFAULT 0 CHECK (values_erased >= 0),
    finished_at      timestamptz,
    CONSTRAINT key_rekey_runs_done_finished CHECK ((phase = 'done') = (finished_at IS NOT NULL))
);
-- One unfinished run per organisation: a second start is refused (resume the first instead).
CREATE UNIQUE INDEX key_rekey_runs_one_open_idx ON key_rekey_runs (org_id) WHERE finished_at IS NULL;

ALTER TABLE key_rekey_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON key_rekey_runs
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

GRANT SELECT, INSERT ON key_rekey_runs TO compliance_rw;
GRANT UPDATE (phase, cursor_table, cursor_key, rows_done, values_rekeyed, values_skipped, values_erased,
    finished_at)
    ON key_rekey_runs TO compliance_rw;

-- Re-keying rewrites the encrypted columns in place (new ciphertext, same value); subjects.email
-- is updatable since 0006.
GRANT UPDATE (prompt_text, completion_text, client_ip) ON usage_records TO compliance_rw;
