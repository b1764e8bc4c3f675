"""Event pages and their opaque cursors (compliance.audit.query), over an in-memory log."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from compliance.audit import query
from compliance.db.audit_query import EventFilter
from compliance.errors import NotFoundError, ValidationFailedError
from compliance.models.audit import EventQuery
from tests.unit.audit.audit_log_fakes import T0, FakeDatabase, FakeLog, fake_db, make_events, principal

DIGEST = query.filter_digest(EventFilter())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_cursor_round_trips() -> None:
    assert query.decode_cursor(query.encode_cursor(42, DIGEST), DIGEST) == 42


@pytest.mark.parametrize(
    "cursor",
    [
        "not*base64",
        _b64(b"\xff\xfe"),
        _b64(b"[]"),
        _b64(b'{"v":1,"s":5}'),
        _b64(json.dumps({"v": 2, "s": 5, "f": DIGEST}).encode()),
        _b64(json.dumps({"v": 1, "s": 0, "f": DIGEST}).encode()),
        _b64(json.dumps({"v": 1, "s": 2**53, "f": DIGEST}).encode()),
        _b64(json.dumps({"v": 1, "s": 5.0, "f": DIGEST}).encode()),
        _b64(json.dumps({"v": 1, "s": True, "f": DIGEST}).encode()),
        _b64(json.dumps({"v": 1, "s": "5", "f": DIGEST}).encode()),
        _b64(json.dumps({"v": 1, "s": 5, "f": DIGEST, "x": 1}).encode()),
    ],
)
def test_tampered_cursor_is_400(cursor: str) -> None:
    # When a cursor that the API did not issue comes back, Then it is refused, not guessed at
    with pytest.raises(ValidationFailedError):
        query.decode_cursor(cursor, DIGEST)


def test_cursor_of_other_filters_is_400() -> None:
    # Given a cursor issued for the unfiltered query
    cursor = query.encode_cursor(10, DIGEST)
    # When it is used with an actor filter, Then it is refused
    with pytest.raises(ValidationFailedError, match="other filters"):
        query.decode_cursor(cursor, query.filter_digest(EventFilter(actor="api_key:x")))


def test_pages_follow_the_cursor_without_gaps_or_an_empty_last_page(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given 7 events
    FakeLog(make_events(7)).install(monkeypatch)
    db = FakeDatabase()
    seen: list[int] = []
    cursor = None
    pages = 0
    # When they are read 3 at a time
    while True:
        page = query.list_events(fake_db(db), principal(), EventQuery(limit=3, cursor=cursor))
        pages += 1
        seen += [item.seq for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    # Then every event comes once, in order, in 3 pages, each in the caller's scope
    assert seen == list(range(1, 8)) and pages == 3
    assert set(db.scopes) == {principal().org_id}


def test_items_are_in_canonical_record_form(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLog(make_events(2)).install(monkeypatch)
    page = query.list_events(fake_db(), principal(), EventQuery())
    item = page.items[0]
    assert item.occurred_at.endswith("Z") and len(item.occurred_at) == 27
    assert item.ip_address == "192.0.2.1" and page.items[1].ip_address == "2001:db8::1" and item.seq == 1


def test_from_not_before_to_is_400() -> None:
    with pytest.raises(ValidationFailedError):
        query.list_events(
            fake_db(),
            principal(),
            EventQuery.model_validate({"from": T0, "to": T0 - timedelta(seconds=1)}),
        )


def test_unknown_event_is_404(monkeypatch: pytest.MonkeyPatch) -> None:
    events = make_events(1)
    FakeLog(events).install(monkeypatch)
    assert query.get_event(fake_db(), principal(), events[0].event_id).event_hash == events[0].event_hash
    with pytest.raises(NotFoundError):
        query.get_event(fake_db(), principal(), make_events(1)[0].event_id)
