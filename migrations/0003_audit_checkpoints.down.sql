-- Rollback of 0003 audit checkpoints. Drops every object 0003 created (the stored checkpoints
-- with them: the copies anchored in S3 Object Lock stay). The system organisation is removed
-- only while nothing refers to it.

DROP INDEX IF EXISTS audit_events_actor_seq_idx;
DROP INDEX IF EXISTS audit_events_event_type_seq_idx;
DROP INDEX IF EXISTS audit_events_resource_seq_idx;
DROP INDEX IF EXISTS audit_events_occurred_at_idx;
DROP FUNCTION IF EXISTS audit_checkpoint_due();
DROP TABLE IF EXISTS audit_checkpoints;
DROP FUNCTION IF EXISTS audit_checkpoints_reject_change();
DROP FUNCTION IF EXISTS audit_checkpoints_follow_previous();

DELETE FROM organisations AS o
WHERE o.id = '00000000-0000-0000-0000-000000000000'
  AND NOT EXISTS (SELECT 1 FROM api_keys WHERE org_id = o.id)
  AND NOT EXISTS (SELECT 1 FROM subjects WHERE org_id = o.id)
  AND NOT EXISTS (SELECT 1 FROM usage_records WHERE org_id = o.id)
  AND NOT EXISTS (SELECT 1 FROM audit_heads WHERE org_id = o.id)
  AND NOT EXISTS (SELECT 1 FROM audit_events WHERE org_id = o.id);
