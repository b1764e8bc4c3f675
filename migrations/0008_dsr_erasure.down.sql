-- Rollback of 0008: the application can no longer erase subjects (usage rows and subjects become
-- append-only for it again, as in 0001). Erasures done stay done.
REVOKE DELETE ON subjects FROM compliance_rw;
REVOKE UPDATE (subject_id) ON usage_records FROM compliance_rw;
