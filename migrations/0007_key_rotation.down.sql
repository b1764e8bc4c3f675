-- Rollback of 0007. Re-wrapped keys keep their new wrapped form (it unwraps like the old one);
-- only the bookkeeping goes. Values re-keyed stay under their new data keys.
REVOKE UPDATE (prompt_text, completion_text, client_ip) ON usage_records FROM compliance_rw;
DROP TABLE IF EXISTS key_rekey_runs;
DROP INDEX IF EXISTS data_keys_live_idx;
REVOKE UPDATE (kms_key_id, rewrapped_at) ON data_keys FROM compliance_rw;
ALTER TABLE data_keys DROP COLUMN IF EXISTS rewrapped_at;
