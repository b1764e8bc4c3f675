-- Rollback of 0002 audit. Drops every object 0002 created (the audit trail with it).

DROP TABLE IF EXISTS audit_heads;
DROP TABLE IF EXISTS audit_events;
DROP FUNCTION IF EXISTS audit_heads_forward_only();
DROP FUNCTION IF EXISTS audit_events_reject_change();
