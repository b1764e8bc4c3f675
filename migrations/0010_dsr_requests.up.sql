-- 0010 DSR requests: one row per data subject request (GDPR Art. 12 to 22, CCPA, HIPAA access),
-- the record the API answers from and the Step Functions execution mirrors into. The row's id is
-- also the execution's name, so the console finds a request by its id.
--
-- The row is the evidence that a request was answered (GDPR Art. 5(2) and 12): an erasure keeps it
-- (catalog: retain_legal_basis). It names the subject only by pseudonyms: subject_id (subjects.id,
-- cleared by the foreign key when the subject's row is erased) and subject_key (a keyed HMAC of
-- the identifier the request named, compliance.dsr.subject_keys: finds duplicates without storing
-- the identifier). The rectification's new values are sealed under the subject's data key
-- (corrections, crypto-shredded by the erasure). No DELETE for the application.

CREATE TABLE dsr_requests (
    id                uuid        PRIMARY KEY,
    org_id            uuid        NOT NULL REFERENCES organisations (id),
    type              text        NOT NULL CHECK (
                                      type IN ('access', 'portability', 'rectification', 'erasure', 'restriction')
                                  ),
    regulation        text        NOT NULL CHECK (
                                      regulation IN ('gdpr', 'uk_gdpr', 'ccpa', 'hipaa', 'pipeda', 'lgpd')
                                  ),
    status            text        NOT NULL DEFAULT 'received' CHECK (
                                      status IN ('received', 'awaiting_verification', 'verified', 'running',
                                                 'completed', 'failed', 'cancelled', 'expired')
                                  ),
    subject_id        uuid,
    subject_key       bytea       NOT NULL CHECK (octet_length(subject_key) = 32),
    export_formats    text[]      CHECK (
                                      cardinality(export_formats) BETWEEN 1 AND 3
                                      AND export_formats <@ ARRAY['json', 'csv', 'xml']::text[]
                                  ),
    -- Field ciphertext (compliance.crypto) of the DsrCorrections JSON, never plaintext.
    corrections       text,
    received_at       timestamptz NOT NULL,
    deadline          timestamptz NOT NULL CHECK (deadline > received_at),
    extended_at       timestamptz,
    extension_days    integer     CHECK (extension_days BETWEEN 0 AND 366),
    extension_reason  text        CHECK (length(extension_reason) BETWEEN 10 AND 500),
    -- Identity verification (compliance.dsr.verification): only an HMAC of the code is stored.
    code_hash         bytea       CHECK (octet_length(code_hash) = 32),
    code_issued_at    timestamptz,
    code_expires_at   timestamptz CHECK (code_expires_at > code_issued_at),
    failed_attempts   integer     NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    max_attempts      integer     NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 10),
    verified_at       timestamptz,
    -- The waitForTaskToken token of the verification step: whoever holds it can resume the execution.
    task_token        text        CHECK (length(task_token) BETWEEN 1 AND 1024),
    execution_arn     text        CHECK (length(execution_arn) BETWEEN 1 AND 2048),
    steps             jsonb       NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(steps) = 'array'),
    export_objects    jsonb       CHECK (jsonb_typeof(export_objects) = 'array'),
    export_expires_at timestamptz,
    receipt           jsonb       CHECK (jsonb_typeof(receipt) = 'object'),
    outcome           text        CHECK (outcome ~ '^[a-z][a-z0-9_]{0,63}$'),
    failure           jsonb       CHECK (jsonb_typeof(failure) = 'object'),
    completed_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    -- The subject's erasure deletes its subjects row: the request stays, its link is cleared
    -- (column list: PostgreSQL 15+; org_id is NOT NULL and must stay).
    CONSTRAINT dsr_requests_subject_fkey FOREIGN KEY (org_id, subject_id)
        REFERENCES subjects (org_id, id) ON DELETE SET NULL (subject_id)
);

-- One open request per (subject, type): a second one is a 409 naming the open one.
CREATE UNIQUE INDEX dsr_requests_open_idx ON dsr_requests (org_id, subject_key, type)
    WHERE status IN ('received', 'awaiting_verification', 'verified', 'running');
-- GET /v1/dsr: newest first, keyset pagination on (received_at, id).
CREATE INDEX dsr_requests_list_idx ON dsr_requests (org_id, received_at DESC, id DESC);
-- The SLA monitor: open requests by deadline.
CREATE INDEX dsr_requests_due_idx ON dsr_requests (org_id, deadline)
    WHERE status IN ('received', 'awaiting_verification', 'verified', 'running');
-- The foreign key's ON DELETE action looks rows up by subject (an erasure).
CREATE INDEX dsr_requests_subject_idx ON dsr_requests (org_id, subject_id) WHERE subject_id IS NOT NULL;

ALTER TABLE dsr_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dsr_requests
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- The verify route has no API key, hence no org: the request id (an unguessable uuid, and the code
-- is the credential) finds the org to open the tenant transaction with. Only the org id leaves.
CREATE FUNCTION dsr_request_org(request_id uuid)
RETURNS uuid
LANGUAGE sql
STABLE
STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.org_id FROM public.dsr_requests AS r WHERE r.id = request_id
$$;

REVOKE ALL ON FUNCTION dsr_request_org(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dsr_request_org(uuid) TO compliance_rw;

-- Created and updated by the API and the workflow; what a request was (id, org, type, regulation,
-- subject key, receipt time) never changes, and rows are never deleted (evidence).
GRANT SELECT, INSERT ON dsr_requests TO compliance_rw;
GRANT UPDATE (
    status, subject_id, corrections, deadline, extended_at, extension_days, extension_reason,
    code_hash, code_issued_at, code_expires_at, failed_attempts, max_attempts, verified_at,
    task_token, execution_arn, steps, export_objects, export_expires_at, receipt, outcome, failure,
    completed_at, updated_at
) ON dsr_requests TO compliance_rw;
