"""shred() without a database: the event is published inside the transaction (fail closed), the
receipt, the cache eviction after commit; and the key.created / key.shredded event builders."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from compliance.audit import emit
from compliance.audit.events import AuditEventIn
from compliance.audit.sink import MemoryAuditSink
from compliance.crypto import DataKeyCache, KeyScope, shredding
from compliance.crypto.ledger import MemoryShredLedger, ShredLedgerError, ShredRecord
from compliance.db.data_keys import ShreddedKeys
from compliance.errors import AuditUnavailableError

ORG = uuid.UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
ALICE = uuid.UUID("1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b")
NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
KEYS = (uuid.UUID(int=1), uuid.UUID(int=2))


class FakeDatabase:
    """Records the transaction's outcome; the connection is a token for the fake destroy."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    @contextmanager
    def tenant(self, org_id: uuid.UUID) -> Iterator[str]:
        self.log.append(f"begin {org_id}")
        try:
            yield "conn"
        except BaseException:
            self.log.append("rollback")
            raise
        self.log.append("commit")


class RecordingSink(MemoryAuditSink):
    def __init__(self, log: list[str], *, fail: bool = False) -> None:
        super().__init__(fail=fail)
        self.log = log

    def publish(self, events: Sequence[AuditEventIn]) -> None:
        self.log.append("publish")
        super().publish(events)


class RecordingCache(DataKeyCache):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def evict_scope(self, scope: KeyScope) -> None:
        self.log.append(f"evict {scope.subject_id}")
        super().evict_scope(scope)


class RecordingLedger(MemoryShredLedger):
    def __init__(self, log: list[str], *, fail: bool = False) -> None:
        super().__init__(fail=fail)
        self.log = log

    def record(self, record: ShredRecord) -> str:
        self.log.append("ledger")
        return super().record(record)


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    entries: list[str] = []

    def destroy(conn: Any, scope: KeyScope, at: datetime) -> ShreddedKeys:
        entries.append(f"destroy {scope.subject_id}")
        return ShreddedKeys(KEYS, at)

    monkeypatch.setattr(shredding, "destroy_scope", destroy)
    return entries


def test_shred_destroys_records_then_audits_before_the_commit_then_evicts(log: list[str]) -> None:
    # Given a database, a sink, a shred ledger and this process's cache
    sink = RecordingSink(log)
    ledger = RecordingLedger(log)

    # When a subject is shredded
    receipt = shredding.shred(
        cast(Any, FakeDatabase(log)),
        sink,
        ORG,
        ALICE,
        actor="system:dsr",
        now=NOW,
        ledger=ledger,
        cache=RecordingCache(log),
    )

    # Then destruction, ledger record and event happen inside one transaction, eviction after it
    assert log == [f"begin {ORG}", f"destroy {ALICE}", "ledger", "publish", "commit", f"evict {ALICE}"]
    # And the ledger record holds ids and the time only
    assert ledger.records == [ShredRecord(ORG, ALICE, KEYS, NOW)]
    assert receipt == shredding.ShredReceipt(ORG, ALICE, KEYS, NOW)
    assert receipt.count == 2
    [event] = sink.events
    assert (event.event_type, event.actor, event.action, event.occurred_at) == (
        "key.shredded",
        "system:dsr",
        "shred",
        NOW,
    )
    assert event.resource == f"subject:{ALICE}"
    assert event.details == {"key_ids": [str(k) for k in KEYS], "count": 2}


def test_a_refused_event_rolls_the_shred_back(log: list[str]) -> None:
    # Given an audit trail that refuses events
    sink = RecordingSink(log, fail=True)

    # When a subject is shredded / Then it fails closed: rolled back, nothing evicted
    with pytest.raises(AuditUnavailableError):
        shredding.shred(
            cast(Any, FakeDatabase(log)),
            sink,
            ORG,
            ALICE,
            actor="system:dsr",
            now=NOW,
            ledger=RecordingLedger(log),
            cache=RecordingCache(log),
        )
    assert log == [f"begin {ORG}", f"destroy {ALICE}", "ledger", "publish", "rollback"]


def test_a_refused_ledger_record_rolls_the_shred_back_unaudited(log: list[str]) -> None:
    # Given a shred ledger that refuses records
    sink = RecordingSink(log)

    # When a subject is shredded / Then it fails closed before any event: rolled back, nothing evicted
    with pytest.raises(ShredLedgerError):
        shredding.shred(
            cast(Any, FakeDatabase(log)),
            sink,
            ORG,
            ALICE,
            actor="system:dsr",
            now=NOW,
            ledger=RecordingLedger(log, fail=True),
            cache=RecordingCache(log),
        )
    assert log == [f"begin {ORG}", f"destroy {ALICE}", "ledger", "rollback"]
    assert sink.events == []


def test_key_shredded_lists_at_most_100_key_ids_and_counts_all() -> None:
    # Given more key ids than an event lists
    key_ids = [uuid.uuid4() for _ in range(emit.MAX_LISTED_KEY_IDS + 5)]

    # When the event is built / Then the count is exact and the list says it is truncated
    event = emit.key_shredded(
        actor="system:dsr", org_id=ORG, subject_id=ALICE, key_ids=key_ids, occurred_at=NOW
    )
    assert event.details["count"] == emit.MAX_LISTED_KEY_IDS + 5
    assert event.details["key_ids"] == [str(k) for k in key_ids[: emit.MAX_LISTED_KEY_IDS]]
    assert event.details["key_ids_truncated"] is True


def test_a_repeated_shred_is_an_event_with_count_zero() -> None:
    event = emit.key_shredded(actor="system:dsr", org_id=ORG, subject_id=ALICE, key_ids=(), occurred_at=NOW)
    assert event.details == {"key_ids": [], "count": 0}


def test_key_events_name_org_level_keys_by_the_org() -> None:
    # Given the org-level scope (no subject) / When its events are built / Then the resource is the org
    created = emit.key_created(
        actor="system:field-encryption",
        org_id=ORG,
        subject_id=None,
        key_id=KEYS[0],
        kms_key_id="alias/fields",
        occurred_at=NOW,
    )
    assert created.resource == f"org:{ORG}"
    assert (created.event_type, created.action) == ("key.created", "create")
    assert created.details == {"key_id": str(KEYS[0]), "kms_key_id": "alias/fields"}
    shredded = emit.key_shredded(
        actor="system:dsr", org_id=ORG, subject_id=None, key_ids=KEYS, occurred_at=NOW
    )
    assert shredded.resource == f"org:{ORG}"
