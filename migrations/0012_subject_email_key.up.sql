-- 0012: find a subject by e-mail address without storing it readable. subjects.email is sealed under
-- each subject's own key (0006), so it cannot be searched; email_key is HMAC-SHA256 under the DSR secret
-- of (org, normalised address) (compliance.dsr.subject_keys), written by ingest with the address and by
-- rectification. Not unique: two subjects of an org may report the same address (a shared mailbox).
ALTER TABLE subjects ADD COLUMN email_key bytea;
ALTER TABLE subjects ADD CONSTRAINT subjects_email_key_length CHECK (email_key IS NULL OR octet_length(email_key) = 32);
CREATE INDEX subjects_email_key_idx ON subjects (org_id, email_key) WHERE email_key IS NOT NULL;

GRANT UPDATE (email_key) ON subjects TO compliance_rw;
