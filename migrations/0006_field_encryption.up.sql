-- 0006 field encryption: encrypted personal columns, the catalog's "encrypted" flag, org
-- settings the application may change, and the list of organisations for scheduled jobs.
--
-- Encrypted columns hold the text form of compliance.crypto (enc:v1:<base64url>), sealed under
-- the data key of the row's subject (or the org's key when the row has none) and bound to
-- (org, table, column, subject): docs/crypto-format.md. Which columns are encrypted is declared
-- in migrations/catalog.toml (encrypted = true) and enforced by the writers; the CHECKs below
-- keep plaintext out even if a writer forgets.

-- The subject's e-mail address as the platform last reported it (usage records' subject_email).
ALTER TABLE subjects ADD COLUMN email text
    CHECK (email IS NULL OR (email LIKE 'enc:%' AND length(email) <= 4096));

-- The end user's IP address of the LLM call, when the platform reports it.
ALTER TABLE usage_records ADD COLUMN client_ip text
    CHECK (client_ip IS NULL OR (client_ip LIKE 'enc:%' AND length(client_ip) <= 4096));

-- Prompts and completions are always stored encrypted from now on. NOT VALID: rows written before
-- this migration keep their plaintext until `compliance keys rekey` encrypts them (then
-- VALIDATE CONSTRAINT); every new or updated row is checked.
ALTER TABLE usage_records ADD CONSTRAINT usage_records_prompt_text_encrypted
    CHECK (prompt_text IS NULL OR prompt_text LIKE 'enc:%') NOT VALID;
ALTER TABLE usage_records ADD CONSTRAINT usage_records_completion_text_encrypted
    CHECK (completion_text IS NULL OR completion_text LIKE 'enc:%') NOT VALID;

-- The catalog says which columns are encrypted (compliance.catalog).
ALTER TABLE data_catalog ADD COLUMN encrypted boolean NOT NULL DEFAULT false;

-- The subject's e-mail changes when the platform reports a new one.
GRANT UPDATE (email) ON subjects TO compliance_rw;
-- Organisation settings (PII handling of ingested text, PUT /v1/settings/pii); audited.
GRANT UPDATE (settings) ON organisations TO compliance_rw;

-- Scheduled jobs (PII sweep, data-key re-wrap) run per organisation, inside its RLS scope, and
-- must first learn which organisations exist: RLS hides every row without a scope. This narrow
-- function, with the owner's rights, returns the ids only.
CREATE FUNCTION compliance_org_ids()
RETURNS TABLE (org_id uuid)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT o.id FROM public.organisations AS o ORDER BY o.id
$$;

REVOKE ALL ON FUNCTION compliance_org_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION compliance_org_ids() TO compliance_rw;
