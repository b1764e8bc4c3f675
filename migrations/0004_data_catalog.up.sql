-- 0004 data catalog: per column of the schema, its data category, whether it is personal data,
-- sensitivity, retention, erasure strategy (with its legal basis) and subject link.
--
-- Declared in migrations/catalog.toml and written here by the deploy (compliance.db.catalog.sync,
-- as the owner) after the migrations ran: this migration only creates the table, so the file can
-- change without a new migration. Not tenant data (it describes the schema, the same for every
-- organisation), hence no org_id and no row-level security; the application role only reads it.

CREATE TABLE data_catalog (
    table_name    text    NOT NULL CHECK (table_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
    column_name   text    NOT NULL CHECK (column_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
    category      text    NOT NULL CHECK (
                              category IN ('identifier', 'contact', 'usage', 'cost', 'content',
                                           'security', 'audit')
                          ),
    personal      boolean NOT NULL,
    sensitivity   text    NOT NULL CHECK (
                              sensitivity IN ('public', 'internal', 'confidential', 'restricted')
                          ),
    -- An ISO 8601 duration or the name of a retention policy of the catalog file.
    retention     text    NOT NULL CHECK (length(retention) BETWEEN 1 AND 64),
    erasure       text    NOT NULL CHECK (
                              erasure IN ('delete', 'anonymize', 'crypto_shred', 'retain_legal_basis')
                          ),
    legal_basis   text    CHECK (length(legal_basis) BETWEEN 10 AND 500),
    -- The column of table_name holding the subjects.id a row belongs to; NULL: none.
    subject_link  text    CHECK (subject_link ~ '^[a-z_][a-z0-9_]{0,62}$'),
    CONSTRAINT data_catalog_pkey PRIMARY KEY (table_name, column_name),
    -- A legal basis exactly when erasure is refused on one.
    CONSTRAINT data_catalog_legal_basis
        CHECK ((erasure = 'retain_legal_basis') = (legal_basis IS NOT NULL)),
    CONSTRAINT data_catalog_personal_not_public CHECK (NOT (personal AND sensitivity = 'public'))
);

-- Read-only for the application (GET /v1/catalog); only the owner (the deploy) writes it.
REVOKE ALL ON data_catalog FROM PUBLIC;
GRANT SELECT ON data_catalog TO compliance_rw;
