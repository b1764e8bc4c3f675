-- 0002 audit: per-organisation hash-chained audit events (append-only) and chain heads.
--
-- Hashes are stored as the lowercase hex text the canonical module produces and hashes
-- (prev_hash is part of the hashed form), so a row is verified exactly as read. The Merkle
-- leaf hash is not stored: it is derived from event_hash when read (one more copy would be
-- one more thing that can disagree). ip_address is text, not inet: inet cannot hold an IPv6
-- zone id, and the hashed form is the text written here (compliance.audit.canonical.format_ip).

CREATE TABLE audit_events (
    org_id       uuid        NOT NULL,
    seq          bigint      NOT NULL CHECK (seq BETWEEN 1 AND 9007199254740991),
    event_id     uuid        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    event_type   text        NOT NULL CHECK (length(event_type) BETWEEN 3 AND 64),
    actor        text        NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    resource     text        NOT NULL CHECK (length(resource) BETWEEN 1 AND 256),
    action       text        NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    result       text        NOT NULL CHECK (result IN ('success', 'failure', 'denied', 'error')),
    ip_address   text        CHECK (length(ip_address) BETWEEN 2 AND 64),
    user_agent   text        CHECK (length(user_agent) <= 512),
    request_id   text        CHECK (length(request_id) BETWEEN 1 AND 128),
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    prev_hash    text        NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    event_hash   text        NOT NULL CHECK (event_hash ~ '^[0-9a-f]{64}$'),
    appended_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_events_pkey PRIMARY KEY (org_id, seq),
    -- Idempotency: a redelivered event (same producer-chosen id) is never linked twice.
    CONSTRAINT audit_events_event_id_key UNIQUE (org_id, event_id)
);
-- No foreign key to organisations (as usage_records): audit_heads carries it, and every
-- append goes through the organisation's head row.

-- One row per organisation: the last linked position. Appends lock it (SELECT ... FOR
-- UPDATE), which serialises appends per organisation: the chain cannot fork.
CREATE TABLE audit_heads (
    org_id      uuid   PRIMARY KEY REFERENCES organisations (id),
    seq         bigint NOT NULL CHECK (seq BETWEEN 0 AND 9007199254740991),
    event_hash  text   NOT NULL CHECK (event_hash ~ '^[0-9a-f]{64}$'),
    -- seq 0 is the empty chain, whose "last hash" is the genesis hash.
    CHECK (seq > 0 OR event_hash = repeat('0', 64))
);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_heads
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Append-only for everyone, the owner included: grants keep the application out, the
-- triggers stop the owner by mistake. A superuser (or the owner) can still disable them;
-- that is what the hash chain and published checkpoints are for.
CREATE FUNCTION audit_events_reject_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'raise_exception';
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_reject_change();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_reject_change();

-- A head only moves forward.
CREATE FUNCTION audit_heads_forward_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.org_id <> OLD.org_id OR NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit_heads only moves forward';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_heads_forward_only
    BEFORE UPDATE ON audit_heads
    FOR EACH ROW EXECUTE FUNCTION audit_heads_forward_only();

REVOKE ALL ON FUNCTION audit_events_reject_change() FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_heads_forward_only() FROM PUBLIC;

-- Least privilege: events are only read and appended; a head is created once, then moved.
GRANT SELECT, INSERT ON audit_events TO compliance_rw;
GRANT SELECT, INSERT ON audit_heads TO compliance_rw;
GRANT UPDATE (seq, event_hash) ON audit_heads TO compliance_rw;
