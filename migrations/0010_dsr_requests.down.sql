-- Rollback of 0010: the request records go with the table.
DROP FUNCTION IF EXISTS dsr_request_org(uuid);
DROP TABLE IF EXISTS dsr_requests;
