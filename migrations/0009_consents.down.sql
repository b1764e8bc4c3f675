-- Rollback of 0009: the consent history goes with the table.
DROP TABLE IF EXISTS consents;
DROP FUNCTION IF EXISTS consents_revoke_only();
