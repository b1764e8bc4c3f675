-- 0001 core: organisations, API keys, subjects, usage records; tenant isolation by RLS.
--
-- Runs as the database owner (the RDS master user; a superuser locally). Every tenant
-- table has ROW LEVEL SECURITY enabled and one policy keyed on the transaction-local
-- setting app.org_id: a session without it sees and writes nothing. The application
-- role is not the owner and has no BYPASSRLS, so the policies always apply to it.
-- RLS is ENABLEd but not FORCEd: the owner stays exempt, which is what the migrations
-- and the one SECURITY DEFINER function below (owned by the owner) rely on.

-- Group role of the application user(s). Roles are cluster-wide: create it only once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'compliance_rw') THEN
        CREATE ROLE compliance_rw NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO compliance_rw;

CREATE TABLE organisations (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    settings    jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(settings) = 'object')
);

CREATE TABLE api_keys (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid        NOT NULL REFERENCES organisations (id),
    name          text        NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    -- Public, unique part of the key: how a presented key is found before its org is known.
    prefix        text        NOT NULL UNIQUE CHECK (prefix ~ '^[a-z0-9]{8,32}$'),
    -- SHA-256 of the secret part; the secret itself is never stored.
    secret_hash   bytea       NOT NULL CHECK (octet_length(secret_hash) = 32),
    roles         text[]      NOT NULL CHECK (
                                  cardinality(roles) BETWEEN 1 AND 6
                                  AND array_ndims(roles) = 1
                                  AND array_position(roles, NULL) IS NULL
                                  AND roles <@ ARRAY['system_admin', 'cost_admin', 'cost_viewer',
                                                     'dpo', 'auditor', 'ingest']::text[]
                              ),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Times set from the caller's clock (expiry, revocation) are not checked against
    -- created_at (the database clock): clock skew must not turn a revocation into an error.
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_org_created_idx ON api_keys (org_id, created_at);

-- The pseudonym of a person behind LLM calls: usage rows point at subjects.id, never at
-- the platform's own identifier, which lives only here (one row to erase per person).
CREATE TABLE subjects (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id       uuid        NOT NULL REFERENCES organisations (id),
    external_id  text        NOT NULL CHECK (length(external_id) BETWEEN 1 AND 128),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, external_id),
    -- Target of the tenant-safe foreign key from usage_records.
    UNIQUE (org_id, id)
);

-- Append-only fact table, written in bulk. Deliberately no foreign key to organisations:
-- each insert would take a FOR KEY SHARE lock on the organisation's row (MultiXact
-- contention between concurrent processors of one organisation) and cost ~15% of the
-- insert; org_id comes from an authenticated API key and RLS pins it to app.org_id.
-- No surrogate id: the natural key (org_id, request_id), which ingestion is idempotent on,
-- is the primary key. A random uuid key was one more B-tree to update per row, in random
-- order, plus a gen_random_uuid() call per row (measured ~10% of the bulk insert).
CREATE TABLE usage_records (
    org_id             uuid          NOT NULL,
    request_id         text          NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128),
    subject_id         uuid,
    provider           text          NOT NULL CHECK (length(provider) BETWEEN 1 AND 128),
    model              text          NOT NULL CHECK (length(model) BETWEEN 1 AND 128),
    prompt_tokens      integer       NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  integer       NOT NULL CHECK (completion_tokens >= 0),
    cost               numeric(18,8) NOT NULL CHECK (cost >= 0),
    currency           char(3)       NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    latency_ms         integer       CHECK (latency_ms >= 0),
    occurred_at        timestamptz   NOT NULL,
    received_at        timestamptz   NOT NULL,
    prompt_text        text,
    completion_text    text,
    batch_id           uuid          NOT NULL,
    -- Ingestion is idempotent per organisation: a replayed request_id is skipped.
    CONSTRAINT usage_records_pkey PRIMARY KEY (org_id, request_id),
    -- Composite key: a record can only point at a subject of its own organisation. Its
    -- per-row check is about a third of the bulk insert's server time (measured); kept
    -- for integrity, the first thing to revisit if ingest throughput ever falls short.
    CONSTRAINT usage_records_subject_fkey FOREIGN KEY (org_id, subject_id) REFERENCES subjects (org_id, id)
);
CREATE INDEX usage_records_org_occurred_idx ON usage_records (org_id, occurred_at);
CREATE INDEX usage_records_org_subject_idx ON usage_records (org_id, subject_id) WHERE subject_id IS NOT NULL;

-- Tenant isolation. The expression matches the database contract verbatim; NULLIF turns the
-- empty string a reset custom setting takes into NULL, and NULL = anything is never true.
ALTER TABLE organisations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organisations
    USING (id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE subjects ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON subjects
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE usage_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_records
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Least privilege: organisations are created by the owner (seeding/admin tooling);
-- usage records and subjects are append-only for the application; of an API key only
-- the revocation and last-use times ever change.
GRANT SELECT ON organisations TO compliance_rw;
GRANT SELECT, INSERT ON api_keys TO compliance_rw;
GRANT UPDATE (revoked_at, last_used_at) ON api_keys TO compliance_rw;
GRANT SELECT, INSERT ON subjects TO compliance_rw;
GRANT SELECT, INSERT ON usage_records TO compliance_rw;

-- API-key authentication happens before the organisation is known, so RLS would hide
-- every key. This narrow function, running with the owner's rights, returns the one key
-- with the given prefix and only what verification needs (never a list, never names).
CREATE FUNCTION auth_find_api_key(p_prefix text)
RETURNS TABLE (
    id          uuid,
    org_id      uuid,
    secret_hash bytea,
    roles       text[],
    expires_at  timestamptz,
    revoked_at  timestamptz
)
LANGUAGE sql
STABLE
STRICT
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.id, k.org_id, k.secret_hash, k.roles, k.expires_at, k.revoked_at
    FROM public.api_keys AS k
    WHERE k.prefix = p_prefix
$$;

REVOKE ALL ON FUNCTION auth_find_api_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_find_api_key(text) TO compliance_rw;
