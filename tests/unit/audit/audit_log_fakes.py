"""An in-memory audit log and checkpoints standing in for compliance.db.audit_query/audit_checkpoints.

Used by the unit tests of query, verification, proofs, export and the offline CLI: the logic runs
unchanged, the two data-access modules are monkeypatched to read these lists.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from compliance.audit import merkle
from compliance.audit.chain import GENESIS_HASH, ChainHead, link
from compliance.audit.checkpoint import (
    ZERO_HASH,
    LocalSigner,
    SignedCheckpoint,
    TreeHead,
    head_hash,
    sign_head,
)
from compliance.audit.events import AuditEventIn, StoredAuditEvent
from compliance.db import audit_checkpoints, audit_query
from compliance.models.auth import Principal, Role

ORG = UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def principal(org: UUID = ORG) -> Principal:
    return Principal(org_id=org, key_id=UUID(int=7), roles=frozenset({Role.AUDITOR}))


def event_in(i: int, org: UUID = ORG, **overrides: Any) -> AuditEventIn:
    values: dict[str, Any] = {
        "event_id": uuid4(),
        "occurred_at": T0 + timedelta(seconds=i),
        "event_type": "api.request" if i % 3 else "api_key.created",
        "actor": f"api_key:{UUID(int=i % 4)}",
        "org_id": org,
        "resource": f"route:GET:/v1/things/{i % 5}",
        "action": "read",
        "result": "success",
        "ip_address": "192.0.2.1" if i % 2 else "2001:db8::1",
        "user_agent": None if i % 4 == 0 else "curl/8.5.0",
        "request_id": None if i % 5 == 0 else f"req-{i}",
        "details": {"i": i},
    }
    values.update(overrides)
    return AuditEventIn.model_validate(values)


def make_events(n: int, org: UUID = ORG) -> list[StoredAuditEvent]:
    return link([event_in(i, org) for i in range(1, n + 1)], None) if n else []


def sign_checkpoints(
    events: list[StoredAuditEvent], sizes: list[int], signer: LocalSigner, org: UUID = ORG
) -> list[SignedCheckpoint]:
    """Checkpoints 1, 2, ... at ``sizes`` (non-decreasing) over ``events``, chained and signed."""
    leaves = [bytes.fromhex(e.event_hash) for e in events]
    out: list[SignedCheckpoint] = []
    previous = ZERO_HASH
    for number, size in enumerate(sizes, start=1):
        head = TreeHead(
            org_id=org,
            number=number,
            tree_size=size,
            root_hash=merkle.to_hex(merkle.root(leaves[:size])),
            last_event_hash=events[size - 1].event_hash if size else GENESIS_HASH,
            issued_at=T0 + timedelta(hours=number),
            previous_head_hash=previous,
            key_id=signer.key_id,
        )
        out.append(sign_head(head, signer))
        previous = head_hash(head)
    return out


class FakeLog:
    """The stored events and checkpoints of one organisation, as the data-access functions see them."""

    def __init__(
        self, events: list[StoredAuditEvent], checkpoints: list[SignedCheckpoint] | None = None
    ) -> None:
        self.events = list(events)
        self.checkpoints = list(checkpoints or [])
        self.head_seq: int | None = None  # None: the last event's seq

    # compliance.db.audit_query
    def head(self, conn: Any) -> ChainHead | None:
        seq = self.head_seq if self.head_seq is not None else (self.events[-1].seq if self.events else 0)
        if seq == 0:
            return None
        at = {e.seq: e.event_hash for e in self.events}
        return ChainHead(seq, at.get(seq, GENESIS_HASH))

    def query_events(self, conn: Any, flt: audit_query.EventFilter, *, after_seq: int, limit: int) -> Any:
        rows = [e for e in self.events if e.seq > after_seq]
        return rows[:limit]

    def get_event(self, conn: Any, event_id: UUID) -> StoredAuditEvent | None:
        return next((e for e in self.events if e.event_id == event_id), None)

    def read_range(
        self, conn: Any, *, from_seq: int, to_seq: int, page_size: int
    ) -> Iterator[StoredAuditEvent]:
        return iter([e for e in self.events if from_seq <= e.seq <= to_seq])

    def event_hash_at(self, conn: Any, seq: int) -> str | None:
        return next((e.event_hash for e in self.events if e.seq == seq), None)

    def event_leaf_hashes(self, conn: Any, upto_seq: int) -> Iterator[bytes]:
        return iter(merkle.leaf_hash(bytes.fromhex(e.event_hash)) for e in self.events if e.seq <= upto_seq)

    def leaf_hashes(self, conn: Any, tree_size: int) -> list[bytes]:
        return list(self.event_leaf_hashes(conn, tree_size))

    # compliance.db.audit_checkpoints
    def latest(self, conn: Any) -> SignedCheckpoint | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def get(self, conn: Any, number: int) -> SignedCheckpoint | None:
        return next((c for c in self.checkpoints if c.head.number == number), None)

    def list_checkpoints(self, conn: Any, *, after_number: int = 0, limit: int) -> list[SignedCheckpoint]:
        return [c for c in self.checkpoints if c.head.number > after_number][:limit]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeLog:
        for name in ("head", "query_events", "get_event", "read_range", "event_hash_at", "event_leaf_hashes"):
            monkeypatch.setattr(audit_query, name, getattr(self, name))
        monkeypatch.setattr(audit_query, "leaf_hashes", self.leaf_hashes)
        for name in ("latest", "get", "list_checkpoints"):
            monkeypatch.setattr(audit_checkpoints, name, getattr(self, name))
        return self


class FakeDatabase:
    """``Database.tenant`` without a database: records the organisations it was scoped to."""

    def __init__(self) -> None:
        self.scopes: list[UUID] = []

    @contextmanager
    def tenant(self, org_id: UUID) -> Iterator[None]:
        self.scopes.append(org_id)
        yield None


def fake_db(db: FakeDatabase | None = None) -> Any:
    """A FakeDatabase typed as what the logic expects (a ``Database``)."""
    return db if db is not None else FakeDatabase()
