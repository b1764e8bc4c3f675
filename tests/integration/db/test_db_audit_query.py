"""Audit reads for the API against a real PostgreSQL: filters, keyset pages, ranges, other orgs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from compliance.audit import query
from compliance.audit.events import AuditEventIn, AuditResult
from compliance.db import audit, audit_query
from compliance.db.audit_query import EventFilter
from compliance.errors import ValidationFailedError
from compliance.models.audit import EventQuery
from compliance.models.auth import Principal, Role
from tests.conftest import ProvisionedDatabase

T0 = datetime(2026, 3, 1, tzinfo=UTC)
N = 23


def event(org: uuid.UUID, n: int) -> AuditEventIn:
    return AuditEventIn(
        event_id=uuid.uuid4(),
        occurred_at=T0 + timedelta(minutes=n),
        event_type="api_key.created" if n % 3 == 0 else "api.request",
        actor=f"api_key:{uuid.UUID(int=n % 2)}",
        org_id=org,
        resource=f"route:GET:/v1/r{n % 4}",
        action="read",
        result=AuditResult.SUCCESS,
        details={"n": n},
    )


@pytest.fixture
def orgs(migrated_db: ProvisionedDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    mine, theirs = migrated_db.create_org("Mine"), migrated_db.create_org("Theirs")
    for org in (mine, theirs):
        with migrated_db.app.tenant(org) as conn:
            audit.append_events(conn, org, [event(org, n) for n in range(N)])
    return mine, theirs


def read(
    db: ProvisionedDatabase, org: uuid.UUID, flt: EventFilter, after: int = 0, limit: int = 100
) -> list[Any]:
    with db.app.tenant(org) as conn:
        return audit_query.query_events(conn, flt, after_seq=after, limit=limit)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (EventFilter(), list(range(N))),
        (EventFilter(actor=f"api_key:{uuid.UUID(int=1)}"), [n for n in range(N) if n % 2]),
        (EventFilter(event_type="api_key.created"), [n for n in range(N) if n % 3 == 0]),
        (EventFilter(resource="route:GET:/v1/r2"), [n for n in range(N) if n % 4 == 2]),
        (
            EventFilter(occurred_from=T0 + timedelta(minutes=5), occurred_to=T0 + timedelta(minutes=9)),
            [5, 6, 7, 8],
        ),
        (
            EventFilter(
                event_type="api.request", resource="route:GET:/v1/r1", actor=f"api_key:{uuid.UUID(int=1)}"
            ),
            [n for n in range(N) if n % 3 and n % 4 == 1],
        ),
        (EventFilter(actor="api_key:nobody"), []),
    ],
)
def test_filters(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID], flt: EventFilter, expected: list[int]
) -> None:
    rows = read(migrated_db, orgs[0], flt)
    assert [r.details["n"] for r in rows] == expected
    assert all(r.org_id == orgs[0] for r in rows)


@pytest.mark.parametrize("limit", [1, 4, N, N + 5])
def test_pages_cover_every_match_once_in_seq_order(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID], limit: int
) -> None:
    # Given a caller paging through its org's api.request events with the API's cursors
    principal = Principal(org_id=orgs[0], key_id=uuid.uuid4(), roles=frozenset({Role.AUDITOR}))
    seqs: list[int] = []
    cursor = None
    while True:
        page = query.list_events(
            migrated_db.app, principal, EventQuery(event_type="api.request", limit=limit, cursor=cursor)
        )
        seqs += [item.seq for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
        # Events appended between pages neither shift nor repeat rows
        with migrated_db.app.tenant(orgs[0]) as conn:
            audit.append_events(conn, orgs[0], [event(orgs[0], 1000 + len(seqs))])
    # Then no gaps or duplicates among the original events, in seq order
    original = [n + 1 for n in range(N) if n % 3]
    assert seqs[: len(original)] == original and len(set(seqs)) == len(seqs) and seqs == sorted(seqs)


def test_tampered_cursor_is_refused_before_the_database(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    principal = Principal(org_id=orgs[0], key_id=uuid.uuid4(), roles=frozenset({Role.AUDITOR}))
    with pytest.raises(ValidationFailedError):
        query.list_events(migrated_db.app, principal, EventQuery(cursor="eyJ2IjoxLCJzIjo1fQ"))


def test_other_orgs_events_are_invisible(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    mine, theirs = orgs
    with migrated_db.app.tenant(theirs) as conn:
        their_event = audit.read_events(conn, limit=1)[0]
    with migrated_db.app.tenant(mine) as conn:
        assert audit_query.get_event(conn, their_event.event_id) is None
        assert audit_query.event_hash_at(conn, 1) != their_event.event_hash
    with migrated_db.app.tenant(theirs) as conn:
        assert audit_query.get_event(conn, their_event.event_id) == their_event


def test_read_range_pages_through_an_inclusive_range(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    with migrated_db.app.tenant(orgs[0]) as conn:
        seqs = [e.seq for e in audit_query.read_range(conn, from_seq=5, to_seq=17, page_size=4)]
        assert seqs == list(range(5, 18))
        assert len(audit_query.leaf_hashes(conn, 10)) == 10
        assert audit_query.event_hash_at(conn, N + 1) is None
