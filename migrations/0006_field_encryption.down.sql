-- Rollback of 0006. Dropping the encrypted columns drops their ciphertexts (unreadable without
-- the data keys anyway); the data keys themselves (0005) are untouched.
DROP FUNCTION IF EXISTS compliance_org_ids();
REVOKE UPDATE (settings) ON organisations FROM compliance_rw;
REVOKE UPDATE (email) ON subjects FROM compliance_rw;
ALTER TABLE data_catalog DROP COLUMN IF EXISTS encrypted;
ALTER TABLE usage_records DROP COLUMN IF EXISTS client_ip;
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_completion_text_encrypted;
ALTER TABLE usage_records DROP CONSTRAINT IF EXISTS usage_records_prompt_text_encrypted;
ALTER TABLE subjects DROP COLUMN IF EXISTS email;
