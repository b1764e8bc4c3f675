"""Database.transaction() with scope(): several organisations in one transaction under RLS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from compliance.audit.events import AuditEventIn
from compliance.db import audit
from compliance.db.connection import scope
from compliance.errors import DataAccessError
from tests.conftest import ProvisionedDatabase


def event(org: UUID) -> AuditEventIn:
    return AuditEventIn.model_validate(
        {
            "event_id": uuid4(),
            "occurred_at": datetime(2026, 11, 23, tzinfo=UTC),
            "event_type": "api.request",
            "actor": "system:test",
            "org_id": org,
            "resource": "r",
            "action": "read",
            "result": "success",
        }
    )


def count(db: ProvisionedDatabase, org: UUID) -> int:
    with db.app.tenant(org) as conn:
        return len(audit.read_events(conn, limit=100))


def test_scope_switches_the_visible_organisation_within_one_transaction(
    migrated_db: ProvisionedDatabase,
) -> None:
    # Given two organisations with one event each
    a, b = migrated_db.create_org("A"), migrated_db.create_org("B")
    with migrated_db.app.transaction() as conn:
        # When nothing is in scope, no tenant row is visible
        assert audit.head(conn) is None
        scope(conn, a)
        audit.append_events(conn, a, [event(a)])
        scope(conn, b)
        audit.append_events(conn, b, [event(b)])
        # Then each scope sees only its own organisation
        assert [e.org_id for e in audit.read_events(conn, limit=10)] == [b]
        scope(conn, a)
        assert [e.org_id for e in audit.read_events(conn, limit=10)] == [a]
    assert (count(migrated_db, a), count(migrated_db, b)) == (1, 1)


def test_rls_refuses_writing_another_org_than_the_one_in_scope(migrated_db: ProvisionedDatabase) -> None:
    a, b = migrated_db.create_org("A"), migrated_db.create_org("B")
    with pytest.raises(DataAccessError), migrated_db.app.transaction() as conn:
        scope(conn, a)
        audit.append_events(conn, b, [event(b)])
    assert count(migrated_db, b) == 0


def test_a_failure_rolls_back_every_organisation(migrated_db: ProvisionedDatabase) -> None:
    a, b = migrated_db.create_org("A"), migrated_db.create_org("B")

    class RollbackError(Exception):
        pass

    with pytest.raises(RollbackError), migrated_db.app.transaction() as conn:
        scope(conn, a)
        audit.append_events(conn, a, [event(a)])
        scope(conn, b)
        audit.append_events(conn, b, [event(b)])
        raise RollbackError
    assert (count(migrated_db, a), count(migrated_db, b)) == (0, 0)


def test_the_scope_ends_with_the_transaction(migrated_db: ProvisionedDatabase) -> None:
    a = migrated_db.create_org("A")
    with migrated_db.app.transaction() as conn:
        scope(conn, a)
        audit.append_events(conn, a, [event(a)])
    # The pooled connection's next transaction starts with no organisation in scope
    with migrated_db.app.transaction() as conn:
        row: Any = conn.execute("SELECT current_setting('app.org_id', true) AS org").fetchone()
        assert row["org"] in (None, "")
        assert audit.head(conn) is None
