-- Rollback of 0011: restrictions in force are forgotten (record them before rolling back).
REVOKE UPDATE (restricted_at, restriction_request_id) ON subjects FROM compliance_rw;
ALTER TABLE subjects DROP CONSTRAINT IF EXISTS subjects_restriction_consistent;
ALTER TABLE subjects DROP COLUMN IF EXISTS restriction_request_id;
ALTER TABLE subjects DROP COLUMN IF EXISTS restricted_at;
