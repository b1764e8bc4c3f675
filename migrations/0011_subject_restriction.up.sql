-- 0011: restriction of processing (GDPR Art. 18). A restricted subject's new usage is stored without
-- anything the catalog does not mark as needed for billing (no prompt or completion text, no client IP,
-- no new e-mail address) until the restriction is lifted. The request that restricted them is kept
-- with it, so a lift names what it ends.
ALTER TABLE subjects ADD COLUMN restricted_at timestamptz;
ALTER TABLE subjects ADD COLUMN restriction_request_id uuid;
ALTER TABLE subjects ADD CONSTRAINT subjects_restriction_consistent
    CHECK ((restricted_at IS NULL) = (restriction_request_id IS NULL));

GRANT UPDATE (restricted_at, restriction_request_id) ON subjects TO compliance_rw;
