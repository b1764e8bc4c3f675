"""Crypto-shredding end to end: FieldEncryptor over the PostgreSQL key store and moto's KMS,
encrypted prompts in usage_records, then shred(org, subject). The subject's values are erased
everywhere, in a copy of the table taken before the shred too; nobody else's are; a refused audit
event leaves everything as it was."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

import psycopg
import pytest

from compliance.audit.sink import MemoryAuditSink
from compliance.crypto import (
    DataKeyCache,
    EncryptionContext,
    FieldEncryptor,
    KeyShreddedError,
    KmsDataKeys,
)
from compliance.crypto.ledger import MemoryShredLedger
from compliance.crypto.shredding import shred
from compliance.db.data_keys import PgWrappedKeyStore
from compliance.errors import AuditUnavailableError
from tests.conftest import ProvisionedDatabase

REGION = "us-east-1"
NOW = datetime(2026, 6, 7, 8, 9, 10, tzinfo=UTC)


class Row(NamedTuple):
    org_id: uuid.UUID
    request_id: str
    subject_id: uuid.UUID
    prompt_text: str


@pytest.fixture
def provider(aws: None) -> KmsDataKeys:
    import boto3

    kms = boto3.client("kms", region_name=REGION)
    arn = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    return KmsDataKeys(kms, arn)


class World:
    """Two organisations: alice and bob in A, carol in B, each with encrypted prompts stored."""

    def __init__(self, db: ProvisionedDatabase, provider: KmsDataKeys) -> None:
        self.db = db
        self.provider = provider
        self.sink = MemoryAuditSink()
        self.ledger = MemoryShredLedger()
        self.cache = DataKeyCache()  # this process's
        self.org_a, self.org_b = db.create_org("A"), db.create_org("B")
        self.alice, self.bob = self.subject(self.org_a, "alice"), self.subject(self.org_a, "bob")
        self.carol = self.subject(self.org_b, "carol")
        self.plaintexts: dict[str, str] = {}
        for org, subject, n in [
            (self.org_a, self.alice, 2),
            (self.org_a, self.bob, 1),
            (self.org_b, self.carol, 1),
        ]:
            self.store_prompts(org, subject, n)

    def subject(self, org: uuid.UUID, external_id: str) -> uuid.UUID:
        with self.db.app.tenant(org) as conn:
            row = conn.execute(
                "INSERT INTO subjects (org_id, external_id) VALUES (%s, %s) RETURNING id", (org, external_id)
            ).fetchone()
        assert row is not None
        return uuid.UUID(str(row["id"]))

    def encryptor(self, conn: psycopg.Connection[Any], cache: DataKeyCache | None = None) -> FieldEncryptor:
        store = PgWrappedKeyStore(conn, kms_key_id=self.provider.kms_key_id, sink=self.sink)
        return FieldEncryptor(self.provider, store, cache if cache is not None else self.cache)

    def store_prompts(self, org: uuid.UUID, subject: uuid.UUID, n: int) -> None:
        with self.db.app.tenant(org) as conn:
            encryptor = self.encryptor(conn)
            for i in range(n):
                request_id = f"req-{subject}-{i}"
                value = f"Hi, I am {subject.hex[:6]}, mail me at someone{i}@example.com"
                self.plaintexts[request_id] = value
                conn.execute(
                    "INSERT INTO usage_records (org_id, request_id, subject_id, provider, model,"
                    " prompt_tokens, completion_tokens, cost, currency, occurred_at, received_at,"
                    " prompt_text, batch_id) VALUES (%s, %s, %s, 'openai', 'gpt-4o', 1, 1, 0, 'USD',"
                    " now(), now(), %s, gen_random_uuid())",
                    (org, request_id, subject, encryptor.encrypt(value, prompt(org, subject))),
                )

    def rows(self, table: str = "usage_records") -> list[Row]:
        with self.db.owner() as conn:
            found = conn.execute(
                f"SELECT org_id, request_id, subject_id, prompt_text FROM {table} ORDER BY request_id"
            ).fetchall()
        return [Row(*row) for row in found]

    def decrypt(self, row: Row, cache: DataKeyCache | None = None) -> str:
        with self.db.app.tenant(row.org_id) as conn:
            return self.encryptor(conn, cache).decrypt(row.prompt_text, prompt(row.org_id, row.subject_id))

    def key_ids(self, org: uuid.UUID, subject: uuid.UUID) -> list[uuid.UUID]:
        with self.db.owner() as conn:
            found = conn.execute(
                "SELECT key_id FROM data_keys WHERE org_id = %s AND subject_id = %s AND destroyed_at IS NULL",
                (org, subject),
            ).fetchall()
        return [row[0] for row in found]


def prompt(org: uuid.UUID, subject: uuid.UUID) -> EncryptionContext:
    return EncryptionContext(org, "usage_records", "prompt_text", subject)


@pytest.fixture
def world(migrated_db: ProvisionedDatabase, provider: KmsDataKeys) -> World:
    return World(migrated_db, provider)


def test_after_a_shred_every_copy_of_the_subjects_values_is_erased(world: World) -> None:
    # Given stored prompts that decrypt, a copy of the table and a list of its rows taken now
    before = world.rows()
    assert len(before) == 4
    assert all(world.decrypt(row, DataKeyCache()) == world.plaintexts[row.request_id] for row in before)
    with world.db.owner() as conn:
        conn.execute("CREATE TABLE usage_backup AS SELECT * FROM usage_records")
    alice_keys = world.key_ids(world.org_a, world.alice)
    assert len(alice_keys) == 1
    assert [e.event_type for e in world.sink.events] == ["key.created"] * 3

    # When alice is shredded
    receipt = shred(
        world.db.app,
        world.sink,
        world.org_a,
        world.alice,
        actor="system:dsr",
        now=NOW,
        ledger=world.ledger,
        cache=world.cache,
    )

    # Then the receipt names her key, and a key.shredded event records it
    assert (receipt.org_id, receipt.subject_id, receipt.key_ids, receipt.destroyed_at) == (
        world.org_a,
        world.alice,
        tuple(alice_keys),
        NOW,
    )
    event = world.sink.events[-1]
    assert (event.event_type, event.org_id, event.resource) == (
        "key.shredded",
        world.org_a,
        f"subject:{world.alice}",
    )
    assert event.details == {"key_ids": [str(k) for k in alice_keys], "count": 1}

    # And each of her values fails with KeyShreddedError, from the table, its copy and the list,
    # in this process and in another one (its own cache); bob's and carol's still decrypt
    copies = [world.rows(), world.rows("usage_backup"), before]
    assert copies[0] == copies[1] == before
    for rows in copies:
        for row in rows:
            for cache in (world.cache, DataKeyCache()):
                if row.subject_id == world.alice:
                    with pytest.raises(KeyShreddedError):
                        world.decrypt(row, cache)
                else:
                    assert world.decrypt(row, cache) == world.plaintexts[row.request_id]

    # And no new value can be encrypted for her
    with pytest.raises(KeyShreddedError), world.db.app.tenant(world.org_a) as conn:
        world.encryptor(conn).encrypt("new", prompt(world.org_a, world.alice))


def test_shredding_again_destroys_nothing_and_is_audited(world: World) -> None:
    # Given a shredded subject
    first = shred(
        world.db.app, world.sink, world.org_a, world.alice, actor="system:dsr", now=NOW, ledger=world.ledger
    )

    # When shredded again
    again = shred(
        world.db.app, world.sink, world.org_a, world.alice, actor="system:dsr", now=NOW, ledger=world.ledger
    )

    # Then no new key is reported, and both shreds are events
    assert first.count == 1
    assert again.key_ids == ()
    shredded = [e for e in world.sink.events if e.event_type == "key.shredded"]
    assert [e.details["count"] for e in shredded] == [1, 0]


def test_a_refused_audit_event_rolls_the_shred_back(world: World) -> None:
    # Given an audit trail that refuses events
    refusing = MemoryAuditSink(fail=True)
    alice_keys = world.key_ids(world.org_a, world.alice)

    # When alice is shredded / Then it fails closed
    with pytest.raises(AuditUnavailableError):
        shred(
            world.db.app, refusing, world.org_a, world.alice, actor="system:dsr", now=NOW, ledger=world.ledger
        )

    # And her key is intact: her values still decrypt, in a process with a cold cache too
    assert world.key_ids(world.org_a, world.alice) == alice_keys
    for row in world.rows():
        assert world.decrypt(row, DataKeyCache()) == world.plaintexts[row.request_id]


def test_a_shred_in_another_org_does_not_reach_this_one(world: World) -> None:
    # Given alice's pseudonym, shredded in org B (where it names nobody)
    receipt = shred(
        world.db.app, world.sink, world.org_b, world.alice, actor="system:dsr", now=NOW, ledger=world.ledger
    )

    # Then nothing was destroyed, and alice's values in org A still decrypt
    assert receipt.key_ids == ()
    for row in world.rows():
        assert world.decrypt(row, DataKeyCache()) == world.plaintexts[row.request_id]
