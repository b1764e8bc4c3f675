-- 0009 consents: what a data subject agreed to (or the other legal basis the organisation relies on)
-- for each purpose, as history. compliance.consent is the service; the ingest processor reads it.
--
-- A record is never rewritten: a new grant is a new row, a revocation sets revoked_at once (trigger),
-- so the table is the evidence GDPR Art. 7(1) asks for (the controller demonstrates consent). For a
-- (subject, purpose) the latest grant decides (granted_at, then recorded_at): it is active until it is
-- revoked or expires. Deleted only by the subject's erasure (catalog: erasure delete), before the
-- subject's own row (the foreign key keeps that order honest).

CREATE TABLE consents (
    consent_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid        NOT NULL,
    subject_id      uuid        NOT NULL,
    purpose         text        NOT NULL CHECK (
                                    purpose IN ('prompt_logging', 'analytics', 'model_improvement')
                                ),
    legal_basis     text        NOT NULL CHECK (
                                    legal_basis IN ('consent', 'contract', 'legal_obligation',
                                                    'vital_interests', 'public_task', 'legitimate_interests')
                                ),
    -- Which version of the notice the subject was shown (e.g. "privacy-2026-09").
    notice_version  text        NOT NULL CHECK (notice_version ~ '^[A-Za-z0-9._:/+-]{1,64}$'),
    -- Where it was collected (e.g. "web:signup", "api:settings").
    source          text        NOT NULL CHECK (source ~ '^[A-Za-z0-9._:/+-]{1,128}$'),
    granted_at      timestamptz NOT NULL,
    expires_at      timestamptz CHECK (expires_at > granted_at),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    CONSTRAINT consents_subject_fkey FOREIGN KEY (org_id, subject_id) REFERENCES subjects (org_id, id)
);
-- The ingest processor's question per slice: the latest grant of each subject for one purpose.
CREATE INDEX consents_subject_purpose_idx
    ON consents (org_id, subject_id, purpose, granted_at DESC, recorded_at DESC);

ALTER TABLE consents ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON consents
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- History is never rewritten: the only change a row takes is its revocation, once.
CREATE FUNCTION consents_revoke_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
       AND (NEW.consent_id, NEW.org_id, NEW.subject_id, NEW.purpose, NEW.legal_basis,
            NEW.notice_version, NEW.source, NEW.granted_at, NEW.expires_at, NEW.recorded_at)
           IS NOT DISTINCT FROM
           (OLD.consent_id, OLD.org_id, OLD.subject_id, OLD.purpose, OLD.legal_basis,
            OLD.notice_version, OLD.source, OLD.granted_at, OLD.expires_at, OLD.recorded_at)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'consents: a record is history; only an unrevoked record may be revoked, once'
        USING ERRCODE = 'raise_exception';
END
$$;

CREATE TRIGGER consents_revoke_only
    BEFORE UPDATE ON consents
    FOR EACH ROW EXECUTE FUNCTION consents_revoke_only();

REVOKE ALL ON FUNCTION consents_revoke_only() FROM PUBLIC;

-- Recorded, revoked, read; deleted only by a subject's erasure (compliance.dsr.erase).
GRANT SELECT, INSERT, DELETE ON consents TO compliance_rw;
GRANT UPDATE (revoked_at) ON consents TO compliance_rw;
