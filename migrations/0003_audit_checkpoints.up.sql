-- 0003 audit checkpoints: signed tree heads of each organisation's audit log (append-only),
-- the reserved organisation of system events, and the function that finds what is due.
--
-- A checkpoint row is the signed head (the fields of compliance.audit.checkpoint.TreeHead, hashes
-- as lowercase hex text), its head_hash and base64 signature, and the frontier (the perfect
-- subtree roots of the binary decomposition of tree_size, largest first) from which the next
-- checkpoint extends the Merkle root without re-reading older events. The database cannot check
-- a signature or a JCS hash: the application verifies them when it reads; the constraints here
-- keep formats and the numbering chain right.

-- Events with no organisation (authentication failure with an unknown key) are chained here.
INSERT INTO organisations (id, name)
VALUES ('00000000-0000-0000-0000-000000000000', 'Platform (system events)')
ON CONFLICT DO NOTHING;

CREATE TABLE audit_checkpoints (
    org_id              uuid        NOT NULL REFERENCES organisations (id),
    number              bigint      NOT NULL CHECK (number BETWEEN 1 AND 9007199254740991),
    tree_size           bigint      NOT NULL CHECK (tree_size BETWEEN 0 AND 9007199254740991),
    root_hash           text        NOT NULL CHECK (root_hash ~ '^[0-9a-f]{64}$'),
    last_event_hash     text        NOT NULL CHECK (last_event_hash ~ '^[0-9a-f]{64}$'),
    issued_at           timestamptz NOT NULL,
    previous_head_hash  text        NOT NULL CHECK (previous_head_hash ~ '^[0-9a-f]{64}$'),
    key_id              text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 2048),
    algorithm           text        NOT NULL CHECK (algorithm = 'ECDSA_SHA_256'),
    head_hash           text        NOT NULL CHECK (head_hash ~ '^[0-9a-f]{64}$'),
    -- base64 of the DER ECDSA signature (at most 72 bytes for P-256).
    signature           text        NOT NULL CHECK (
                                        signature ~ '^[A-Za-z0-9+/]+={0,2}$'
                                        AND length(signature) BETWEEN 4 AND 256
                                    ),
    -- popcount(tree_size) hashes of 32 bytes (checked by the application on read: a CHECK
    -- cannot look inside an array cheaply); a size below 2**53 has at most 53.
    frontier            bytea[]     NOT NULL CHECK (
                                        cardinality(frontier) <= 53
                                        AND array_position(frontier, NULL) IS NULL
                                        AND (cardinality(frontier) = 0 OR array_ndims(frontier) = 1)
                                    ),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (org_id, number),
    CONSTRAINT audit_checkpoints_first_has_no_previous
        CHECK (number > 1 OR previous_head_hash = repeat('0', 64)),
    CONSTRAINT audit_checkpoints_empty_tree
        CHECK (tree_size > 0 OR (last_event_hash = repeat('0', 64) AND cardinality(frontier) = 0))
);
-- No UNIQUE (org_id, tree_size): checkpoints are only written when the log grew (see
-- audit_checkpoint_due), and re-signing one size (say with a rotated key) stays possible.
-- The primary key is what serialises two concurrent runs: the second insert of a number fails.

ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_checkpoints
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Checkpoint n + 1 follows n: next number, the tree never shrinks, it links n's head hash.
-- Runs as the inserting role, under its RLS scope, which the row's org_id must match anyway.
CREATE FUNCTION audit_checkpoints_follow_previous()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    prev record;
BEGIN
    SELECT c.number, c.tree_size, c.head_hash INTO prev
    FROM public.audit_checkpoints AS c
    WHERE c.org_id = NEW.org_id
    ORDER BY c.number DESC
    LIMIT 1;
    IF NOT FOUND THEN
        IF NEW.number <> 1 THEN
            RAISE EXCEPTION 'the first audit checkpoint of an organisation is number 1';
        END IF;
    ELSIF NEW.number <> prev.number + 1 THEN
        RAISE EXCEPTION 'audit checkpoint number must follow the latest one';
    ELSIF NEW.tree_size < prev.tree_size THEN
        RAISE EXCEPTION 'audit checkpoint tree_size must not shrink';
    ELSIF NEW.previous_head_hash <> prev.head_hash THEN
        RAISE EXCEPTION 'audit checkpoint previous_head_hash must be the latest head_hash';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_checkpoints_follow_previous
    BEFORE INSERT ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_follow_previous();

-- Append-only, as audit_events: grants keep the application out, triggers stop the owner.
CREATE FUNCTION audit_checkpoints_reject_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only: % refused', TG_OP
        USING ERRCODE = 'raise_exception';
END
$$;

CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_reject_change();

CREATE TRIGGER audit_checkpoints_no_truncate
    BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_reject_change();

REVOKE ALL ON FUNCTION audit_checkpoints_follow_previous() FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_checkpoints_reject_change() FROM PUBLIC;

GRANT SELECT, INSERT ON audit_checkpoints TO compliance_rw;

-- The scheduled checkpointer runs before it knows which organisations to look at, and RLS hides
-- every head without a scope. This narrow function, with the owner's rights, returns only the
-- ids of organisations whose chain grew past their latest checkpoint (never hashes or events).
CREATE FUNCTION audit_checkpoint_due()
RETURNS TABLE (org_id uuid)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.org_id
    FROM public.audit_heads AS h
    WHERE h.seq > COALESCE(
        (SELECT c.tree_size FROM public.audit_checkpoints AS c
         WHERE c.org_id = h.org_id ORDER BY c.number DESC LIMIT 1),
        0
    )
    ORDER BY h.org_id
$$;

REVOKE ALL ON FUNCTION audit_checkpoint_due() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_checkpoint_due() TO compliance_rw;

-- Audit queries (GET /v1/audit/events) filter by one of these and page by seq: each index keeps
-- the keyset condition (seq > cursor) inside the index scan. Time ranges narrow by occurred_at.
CREATE INDEX audit_events_actor_seq_idx      ON audit_events (org_id, actor, seq);
CREATE INDEX audit_events_event_type_seq_idx ON audit_events (org_id, event_type, seq);
CREATE INDEX audit_events_resource_seq_idx   ON audit_events (org_id, resource, seq);
CREATE INDEX audit_events_occurred_at_idx    ON audit_events (org_id, occurred_at);
