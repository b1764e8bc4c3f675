-- Rollback of 0005 data keys. Drops the wrapped data keys with the table: every value encrypted
-- under them becomes unreadable, as after a shred of every scope. Roll back only a deployment
-- that has not encrypted anything yet.

DROP TABLE IF EXISTS data_keys;
DROP FUNCTION IF EXISTS data_keys_protect_destroyed();
