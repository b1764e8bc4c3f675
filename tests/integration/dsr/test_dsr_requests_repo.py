"""The dsr_requests table (migration 0010) through compliance.db.dsr_requests, as the application role."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from compliance.db import dsr_requests as repo
from compliance.errors import DataAccessError
from tests.conftest import ProvisionedDatabase

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def a_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "type": "access",
        "regulation": "gdpr",
        "status": "received",
        "subject_id": None,
        "subject_key": b"k" * 32,
        "export_formats": ["json"],
        "corrections": None,
        "received_at": T0,
        "deadline": T0 + timedelta(days=30),
    }
    return row | changes


@pytest.fixture
def orgs(migrated_db: ProvisionedDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    return migrated_db.create_org("Org A"), migrated_db.create_org("Org B")


def test_a_request_is_stored_read_and_invisible_to_another_org(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, org_b = orgs
    row = a_row()
    # When org A stores a request
    with migrated_db.app.tenant(org_a) as conn:
        stored = repo.insert_request(conn, org_a, row)
    # Then it reads back with its defaults
    assert stored["id"] == row["id"] and stored["steps"] == [] and stored["failed_attempts"] == 0
    with migrated_db.app.tenant(org_a) as conn:
        assert repo.get_request(conn, org_a, row["id"]) == stored
    # And org B sees nothing of it, even asking with org A's id (RLS)
    with migrated_db.app.tenant(org_b) as conn:
        assert repo.get_request(conn, org_b, row["id"]) is None
        assert repo.get_request(conn, org_a, row["id"]) is None
        assert repo.update_request(conn, org_a, row["id"], status="cancelled") is None
        assert repo.list_requests(conn, org_b, limit=10) == []


def test_a_second_open_request_of_the_type_names_the_open_one(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, org_b = orgs
    first = a_row()
    with migrated_db.app.tenant(org_a) as conn:
        repo.insert_request(conn, org_a, first)
    # When the same subject key asks for the same type again
    with pytest.raises(repo.OpenRequestExistsError) as raised, migrated_db.app.tenant(org_a) as conn:
        repo.insert_request(conn, org_a, a_row())
    # Then the conflict carries the open request's id
    assert raised.value.status == 409 and raised.value.extra["open_request_id"] == str(first["id"])
    # But another type, another org, or the same type once the first is closed, are accepted
    with migrated_db.app.tenant(org_a) as conn:
        repo.insert_request(conn, org_a, a_row(type="erasure", export_formats=None))
    with migrated_db.app.tenant(org_b) as conn:
        repo.insert_request(conn, org_b, a_row())
    with migrated_db.app.tenant(org_a) as conn:
        repo.update_request(conn, org_a, first["id"], status="completed", completed_at=T0)
        repo.insert_request(conn, org_a, a_row())


def test_request_org_finds_the_org_without_a_tenant_scope(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, _ = orgs
    row = a_row()
    with migrated_db.app.tenant(org_a) as conn:
        repo.insert_request(conn, org_a, row)
    # Given no organisation in scope (the verify route) / Then the function answers the org only
    with migrated_db.app.unscoped() as conn:
        assert repo.request_org(conn, row["id"]) == org_a
        assert repo.request_org(conn, uuid.uuid4()) is None
        assert repo.get_request(conn, org_a, row["id"]) is None  # the row itself stays hidden


def test_update_is_whitelisted_steps_append_and_the_app_cannot_delete(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, _ = orgs
    row = a_row()
    with migrated_db.app.tenant(org_a) as conn:
        repo.insert_request(conn, org_a, row)
        with pytest.raises(ValueError, match="cannot be updated"):
            repo.update_request(conn, org_a, row["id"], type="erasure")
        updated = repo.update_request(
            conn, org_a, row["id"], status="running", failure={"error": "X", "cause": "y"}
        )
        assert updated is not None and updated["failure"] == {"error": "X", "cause": "y"}
        assert repo.append_step(conn, org_a, row["id"], "record", "succeeded", T0, {"no_data_held": False})
        assert repo.append_step(conn, org_a, row["id"], "export", "running", T0 + timedelta(minutes=1))
        assert not repo.append_step(conn, org_a, uuid.uuid4(), "record", "succeeded", T0)
    with migrated_db.app.tenant(org_a) as conn:
        steps = repo.get_request(conn, org_a, row["id"])["steps"]  # type: ignore[index]
    assert [(s["name"], s["status"], s["detail"]) for s in steps] == [
        ("record", "succeeded", {"no_data_held": False}),
        ("export", "running", None),
    ]
    # The application role may neither delete a request nor rewrite what it was
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org_a) as conn:
        conn.execute("DELETE FROM dsr_requests WHERE id = %s", (row["id"],))
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org_a) as conn:
        conn.execute("UPDATE dsr_requests SET type = 'erasure' WHERE id = %s", (row["id"],))


def test_list_pages_newest_first_with_filters(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, _ = orgs
    rows = [
        a_row(
            subject_key=bytes([i]) * 32, received_at=T0 + timedelta(hours=i), deadline=T0 + timedelta(days=30)
        )
        for i in range(5)
    ]
    with migrated_db.app.tenant(org_a) as conn:
        for row in rows:
            repo.insert_request(conn, org_a, row)
        repo.update_request(conn, org_a, rows[0]["id"], status="cancelled")
        first = repo.list_requests(conn, org_a, limit=2)
        last = first[-1]
        second = repo.list_requests(conn, org_a, limit=10, after=(last["received_at"], last["id"]))
        received = repo.list_requests(conn, org_a, status="received", type="access", limit=10)
        none = repo.list_requests(conn, org_a, type="erasure", limit=10)
    assert [r["id"] for r in first + second] == [r["id"] for r in reversed(rows)]
    assert [r["id"] for r in received] == [r["id"] for r in reversed(rows[1:])]
    assert none == []


def test_due_requests_are_the_open_ones_by_deadline(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, _ = orgs
    soon = a_row(subject_key=b"a" * 32, deadline=T0 + timedelta(days=2))
    later = a_row(subject_key=b"b" * 32, deadline=T0 + timedelta(days=20))
    closed = a_row(subject_key=b"c" * 32, deadline=T0 + timedelta(days=1))
    with migrated_db.app.tenant(org_a) as conn:
        for row in (soon, later, closed):
            repo.insert_request(conn, org_a, row)
        repo.update_request(conn, org_a, closed["id"], status="completed")
        due = repo.due_requests(conn, org_a, until=T0 + timedelta(days=3))
    assert [r["id"] for r in due] == [soon["id"]]


def test_erasing_the_subject_keeps_the_request_and_clears_its_link(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, _ = orgs
    subject = uuid.uuid4()
    with migrated_db.owner() as owner:
        owner.execute(
            "INSERT INTO subjects (id, org_id, external_id) VALUES (%s, %s, 'ext-1')", (subject, org_a)
        )
    row = a_row(subject_id=subject)
    with migrated_db.app.tenant(org_a) as conn:
        repo.insert_request(conn, org_a, row)
    # When the subject's row is deleted (as compliance.dsr.erase does, as the application)
    with migrated_db.app.tenant(org_a) as conn:
        conn.execute("DELETE FROM subjects WHERE org_id = %s AND id = %s", (org_a, subject))
    # Then the request stays, without its link
    with migrated_db.app.tenant(org_a) as conn:
        kept = repo.get_request(conn, org_a, row["id"])
    assert kept is not None and kept["subject_id"] is None and kept["org_id"] == org_a


def test_the_schema_refuses_unknown_enums(
    migrated_db: ProvisionedDatabase, orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, _ = orgs
    with pytest.raises(DataAccessError) as raised, migrated_db.app.tenant(org_a) as conn:
        repo.insert_request(conn, org_a, a_row(type="deletion"))
    assert isinstance(raised.value.__cause__, psycopg.errors.CheckViolation)
