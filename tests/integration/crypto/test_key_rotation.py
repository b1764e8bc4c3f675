"""Key rotation against PostgreSQL and moto's KMS: the scheduled re-wrap (KMS ReEncrypt) and the
re-application of ledgered shreds to a database restored from a backup taken before them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import boto3
import pytest

from compliance.crypto import DataKeyCache, KeyScope, KeyShreddedError, KmsDataKeys
from compliance.crypto.ledger import MemoryShredLedger, ShreddedScope, ShredLedgerError, ShredRecord
from compliance.crypto.rotation import KeyRewrapError, KmsRewrapper, reapply_shreds, rewrap_all, run_key_job
from compliance.crypto.shredding import shred
from tests.integration.crypto.test_shred_end_to_end import REGION, World, prompt

NOW = datetime(2026, 6, 7, 8, 9, 10, tzinfo=UTC)
LATER = NOW + timedelta(days=400)


@pytest.fixture
def kms(aws: None) -> Any:
    return boto3.client("kms", region_name=REGION)


@pytest.fixture
def provider(kms: Any) -> KmsDataKeys:
    arn = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    return KmsDataKeys(kms, arn)


@pytest.fixture
def world(migrated_db: Any, provider: KmsDataKeys) -> World:
    return World(migrated_db, provider)


def rewrapper(provider: KmsDataKeys) -> KmsRewrapper:
    return KmsRewrapper(boto3.client("kms", region_name=REGION), provider.kms_key_id)


def stored_keys(world: World) -> dict[uuid.UUID, tuple[bytes | None, str | None, datetime | None]]:
    with world.db.owner() as conn:
        rows = conn.execute("SELECT key_id, wrapped_key, kms_key_id, rewrapped_at FROM data_keys").fetchall()
    return {row[0]: (None if row[1] is None else bytes(row[1]), row[2], row[3]) for row in rows}


def all_decrypt(world: World, provider: KmsDataKeys | None = None) -> None:
    """Every stored prompt decrypts to its plaintext, in a process with a cold cache."""
    if provider is not None:
        world.provider = provider
    for row in world.rows():
        assert world.decrypt(row, DataKeyCache()) == world.plaintexts[row.request_id]


def test_rewrap_moves_old_keys_to_new_material_in_audited_batches(
    world: World, provider: KmsDataKeys
) -> None:
    # Given three live keys (alice, bob in org A; carol in B), wrapped before the cutoff
    before = stored_keys(world)
    assert len(before) == 3 and all(rewrapped is None for _, _, rewrapped in before.values())

    # When the re-wrap runs with a cutoff after their creation, two keys per batch
    outcomes = rewrap_all(
        world.db.app, rewrapper(provider), world.sink, now=LATER, cutoff=LATER, batch_size=2
    )

    # Then every key has a new wrapped form, recorded as re-wrapped now under the same KMS key
    by_org = {o.org_id: o for o in outcomes}  # the platform's own org is walked too (no keys)
    assert (by_org[world.org_a].keys, by_org[world.org_b].keys) == (2, 1)
    assert not any(o.failed for o in outcomes)
    after = stored_keys(world)
    assert after.keys() == before.keys()
    for key_id, (wrapped, kms_key_id, rewrapped_at) in after.items():
        assert wrapped is not None and wrapped != before[key_id][0]
        assert (kms_key_id, rewrapped_at) == (provider.kms_key_id, LATER)

    # And every value still decrypts (same data keys), with cold caches
    all_decrypt(world)

    # And key.rewrapped names the key ids, one event per org batch (org A: 2 keys in one batch)
    events = [e for e in world.sink.events if e.event_type == "key.rewrapped"]
    assert sorted(cast(int, e.details["count"]) for e in events) == [1, 2]
    assert {k for e in events for k in cast(list[str], e.details["key_ids"])} == {str(k) for k in before}

    # And a second run finds nothing due (re-wrapped after the cutoff)
    again = rewrap_all(world.db.app, rewrapper(provider), world.sink, now=LATER, cutoff=LATER)
    assert sum(o.keys for o in again) == 0


def test_rewrap_moves_keys_of_another_kms_key_to_the_configured_one(world: World, kms: Any) -> None:
    # Given a new configured KMS key (keys were wrapped under the old one) and a cutoff before them
    new_arn = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]

    # When the re-wrap runs
    outcomes = rewrap_all(
        world.db.app, KmsRewrapper(kms, new_arn), world.sink, now=NOW, cutoff=NOW - timedelta(days=999)
    )

    # Then every key moved to the new KMS key, and values decrypt with a provider of the new key only
    assert sum(o.keys for o in outcomes) == 3
    assert {kms_key_id for _, kms_key_id, _ in stored_keys(world).values()} == {new_arn}
    all_decrypt(world, KmsDataKeys(kms, new_arn))


class FailingFor:
    """A re-wrapper whose KMS fails for one organisation's keys."""

    def __init__(self, inner: KmsRewrapper, org_id: uuid.UUID) -> None:
        self.inner, self.org_id, self.kms_key_id = inner, org_id, inner.kms_key_id

    def rewrap(self, wrapped: bytes, *, source_kms_key_id: str, scope: KeyScope, key_id: uuid.UUID) -> bytes:
        if scope.org_id == self.org_id:
            raise KeyRewrapError("KMS could not re-wrap a data key (ThrottlingException)")
        return self.inner.rewrap(wrapped, source_kms_key_id=source_kms_key_id, scope=scope, key_id=key_id)


def test_a_kms_failure_fails_its_org_only_and_writes_nothing_of_the_batch(
    world: World, provider: KmsDataKeys
) -> None:
    # Given KMS failing for org A's keys
    before = stored_keys(world)
    failing = FailingFor(rewrapper(provider), world.org_a)

    # When the re-wrap runs
    outcomes = {o.org_id: o for o in rewrap_all(world.db.app, failing, world.sink, now=LATER, cutoff=LATER)}  # type: ignore[arg-type]

    # Then org A failed with the typed error and nothing of its batch was written or audited
    assert (outcomes[world.org_a].keys, outcomes[world.org_a].failed) == (0, "KeyRewrapError")
    after = stored_keys(world)
    for key_id in world.key_ids(world.org_a, world.alice) + world.key_ids(world.org_a, world.bob):
        assert after[key_id] == before[key_id]
    assert all(e.org_id != world.org_a for e in world.sink.events if e.event_type == "key.rewrapped")
    # And org B was re-wrapped all the same
    assert (outcomes[world.org_b].keys, outcomes[world.org_b].failed) == (1, None)
    all_decrypt(world)


def restore_data_keys(world: World, backup: str) -> None:
    """A point-in-time restore of data_keys from a copy (triggers off, as pg_restore would load it)."""
    with world.db.owner() as conn, conn.transaction():
        conn.execute("ALTER TABLE data_keys DISABLE TRIGGER USER")
        conn.execute("DELETE FROM data_keys")
        conn.execute(f"INSERT INTO data_keys SELECT * FROM {backup}")
        conn.execute("ALTER TABLE data_keys ENABLE TRIGGER USER")


def test_a_restored_backup_is_shredded_again_by_the_ledger(world: World, provider: KmsDataKeys) -> None:
    # Given a backup of data_keys taken before alice was shredded (with the shred in the ledger)
    with world.db.owner() as conn:
        conn.execute("CREATE TABLE data_keys_backup AS SELECT * FROM data_keys")
    alice_keys = world.key_ids(world.org_a, world.alice)
    shred(
        world.db.app, world.sink, world.org_a, world.alice, actor="system:dsr", now=NOW, ledger=world.ledger
    )
    assert list(world.ledger.scopes()) == [ShreddedScope(world.org_a, world.alice)]

    # When the backup is restored, her values decrypt again (this is the hazard)
    restore_data_keys(world, "data_keys_backup")
    alice_row = next(r for r in world.rows() if r.subject_id == world.alice)
    assert world.decrypt(alice_row, DataKeyCache()) == world.plaintexts[alice_row.request_id]

    # And the ledger's shreds are re-applied (the daily job does this first)
    result = run_key_job(
        world.db.app,
        rewrapper(provider),
        world.ledger,
        world.sink,
        now=LATER,
        max_age=timedelta(days=30),
    )

    # Then her values are unreadable again, everyone else's are not, and her key was not re-wrapped
    for row in world.rows():
        if row.subject_id == world.alice:
            with pytest.raises(KeyShreddedError):
                world.decrypt(row, DataKeyCache())
        else:
            assert world.decrypt(row, DataKeyCache()) == world.plaintexts[row.request_id]
    assert (result.reapply.scopes_listed, result.reapply.scopes_reapplied) == (1, 1)
    assert sum(o.keys for o in result.rewrap) == 2  # bob's and carol's

    # And the re-applied shred is audited as key.shredded with the reapplied marker
    [event] = [e for e in world.sink.events if e.event_type == "key.shredded" and e.details.get("reapplied")]
    assert (event.org_id, event.resource, event.actor) == (
        world.org_a,
        f"subject:{world.alice}",
        "system:key-rotation",
    )
    assert event.details == {"key_ids": [str(k) for k in alice_keys], "count": 1, "reapplied": True}

    # And re-applying again finds nothing to do
    assert reapply_shreds(world.db.app, world.ledger, world.sink, now=LATER).scopes_reapplied == 0


def test_a_ledgered_scope_with_no_row_in_the_restore_is_closed_and_absent_orgs_skipped(world: World) -> None:
    # Given ledger records for a subject with no key row at all, and for an org the database lacks
    ghost, absent_org = uuid.uuid4(), uuid.uuid4()
    ledger = MemoryShredLedger()
    ledger.record(ShredRecord(world.org_a, ghost, (), NOW))
    ledger.record(ShredRecord(absent_org, ghost, (), NOW))

    # When the shreds are re-applied
    result = reapply_shreds(world.db.app, ledger, world.sink, now=NOW)

    # Then the subject's scope is closed (a tombstone: no new key), the absent org is skipped
    assert (result.scopes_reapplied, result.orgs_absent, result.failed_orgs) == (1, 1, ())
    with pytest.raises(KeyShreddedError), world.db.app.tenant(world.org_a) as conn:
        world.encryptor(conn).encrypt("new", prompt(world.org_a, ghost))


def test_an_unreadable_ledger_fails_the_reapply_but_not_the_rewrap(
    world: World, provider: KmsDataKeys
) -> None:
    # Given a ledger that cannot be listed
    class Broken(MemoryShredLedger):
        def scopes(self) -> Any:
            raise ShredLedgerError("could not list the shred ledger (AccessDenied)")

    # When the job runs / Then the reapply reports the error and the re-wrap still ran
    result = run_key_job(
        world.db.app,
        rewrapper(provider),
        Broken(),
        world.sink,
        now=LATER,
        max_age=timedelta(days=30),
    )
    assert result.summary()["ledger_error"] == "ShredLedgerError"
    assert result.summary()["keys_rewrapped"] == 3
