"""Re-keying an organisation against PostgreSQL and moto's KMS: every encrypted catalog column
moves to new data keys, legacy plaintext is encrypted, a crash resumes exactly, the catch-up pass
re-seals values written under a retired key by a process with a warm cache."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from compliance.catalog import catalog_path, load_catalog
from compliance.crypto import DataKeyCache, EncryptionContext, KmsDataKeys
from compliance.crypto.envelope import from_text, key_id_of
from compliance.crypto.ledger import MemoryShredLedger
from compliance.crypto.rekey import EncryptedTable, encrypted_tables, rekey, start_rekey
from compliance.crypto.shredding import shred
from compliance.errors import ConflictError
from tests.conftest import MIGRATIONS_DIR
from tests.integration.crypto.test_shred_end_to_end import NOW, REGION, World, prompt


@pytest.fixture
def provider(aws: None) -> KmsDataKeys:
    kms = boto3.client("kms", region_name=REGION)
    arn = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    return KmsDataKeys(kms, arn)


@pytest.fixture
def world(migrated_db: Any, provider: KmsDataKeys) -> World:
    world = World(migrated_db, provider)
    # subjects.email, encrypted under each subject's key
    for org, subject in [(world.org_a, world.alice), (world.org_a, world.bob)]:
        with migrated_db.app.tenant(org) as conn:
            context = EncryptionContext(org, "subjects", "email", subject)
            value = world.encryptor(conn).encrypt(f"{subject.hex[:6]}@example.com", context)
            conn.execute("UPDATE subjects SET email = %s WHERE id = %s", (value, subject))
    return world


@pytest.fixture
def tables() -> list[EncryptedTable]:
    return encrypted_tables(load_catalog(catalog_path(MIGRATIONS_DIR)))


def insert_legacy_prompt(world: World, org: uuid.UUID, subject: uuid.UUID, text: str) -> str:
    """A row written before field encryption: plaintext prompt (the CHECK is NOT VALID for those)."""
    request_id = f"legacy-{uuid.uuid4().hex[:8]}"
    with world.db.owner() as conn, conn.transaction():
        conn.execute("ALTER TABLE usage_records DROP CONSTRAINT usage_records_prompt_text_encrypted")
        conn.execute(
            "INSERT INTO usage_records (org_id, request_id, subject_id, provider, model, prompt_tokens,"
            " completion_tokens, cost, currency, occurred_at, received_at, prompt_text, batch_id)"
            " VALUES (%s, %s, %s, 'openai', 'gpt-4o', 1, 1, 0, 'USD', now(), now(), %s, gen_random_uuid())",
            (org, request_id, subject, text),
        )
        conn.execute(
            "ALTER TABLE usage_records ADD CONSTRAINT usage_records_prompt_text_encrypted"
            " CHECK (prompt_text IS NULL OR prompt_text LIKE 'enc:%') NOT VALID"
        )
    world.plaintexts[request_id] = text
    return request_id


def values(world: World, org: uuid.UUID) -> list[tuple[str, str, uuid.UUID, str]]:
    """Every encrypted value of the org: (table, column, subject, stored text)."""
    with world.db.owner() as conn:
        rows = conn.execute(
            "SELECT 'usage_records', 'prompt_text', subject_id, prompt_text FROM usage_records"
            " WHERE org_id = %s AND prompt_text IS NOT NULL"
            " UNION ALL SELECT 'subjects', 'email', id, email FROM subjects"
            " WHERE org_id = %s AND email IS NOT NULL",
            (org, org),
        ).fetchall()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def current_keys(world: World, org: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    with world.db.owner() as conn:
        rows = conn.execute(
            "SELECT subject_id, key_id FROM data_keys WHERE org_id = %s AND current", (org,)
        ).fetchall()
    return {row[0]: row[1] for row in rows}


def run_rekey(world: World, tables: list[EncryptedTable], org: uuid.UUID, **kwargs: Any) -> Any:
    run_id = start_rekey(world.db.app, org, world.sink, tables, cache_max_age_s=0, batch_size=2)
    return rekey(
        world.db.app,
        org,
        run_id,
        world.sink,
        world.provider,
        tables,
        kms_key_id=world.provider.kms_key_id,
        **kwargs,
    )


def test_rekey_moves_every_value_to_new_keys_and_encrypts_legacy_plaintext(
    world: World, tables: list[EncryptedTable]
) -> None:
    # Given org A's encrypted prompts and e-mails, a legacy plaintext prompt, and its keys
    legacy = insert_legacy_prompt(world, world.org_a, world.bob, "legacy prompt of bob")
    old_keys = set(current_keys(world, world.org_a).values())
    before_b = values(world, world.org_b)

    # When org A is re-keyed, two rows per batch
    result = run_rekey(world, tables, world.org_a)

    # Then every value (legacy included) is a ciphertext under its scope's new current key
    assert result.finished
    new_keys = current_keys(world, world.org_a)
    assert set(new_keys) == {world.alice, world.bob} and not old_keys & set(new_keys.values())
    after = values(world, world.org_a)
    assert len(after) == 6
    for _table, _column, subject, text in after:
        assert key_id_of(from_text(text)) == new_keys[subject]

    # And each decrypts to what it was, with a cold cache (old keys stay readable, not current)
    for row in world.rows():
        assert world.decrypt(row, DataKeyCache()) == world.plaintexts[row.request_id]
    assert legacy in world.plaintexts

    # And the counts: 4 prompts + 2 e-mails re-encrypted, walk + catch-up rows counted
    assert (result.values_rekeyed, result.values_skipped, result.values_erased) == (6, 0, 0)

    # And org B was not touched
    assert values(world, world.org_b) == before_b

    # And the run is audited: started, a key.created per new key, completed with the counts
    types = [e.event_type for e in world.sink.events if e.org_id == world.org_a]
    types = types[types.index("key.rekey_started") :]
    assert types[-1] == "key.rekey_completed"
    assert types.count("key.created") == 2
    completed = world.sink.events[-1]
    assert completed.details["values_rekeyed"] == 6 and completed.details["values_skipped"] == 0


def test_a_crashed_run_resumes_exactly_where_it_stopped(world: World, tables: list[EncryptedTable]) -> None:
    # Given a run that crashes after its first committed batch with rows (tables without rows of this
    # org, such as dsr_requests here, are walked through first)
    class CrashError(Exception):
        pass

    def crash(run: Any) -> None:
        if run.rows_done:
            raise CrashError

    run_id = start_rekey(world.db.app, world.org_a, world.sink, tables, cache_max_age_s=0, batch_size=2)
    with pytest.raises(CrashError):
        rekey(
            world.db.app, world.org_a, run_id, world.sink, world.provider, tables,
            kms_key_id=world.provider.kms_key_id, on_batch=crash,
        )  # fmt: skip
    with world.db.owner() as conn:
        [(rows_done, done_after_crash)] = conn.execute(
            "SELECT rows_done, values_rekeyed FROM key_rekey_runs WHERE run_id = %s", (run_id,)
        ).fetchall()
    assert (rows_done, done_after_crash) == (2, 2)

    # When a new run is started instead / Then it is refused while this one is open
    with pytest.raises(ConflictError):
        start_rekey(world.db.app, world.org_a, world.sink, tables, cache_max_age_s=0)

    # When it is resumed
    result = rekey(
        world.db.app,
        world.org_a,
        run_id,
        world.sink,
        world.provider,
        tables,
        kms_key_id=world.provider.kms_key_id,
    )

    # Then nothing was done twice: 3 prompts + 2 e-mails re-encrypted once each
    assert result.finished and result.values_rekeyed == 5
    new_keys = current_keys(world, world.org_a)
    for _table, _column, subject, text in values(world, world.org_a):
        assert key_id_of(from_text(text)) == new_keys[subject]


def test_the_catch_up_reseals_values_written_with_a_retired_key_from_a_warm_cache(
    world: World, tables: list[EncryptedTable]
) -> None:
    # Given a run with a 1-hour cache age: the walk completes, the catch-up must wait
    [retired] = world.key_ids(world.org_a, world.alice)
    run_id = start_rekey(world.db.app, world.org_a, world.sink, tables, cache_max_age_s=3600, batch_size=2)
    first = rekey(
        world.db.app, world.org_a, run_id, world.sink, world.provider, tables,
        kms_key_id=world.provider.kms_key_id, wait=None,
    )  # fmt: skip
    assert not first.finished and first.resume_after is not None

    # And a process whose cache still holds alice's retired key writes a prompt with it
    with world.db.app.tenant(world.org_a) as conn:  # world.cache is warm from before the run
        late = world.encryptor(conn).encrypt("a late prompt", prompt(world.org_a, world.alice))
        conn.execute(
            "INSERT INTO usage_records (org_id, request_id, subject_id, provider, model, prompt_tokens,"
            " completion_tokens, cost, currency, occurred_at, received_at, prompt_text, batch_id)"
            " VALUES (%s, 'late', %s, 'openai', 'gpt-4o', 1, 1, 0, 'USD', now(), now(), %s,"
            " gen_random_uuid())",
            (world.org_a, world.alice, late),
        )
    world.plaintexts["late"] = "a late prompt"
    stale = [v for v in values(world, world.org_a) if key_id_of(from_text(v[3])) == retired]
    assert len(stale) == 1

    # When the cache age has passed (the run's start moved back an hour) and the run resumes
    with world.db.owner() as conn:
        conn.execute(
            "UPDATE key_rekey_runs SET started_at = started_at - interval '1 hour 1 second'"
            " WHERE run_id = %s",
            (run_id,),
        )
    result = rekey(
        world.db.app,
        world.org_a,
        run_id,
        world.sink,
        world.provider,
        tables,
        kms_key_id=world.provider.kms_key_id,
    )

    # Then the late value was re-sealed under alice's new key, and still decrypts
    assert result.finished
    new_keys = current_keys(world, world.org_a)
    for _table, _column, subject, text in values(world, world.org_a):
        assert key_id_of(from_text(text)) == new_keys[subject]
    for row in world.rows():
        assert world.decrypt(row, DataKeyCache()) == world.plaintexts[row.request_id]


def test_shredded_values_stay_erased_and_their_legacy_plaintext_is_cleared(
    world: World, tables: list[EncryptedTable]
) -> None:
    # Given alice shredded, with a legacy plaintext prompt of hers still in the table
    legacy = insert_legacy_prompt(world, world.org_a, world.alice, "alice's legacy prompt")
    shred(
        world.db.app,
        world.sink,
        world.org_a,
        world.alice,
        actor="system:dsr",
        now=NOW,
        ledger=MemoryShredLedger(),
    )

    # When org A is re-keyed
    result = run_rekey(world, tables, world.org_a)

    # Then her ciphertexts are left (2 prompts + e-mail; the e-mail counted again by the catch-up,
    # which walks subjects whole), the plaintext cleared, bob's prompt and e-mail re-keyed
    assert (result.values_rekeyed, result.values_skipped, result.values_erased) == (2, 4, 1)
    with world.db.owner() as conn:
        [(text,)] = conn.execute(
            "SELECT prompt_text FROM usage_records WHERE request_id = %s", (legacy,)
        ).fetchall()
    assert text is None
    # And no key was created for her (her scope stays closed)
    assert set(current_keys(world, world.org_a)) == {world.bob}
    assert prompt(world.org_a, world.bob).scope.subject_id == world.bob
