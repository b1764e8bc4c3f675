-- Rollback of 0012: look-up by e-mail address is no longer possible (DSRs name the subject id).
REVOKE UPDATE (email_key) ON subjects FROM compliance_rw;
DROP INDEX IF EXISTS subjects_email_key_idx;
ALTER TABLE subjects DROP CONSTRAINT IF EXISTS subjects_email_key_length;
ALTER TABLE subjects DROP COLUMN IF EXISTS email_key;
