-- Rollback of 0004 data catalog (the file it is loaded from stays with the migrations).

DROP TABLE IF EXISTS data_catalog;
