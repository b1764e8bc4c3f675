"""Audit storage against a real PostgreSQL: chained appends, idempotency, concurrency, RLS,
append-only enforcement, tamper detection and the 0002 migration round trip."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from compliance.audit import merkle
from compliance.audit.chain import FailureReason, merkle_leaf_data, verify_chain
from compliance.audit.events import AuditEventIn, AuditResult
from compliance.db import audit, migrate
from compliance.db.connection import Database
from compliance.errors import DataAccessError
from tests.conftest import APP_PASSWORD, MIGRATIONS_DIR, ProvisionedDatabase

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def event(org_id: uuid.UUID, n: int = 0, **changes: Any) -> AuditEventIn:
    values: dict[str, Any] = {
        "event_id": uuid.uuid4(),
        "occurred_at": T0 + timedelta(seconds=n),
        "event_type": "api_key.created",
        "actor": f"api_key:{uuid.UUID(int=n)}",
        "org_id": org_id,
        "resource": f"api_key/{uuid.UUID(int=n + 1)}",
        "action": "create",
        "result": AuditResult.SUCCESS,
        "ip_address": "192.0.2.1",
        "user_agent": "pytest/1.0",
        "request_id": f"req-{n}",
        "details": {"n": n, "roles": ["ingest"], "ratio": 0.1, "big": 1e20, "nested": {"ok": True}},
    }
    values.update(changes)
    return AuditEventIn.model_validate(values)


def batch(org_id: uuid.UUID, size: int, start: int = 0) -> list[AuditEventIn]:
    return [event(org_id, start + i) for i in range(size)]


def read_all(db: ProvisionedDatabase, org_id: uuid.UUID) -> list[Any]:
    with db.app.tenant(org_id) as conn:
        return audit.read_events(conn, limit=100_000)


def test_appended_events_read_back_as_a_valid_chain(migrated_db: ProvisionedDatabase) -> None:
    # Given an organisation and a batch of varied events (IPv6 too, no optional fields)
    org = migrated_db.create_org()
    events = [
        *batch(org, 3),
        event(org, 3, ip_address="2001:DB8::1", user_agent=None, request_id=None, details={}),
    ]

    # When the batch is appended
    with migrated_db.app.tenant(org) as conn:
        result = audit.append_events(conn, org, events)

    # Then it is linked from seq 1, reads back unchanged and verifies
    assert [e.seq for e in result.appended] == [1, 2, 3, 4]
    assert result.duplicates == []
    stored = read_all(migrated_db, org)
    assert stored == result.appended
    verdict = verify_chain(stored, org_id=org)
    assert verdict.valid, str(verdict)
    assert result.head == verdict.head
    with migrated_db.app.tenant(org) as conn:
        assert audit.head(conn) == verdict.head
        leaves = list(audit.event_leaf_hashes(conn, 4))
    assert leaves == [merkle.leaf_hash(merkle_leaf_data(e)) for e in stored]
    assert merkle.root_from_leaf_hashes(leaves) == merkle.root(merkle_leaf_data(e) for e in stored)


def test_an_empty_chain_has_no_head(migrated_db: ProvisionedDatabase) -> None:
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        assert audit.head(conn) is None
        assert audit.read_events(conn, limit=10) == []
        assert audit.append_events(conn, org, []).head is None
        assert audit.head(conn) is None


def test_appending_the_same_batch_again_appends_nothing(migrated_db: ProvisionedDatabase) -> None:
    # Given a batch already appended
    org = migrated_db.create_org()
    events = batch(org, 3)
    with migrated_db.app.tenant(org) as conn:
        first = audit.append_events(conn, org, events)

    # When it is redelivered (plus a repeat inside the batch)
    with migrated_db.app.tenant(org) as conn:
        again = audit.append_events(conn, org, [*events, events[0]])

    # Then nothing is appended, every id is reported as a duplicate, the head is unchanged
    assert again.appended == []
    assert sorted(again.duplicates) == sorted([e.event_id for e in events] + [events[0].event_id])
    assert again.head == first.head
    assert len(read_all(migrated_db, org)) == 3


def test_two_batches_continue_the_chain(migrated_db: ProvisionedDatabase) -> None:
    # Given one appended batch
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        first = audit.append_events(conn, org, batch(org, 2))
    old = first.head
    assert old is not None

    # When a second batch, partly overlapping the first, is appended
    with migrated_db.app.tenant(org) as conn:
        second = audit.append_events(conn, org, [first.appended[1], *batch(org, 3, start=10)])

    # Then the new events follow the old head and the whole chain verifies
    assert [e.seq for e in second.appended] == [3, 4, 5]
    assert second.appended[0].prev_hash == old.event_hash
    assert second.duplicates == [first.appended[1].event_id]
    stored = read_all(migrated_db, org)
    assert verify_chain(stored).valid
    with migrated_db.app.tenant(org) as conn:
        assert audit.read_events(conn, after_seq=3, limit=1) == [stored[3]]


def test_a_failing_append_appends_nothing(migrated_db: ProvisionedDatabase) -> None:
    # Given an organisation with a chain
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        audit.append_events(conn, org, batch(org, 2))

    # When the transaction of a further append fails after the append
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org) as conn:
        audit.append_events(conn, org, batch(org, 2, start=5))
        conn.execute("SELECT 1/0")

    # Then neither events nor head moved
    with migrated_db.app.tenant(org) as conn:
        assert len(audit.read_events(conn, limit=10)) == 2
        head = audit.head(conn)
    assert head is not None and head.seq == 2


def test_events_of_another_org_are_refused(migrated_db: ProvisionedDatabase) -> None:
    org, other = migrated_db.create_org("A"), migrated_db.create_org("B")
    with pytest.raises(ValueError, match="belong"), migrated_db.app.tenant(org) as conn:
        audit.append_events(conn, org, [event(other)])
    # Appending to another org's chain from this org's scope is refused by RLS
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org) as conn:
        audit.append_events(conn, other, [event(other)])


def test_concurrent_appends_never_fork_a_chain(migrated_db: ProvisionedDatabase) -> None:
    # Given three organisations and two writers per organisation, each with its own pool
    orgs = [migrated_db.create_org(f"org {i}") for i in range(3)]
    rounds, size = 5, 4
    databases = [
        migrated_db.app,
        *(Database(migrated_db.app_dsn, password_provider=lambda: APP_PASSWORD) for _ in range(5)),
    ]
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(db: Database, org: uuid.UUID, offset: int) -> None:
        try:
            start.wait()
            for r in range(rounds):
                with db.tenant(org) as conn:
                    audit.append_events(conn, org, batch(org, size, start=offset + r * size))
        except BaseException as exc:  # reported below
            errors.append(exc)

    # When they all append at once
    threads = [
        threading.Thread(target=writer, args=(databases[i], orgs[i // 2], (i % 2) * 1000)) for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for db in databases[1:]:
        db.close()

    # Then every organisation has one chain 1..N without gaps or duplicates, and it verifies
    assert errors == []
    for org in orgs:
        stored = read_all(migrated_db, org)
        assert [e.seq for e in stored] == list(range(1, 2 * rounds * size + 1))
        assert {e.org_id for e in stored} == {org}
        assert verify_chain(stored, org_id=org).valid


def test_rls_hides_other_orgs_events(migrated_db: ProvisionedDatabase) -> None:
    # Given two organisations with events
    org_a, org_b = migrated_db.create_org("A"), migrated_db.create_org("B")
    for org in (org_a, org_b):
        with migrated_db.app.tenant(org) as conn:
            audit.append_events(conn, org, batch(org, 2))

    # When each reads / Then it sees only its own; without a scope nothing is visible
    assert {e.org_id for e in read_all(migrated_db, org_a)} == {org_a}
    assert {e.org_id for e in read_all(migrated_db, org_b)} == {org_b}
    with migrated_db.app.unscoped() as conn:
        assert conn.execute("SELECT count(*) AS n FROM audit_events").fetchone() == {"n": 0}
        assert conn.execute("SELECT count(*) AS n FROM audit_heads").fetchone() == {"n": 0}
        assert audit.head(conn) is None


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'forged'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "DELETE FROM audit_heads",
        "UPDATE audit_heads SET org_id = gen_random_uuid()",
    ],
)
def test_the_app_role_cannot_change_the_audit_trail(migrated_db: ProvisionedDatabase, statement: str) -> None:
    # Given events and the application role in the organisation's scope
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        audit.append_events(conn, org, batch(org, 2))
    with psycopg.connect(migrated_db.app_dsn, password=APP_PASSWORD, autocommit=True) as conn:
        conn.execute("SELECT set_config('app.org_id', %s, false)", (str(org),))
        # When it tries to change or remove them / Then PostgreSQL refuses
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_app_role_cannot_move_a_head_backwards(migrated_db: ProvisionedDatabase) -> None:
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        audit.append_events(conn, org, batch(org, 2))
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org) as conn:
        conn.execute("UPDATE audit_heads SET seq = 1")


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_events SET actor = 'forged'", "DELETE FROM audit_events", "TRUNCATE audit_events"],
)
def test_the_owner_is_stopped_by_the_triggers(migrated_db: ProvisionedDatabase, statement: str) -> None:
    # Given events
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        audit.append_events(conn, org, batch(org, 2))

    # When the owner (who bypasses grants and RLS) changes them / Then the trigger refuses
    with migrated_db.owner() as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute(statement)
    assert len(read_all(migrated_db, org)) == 2


def test_a_superuser_edit_is_caught_by_verify_chain(migrated_db: ProvisionedDatabase) -> None:
    # Given a chain of five events
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        audit.append_events(conn, org, batch(org, 5))

    # When a superuser disables the trigger and rewrites event 3
    with migrated_db.owner() as conn, conn.transaction():
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        conn.execute("UPDATE audit_events SET actor = 'api_key:forged' WHERE org_id = %s AND seq = 3", (org,))
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")

    # Then the rewritten row still loads, and verification fails exactly there
    verdict = verify_chain(read_all(migrated_db, org), org_id=org)
    assert not verdict.valid
    assert verdict.reason is FailureReason.HASH_MISMATCH
    assert verdict.first_bad_seq == 3
    assert verdict.checked == 2


def test_migration_0002_rolls_back_and_reapplies(migrated_db: ProvisionedDatabase) -> None:
    with migrated_db.owner() as conn:
        # Given the migrated database / When 0002 and every later migration are rolled back
        later = sorted(p.name.removesuffix(".up.sql") for p in Path(MIGRATIONS_DIR).glob("*.up.sql"))[1:]
        assert later[0] == "0002_audit"
        assert migrate.down(conn, MIGRATIONS_DIR, steps=len(later)) == later[::-1]

        # Then the audit objects are gone, the core ones remain
        names = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "audit_events" not in names and "audit_heads" not in names
        assert "usage_records" in names
        functions = conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'audit\\_%'").fetchone()
        assert functions == (0,)

        # When applied again / Then it is back and usable
        assert migrate.up(conn, MIGRATIONS_DIR) == later
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        assert [e.seq for e in audit.append_events(conn, org, batch(org, 2)).appended] == [1, 2]
