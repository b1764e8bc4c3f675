-- 0008 DSR erasure: the two privileges erasing a data subject (GDPR Art. 17) needs, nothing more.
-- The plan comes from migrations/catalog.toml (compliance.dsr.erasure_plan); it runs inside the
-- application's tenant transaction (compliance.dsr.erase), so RLS still confines it to one org.

-- usage_records are billing evidence (retention "billing"): an erasure keeps the row and clears its
-- link to the person (catalog: subject_id erasure = anonymize). Only that column becomes updatable;
-- the figures stay as written, and the sealed texts are erased by destroying the subject's data key.
GRANT UPDATE (subject_id) ON usage_records TO compliance_rw;

-- The subject's own row (external_id, the e-mail ciphertext) goes (catalog: subjects erasure =
-- delete), after its usage rows stopped referencing it. data_keys stays not deletable (0005).
GRANT DELETE ON subjects TO compliance_rw;
