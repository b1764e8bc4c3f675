"""Erasing a data subject end to end on PostgreSQL and moto's KMS: the catalog's plan applied in one
transaction, the subject's key shredded, the receipt audited, nothing of the subject readable
afterwards; other subjects and organisations untouched; a refused audit event erases nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from compliance.audit.chain import verify_chain
from compliance.audit.sink import MemoryAuditSink
from compliance.catalog.load import catalog_path, load_catalog
from compliance.catalog.model import Catalog
from compliance.crypto import DataKeyCache, EncryptionContext, KeyShreddedError, KmsDataKeys
from compliance.crypto.ledger import MemoryShredLedger
from compliance.crypto.session import FieldCrypto
from compliance.db import audit as audit_store
from compliance.dsr.erase import erase_subject, verify_erased
from compliance.errors import AuditUnavailableError
from tests.aws_fixtures import REGION
from tests.conftest import MIGRATIONS_DIR, ProvisionedDatabase

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
SEALED_USAGE_COLUMNS = ("prompt_text", "client_ip")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(catalog_path(MIGRATIONS_DIR))


@pytest.fixture
def kms_key(aws: None) -> str:
    import boto3

    kms = boto3.client("kms", region_name=REGION)
    return str(kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"])


def field_crypto(kms_key: str) -> FieldCrypto:
    """A process's field encryption, with a key cache of its own."""
    import boto3

    return FieldCrypto(
        KmsDataKeys(boto3.client("kms", region_name=REGION), kms_key),
        kms_key_id=kms_key,
        cache=DataKeyCache(),
    )


class World:
    """Org A: alice (two usage rows, an e-mail) and bob (one row, an e-mail); org B: carol (one row)."""

    def __init__(self, db: ProvisionedDatabase, kms_key: str, catalog: Catalog) -> None:
        self.db, self.kms_key, self.catalog = db, kms_key, catalog
        self.crypto = field_crypto(kms_key)  # the eraser's process
        self.sink = MemoryAuditSink()
        self.ledger = MemoryShredLedger()
        self.org_a, self.org_b = db.create_org("A"), db.create_org("B")
        self.plaintexts: dict[str, str] = {}
        self.alice = self.subject(self.org_a, "alice", rows=2)
        self.bob = self.subject(self.org_a, "bob", rows=1)
        self.carol = self.subject(self.org_b, "carol", rows=1)

    def subject(self, org: uuid.UUID, name: str, *, rows: int) -> uuid.UUID:
        subject = uuid.uuid4()
        with self.crypto.tenant(self.db.app, org, sink=self.sink) as (conn, encryptor):
            email = f"{name}@example.com"
            sealed = encryptor.encrypt(email, EncryptionContext(org, "subjects", "email", subject))
            self.plaintexts[sealed] = email
            conn.execute(
                "INSERT INTO subjects (id, org_id, external_id, email) VALUES (%s, %s, %s, %s)",
                (subject, org, f"ext-{name}", sealed),
            )
            for i in range(rows):
                values = {c: f"{name} {c} {i}" for c in SEALED_USAGE_COLUMNS}
                texts = {
                    c: encryptor.encrypt(v, EncryptionContext(org, "usage_records", c, subject))
                    for c, v in values.items()
                }
                self.plaintexts.update({texts[c]: values[c] for c in SEALED_USAGE_COLUMNS})
                conn.execute(
                    "INSERT INTO usage_records (org_id, request_id, subject_id, provider, model,"
                    " prompt_tokens, completion_tokens, cost, currency, occurred_at, received_at,"
                    " prompt_text, client_ip, batch_id) VALUES (%s, %s, %s, 'openai', 'gpt-4o', 3, 4,"
                    " 0.5, 'USD', now(), now(), %s, %s, gen_random_uuid())",
                    (org, f"req-{name}-{i}", subject, texts["prompt_text"], texts["client_ip"]),
                )
        return subject

    def erase(self, subject: uuid.UUID, *, sink: MemoryAuditSink | None = None) -> dict[str, Any]:
        return erase_subject(
            self.db.app,
            sink or self.sink,
            self.ledger,
            self.org_a,
            subject,
            catalog=self.catalog,
            crypto=self.crypto,
            actor="system:dsr",
            now=NOW,
            request_id=uuid.UUID(int=5),
        )

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the tables an erasure touches, as the owner sees them (all orgs)."""
        with self.db.owner() as conn:
            return {
                "subjects": conn.execute(
                    "SELECT org_id, id, external_id, email FROM subjects ORDER BY id"
                ).fetchall(),
                "usage_records": conn.execute(
                    "SELECT org_id, request_id, subject_id, prompt_text, client_ip, prompt_tokens, cost"
                    " FROM usage_records ORDER BY request_id"
                ).fetchall(),
                "data_keys": conn.execute(
                    "SELECT key_id, subject_id, destroyed_at FROM data_keys ORDER BY key_id"
                ).fetchall(),
            }

    def sealed_values(
        self, snapshot: dict[str, list[tuple[Any, ...]]]
    ) -> list[tuple[EncryptionContext, str]]:
        """Every ciphertext of a snapshot with the context it was sealed in."""
        found = [(EncryptionContext(o, "subjects", "email", s), e) for o, s, _x, e in snapshot["subjects"]]
        for org, _r, subject, prompt, ip, *_ in snapshot["usage_records"]:
            found.append((EncryptionContext(org, "usage_records", "prompt_text", subject), prompt))
            found.append((EncryptionContext(org, "usage_records", "client_ip", subject), ip))
        return found

    def read(self, context: EncryptionContext, text: str) -> str:
        """Decrypt as another process would (a fresh cache)."""
        with field_crypto(self.kms_key).tenant(self.db.app, context.org_id) as (_conn, encryptor):
            return encryptor.decrypt(text, context)


@pytest.fixture
def world(migrated_db: ProvisionedDatabase, kms_key: str, catalog: Catalog) -> World:
    return World(migrated_db, kms_key, catalog)


def test_erasure_deletes_anonymizes_and_shreds_the_subject_only(world: World) -> None:
    # Given three subjects with sealed values, and a snapshot of every row (a copy, as in a backup)
    before = world.snapshot()
    alice_keys = [k for k, s, _d in before["data_keys"] if s == world.alice]
    assert len(alice_keys) == 1
    for context, text in world.sealed_values(before):
        assert world.read(context, text) == world.plaintexts[text]

    # When alice is erased
    receipt = world.erase(world.alice)

    # Then her subject row is gone, her usage rows stay with their figures and no subject link
    after = world.snapshot()
    assert [row[1] for row in after["subjects"]] == sorted([world.bob, world.carol])
    old_rows = {r[1]: r for r in before["usage_records"]}
    for org, request_id, subject, prompt, ip, tokens, cost in after["usage_records"]:
        was = old_rows[request_id]
        expected_subject = None if was[2] == world.alice else was[2]
        assert (org, subject, prompt, ip, tokens, cost) == (was[0], expected_subject, *was[3:])
    assert len(after["usage_records"]) == len(before["usage_records"]) == 4

    # And each ciphertext of hers (left in the table or in the copy) fails with KeyShreddedError in
    # a fresh process; bob's and carol's still decrypt
    for context, text in world.sealed_values(before):
        if context.subject_id == world.alice:
            with pytest.raises(KeyShreddedError):
                world.read(context, text)
        else:
            assert world.read(context, text) == world.plaintexts[text]

    # And the receipt counts the rows per table, names her destroyed key and the verification
    assert {t["table"]: (t["action"], t["rows"]) for t in receipt["tables"]} == {
        "consents": ("delete", 0),
        "data_keys": ("retain", 1),
        "dsr_requests": ("retain", 0),
        "usage_records": ("update", 2),
        "subjects": ("delete", 1),
    }
    assert [t["table"] for t in receipt["tables"]] == [
        "consents",
        "data_keys",
        "dsr_requests",
        "usage_records",
        "subjects",
    ]
    assert receipt["keys_shredded"] == [str(k) for k in alice_keys]
    assert receipt["rows_total"] == 4
    assert receipt["verification"] == {
        "verified": True,
        "lingering_rows": {"consents": 0, "usage_records": 0, "subjects": 0},
        "retained_rows": {"data_keys": 1, "dsr_requests": 0},
        "live_keys": 0,
        "destroyed_keys": 1,
        "probes_unreadable": 5,  # 2 prompts, 2 IP addresses, 1 e-mail
        "probes_readable": 0,
    }

    # And the shred is in the ledger, and one subject.erased event carries the receipt, no value
    assert [(r.subject_id, r.key_ids) for r in world.ledger.records] == [(world.alice, tuple(alice_keys))]
    event = world.sink.events[-1]
    assert (event.event_type, event.org_id, event.resource, event.action) == (
        "subject.erased",
        world.org_a,
        f"subject:{world.alice}",
        "erase",
    )
    details = event.details
    assert details["keys_shredded"] == {"key_ids": [str(k) for k in alice_keys], "count": 1}
    tables: list[dict[str, Any]] = json.loads(json.dumps(details["tables"]))
    usage = next(t for t in tables if t["table"] == "usage_records")
    assert usage["anonymize"] == ["subject_id"]
    assert usage["crypto_shred"] == ["client_ip", "completion_text", "prompt_text"]
    dumped = json.dumps(details)
    assert not any(value in dumped for value in [*world.plaintexts.values(), "ext-alice", "alice"])


def test_a_refused_audit_event_erases_nothing(world: World) -> None:
    # Given an audit trail that refuses events
    before = world.snapshot()

    # When alice is erased / Then it fails
    with pytest.raises(AuditUnavailableError):
        world.erase(world.alice, sink=MemoryAuditSink(fail=True))

    # And every row is as it was and her values still decrypt; the ledger record stays (immutable:
    # reapply_shreds completes the shred later, as for shredding.shred)
    assert world.snapshot() == before
    for context, text in world.sealed_values(before):
        assert world.read(context, text) == world.plaintexts[text]
    assert [r.subject_id for r in world.ledger.records] == [world.alice]


def test_erasing_again_finds_nothing_to_erase(world: World) -> None:
    # Given an erased subject
    world.erase(world.alice)
    after_first = world.snapshot()

    # When erased again
    again = world.erase(world.alice)

    # Then nothing is deleted, cleared or destroyed (her key's record is retained, hence counted)
    assert {t["table"]: t["rows"] for t in again["tables"]} == {
        "consents": 0,
        "data_keys": 1,
        "dsr_requests": 0,
        "usage_records": 0,
        "subjects": 0,
    }
    assert again["keys_shredded"] == []
    assert again["verification"]["verified"] is True
    assert again["verification"]["probes_unreadable"] == 0  # nothing left to sample
    assert world.snapshot() == after_first
    assert [e.event_type for e in world.sink.events[-2:]] == ["subject.erased"] * 2


def test_a_subject_never_keyed_is_closed_to_new_keys(world: World, catalog: Catalog) -> None:
    # Given a subject with no sealed value (no data key)
    dave = uuid.uuid4()
    with world.db.app.tenant(world.org_a) as conn:
        conn.execute(
            "INSERT INTO subjects (id, org_id, external_id) VALUES (%s, %s, 'ext-dave')", (dave, world.org_a)
        )

    # When dave is erased
    receipt = world.erase(dave)

    # Then his row is gone, no key is named, and a tombstone closes his scope (verified)
    assert {t["table"]: t["rows"] for t in receipt["tables"]} == {
        "consents": 0,
        "data_keys": 0,
        "dsr_requests": 0,
        "usage_records": 0,
        "subjects": 1,
    }
    assert receipt["keys_shredded"] == []
    assert receipt["verification"]["verified"] is True
    assert receipt["verification"]["destroyed_keys"] == 1
    with (
        pytest.raises(KeyShreddedError),
        world.crypto.tenant(world.db.app, world.org_a) as (_conn, encryptor),
    ):
        encryptor.encrypt("new", EncryptionContext(world.org_a, "subjects", "email", dave))


def test_verification_reports_a_subject_not_erased(world: World, catalog: Catalog) -> None:
    # Given bob, never erased
    # When his erasure is verified
    result = verify_erased(world.db.app, world.crypto, world.org_a, world.bob, catalog)

    # Then it fails, naming what is left
    assert result["verified"] is False
    assert result["lingering_rows"] == {"consents": 0, "usage_records": 1, "subjects": 1}
    assert (result["live_keys"], result["destroyed_keys"]) == (1, 0)


def test_the_audit_chain_verifies_after_the_erasure(world: World) -> None:
    # Given alice erased, and every event of org A (key.created and subject.erased) appended to
    # the audit store as the append consumer would
    world.erase(world.alice)
    events = [e for e in world.sink.events if e.org_id == world.org_a]
    assert [e.event_type for e in events][-1] == "subject.erased"
    with world.db.app.tenant(world.org_a) as conn:
        audit_store.append_events(conn, world.org_a, events)

    # When the chain is read back and verified
    with world.db.app.tenant(world.org_a) as conn:
        stored = audit_store.read_events(conn, limit=1000)
    verdict = verify_chain(stored, org_id=world.org_a)

    # Then it holds every event, the receipt included, unbroken
    assert verdict.valid
    assert len(stored) == len(events) == 3
    assert stored[-1].details == events[-1].details
