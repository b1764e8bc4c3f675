"""The wrapped data key store against a real PostgreSQL (migration 0005): current/get/put/destroy,
race-safe first writes, shredded scopes closed, key.created audited in the transaction, RLS,
privileges and the owner-proof triggers, and the migration round trip."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from compliance.audit.sink import MemoryAuditSink
from compliance.crypto import KeyScope, KeyShreddedError, StoredDataKey
from compliance.db import migrate
from compliance.db.connection import Database
from compliance.db.data_keys import PgWrappedKeyStore, destroy_scope
from compliance.errors import AuditUnavailableError, DataAccessError
from tests.conftest import APP_PASSWORD, MIGRATIONS_DIR, ProvisionedDatabase

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/test"
T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def new_key() -> StoredDataKey:
    return StoredDataKey(uuid.uuid4(), b"wrapped:" + uuid.uuid4().bytes)


def store(conn: psycopg.Connection[Any], sink: MemoryAuditSink | None = None) -> PgWrappedKeyStore:
    return PgWrappedKeyStore(conn, kms_key_id=KMS_KEY, sink=sink)


def rows(db: ProvisionedDatabase) -> list[tuple[Any, ...]]:
    with db.owner() as conn:
        return conn.execute(
            "SELECT org_id, subject_id, key_id, wrapped_key, kms_key_id, current, destroyed_at"
            " FROM data_keys ORDER BY created_at, key_id"
        ).fetchall()


@pytest.mark.parametrize("subject", [uuid.UUID(int=7), None], ids=["subject", "org-level"])
def test_a_stored_key_is_the_current_key_and_reads_back(
    migrated_db: ProvisionedDatabase, subject: uuid.UUID | None
) -> None:
    # Given an organisation and a scope without a key
    org = migrated_db.create_org()
    scope = KeyScope(org, subject)
    key = new_key()

    with migrated_db.app.tenant(org) as conn:
        keys = store(conn)
        assert keys.current(scope) is None
        # When a key is put
        stored = keys.put(scope, key)

    # Then it is current and found by id, in a later transaction too; nothing else is
    assert stored == key
    with migrated_db.app.tenant(org) as conn:
        keys = store(conn)
        assert keys.current(scope) == key
        assert keys.get(scope, key.key_id) == key.wrapped
        assert keys.get(scope, uuid.uuid4()) is None
        other = KeyScope(org, uuid.UUID(int=8))
        assert keys.current(other) is None
        assert keys.get(other, key.key_id) is None  # the id in another scope is not found
    assert rows(migrated_db) == [(org, subject, key.key_id, key.wrapped, KMS_KEY, True, None)]


def test_a_second_put_returns_the_first_key(migrated_db: ProvisionedDatabase) -> None:
    # Given a scope with a key
    org = migrated_db.create_org()
    scope = KeyScope(org, uuid.uuid4())
    first = new_key()
    with migrated_db.app.tenant(org) as conn:
        store(conn).put(scope, first)

    # When another key is put / Then the first stays current and is returned
    with migrated_db.app.tenant(org) as conn:
        assert store(conn).put(scope, new_key()) == first
    assert [r[2] for r in rows(migrated_db)] == [first.key_id]


def test_concurrent_first_puts_store_one_key(migrated_db: ProvisionedDatabase) -> None:
    # Given two writers (own pools) racing to give a new scope its first key: the first has
    # stored its key but not committed
    org = migrated_db.create_org()
    scope = KeyScope(org, uuid.uuid4())
    first, second = new_key(), new_key()
    other = Database(migrated_db.app_dsn, password_provider=lambda: APP_PASSWORD)
    results: list[StoredDataKey] = []
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with other.tenant(org) as conn:
                keys = store(conn)
                assert keys.current(scope) is None  # it does not see the uncommitted key
                results.append(keys.put(scope, second))
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        with migrated_db.app.tenant(org) as conn:
            assert store(conn).put(scope, first) == first
            thread = threading.Thread(target=second_writer)
            thread.start()
            # When the second writer's put waits on the first's transaction, which then commits
            wait_until_a_backend_waits_on_a_lock(migrated_db)
        thread.join(timeout=30)
    finally:
        other.close()

    # Then the loser got the winner's key, and one key is stored
    assert errors == []
    assert results == [first]
    assert [r[2] for r in rows(migrated_db)] == [first.key_id]


def wait_until_a_backend_waits_on_a_lock(db: ProvisionedDatabase) -> None:
    """Poll pg_locks (the wait itself is the event: there is nothing to be notified by)."""
    deadline = time.monotonic() + 20
    with db.owner() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
            if waiting is not None and waiting[0] > 0:
                return
            time.sleep(0.01)
    raise AssertionError("the second writer never waited for the first")


def test_a_destroyed_scope_refuses_reads_and_new_keys(migrated_db: ProvisionedDatabase) -> None:
    # Given a scope with a key, and a neighbour scope with one
    org = migrated_db.create_org()
    scope, neighbour = KeyScope(org, uuid.uuid4()), KeyScope(org, uuid.uuid4())
    key, kept = new_key(), new_key()
    with migrated_db.app.tenant(org) as conn:
        store(conn).put(scope, key)
        store(conn).put(neighbour, kept)

    # When the scope is destroyed
    with migrated_db.app.tenant(org) as conn:
        destroyed = destroy_scope(conn, scope, T0)

    # Then its key is gone for reads and writes; the row stays, without key material
    assert destroyed.key_ids == (key.key_id,)
    with migrated_db.app.tenant(org) as conn:
        keys = store(conn)
        with pytest.raises(KeyShreddedError):
            keys.current(scope)
        with pytest.raises(KeyShreddedError):
            keys.get(scope, key.key_id)
        with pytest.raises(KeyShreddedError):
            keys.put(scope, new_key())
        assert keys.current(neighbour) == kept
    by_id = {r[2]: r for r in rows(migrated_db)}
    assert by_id[key.key_id][3:] == (None, KMS_KEY, False, T0)
    assert by_id[kept.key_id][3] == kept.wrapped

    # And destroying again destroys nothing new
    with migrated_db.app.tenant(org) as conn:
        assert destroy_scope(conn, scope, T0).key_ids == ()


def test_destroying_a_scope_without_keys_closes_it(migrated_db: ProvisionedDatabase) -> None:
    # Given a scope that never had a key
    org = migrated_db.create_org()
    scope = KeyScope(org, uuid.uuid4())

    # When it is destroyed (twice)
    with migrated_db.app.tenant(org) as conn:
        assert destroy_scope(conn, scope, T0).key_ids == ()
        assert destroy_scope(conn, scope, T0).key_ids == ()

    # Then one tombstone records it, and the scope takes no key
    assert [r[3:] for r in rows(migrated_db)] == [(None, None, False, T0)]
    with migrated_db.app.tenant(org) as conn, pytest.raises(KeyShreddedError):
        store(conn).put(scope, new_key())


def test_put_publishes_key_created_in_the_transaction(migrated_db: ProvisionedDatabase) -> None:
    # Given a sink
    org = migrated_db.create_org()
    subject = uuid.uuid4()
    sink = MemoryAuditSink()
    key = new_key()

    # When a key is stored, then another put finds it
    with migrated_db.app.tenant(org) as conn:
        store(conn, sink).put(KeyScope(org, subject), key)
        store(conn, sink).put(KeyScope(org, subject), new_key())

    # Then one key.created event names the scope and key, never key material
    [event] = sink.events
    assert (event.event_type, event.org_id, event.action) == ("key.created", org, "create")
    assert event.resource == f"subject:{subject}"
    assert event.actor == "system:field-encryption"
    assert event.details == {"key_id": str(key.key_id), "kms_key_id": KMS_KEY}


def test_a_refused_key_created_event_stores_no_key(migrated_db: ProvisionedDatabase) -> None:
    # Given an audit trail that refuses events
    org = migrated_db.create_org()
    scope = KeyScope(org, uuid.uuid4())

    # When a key is put / Then the put fails and the transaction rolls back: no key
    with pytest.raises(AuditUnavailableError), migrated_db.app.tenant(org) as conn:
        store(conn, MemoryAuditSink(fail=True)).put(scope, new_key())
    assert rows(migrated_db) == []


def test_another_org_can_neither_see_nor_destroy_keys(migrated_db: ProvisionedDatabase) -> None:
    # Given org A's key
    org_a, org_b = migrated_db.create_org("A"), migrated_db.create_org("B")
    scope = KeyScope(org_a, uuid.uuid4())
    key = new_key()
    with migrated_db.app.tenant(org_a) as conn:
        store(conn).put(scope, key)

    # When org B reads it / Then it sees nothing
    with migrated_db.app.tenant(org_b) as conn:
        keys = store(conn)
        assert keys.current(scope) is None
        assert keys.get(scope, key.key_id) is None
        assert conn.execute("SELECT count(*) AS n FROM data_keys").fetchone() == {"n": 0}
        # When it updates every row it can / Then none changes
        updated = conn.execute(
            "UPDATE data_keys SET wrapped_key = NULL, destroyed_at = now(), current = false"
        )
        assert updated.rowcount == 0

    # When org B destroys A's scope / Then RLS refuses (the row it would write is not its own)
    with pytest.raises(DataAccessError) as raised, migrated_db.app.tenant(org_b) as conn:
        destroy_scope(conn, scope, T0)
    assert isinstance(raised.value.__cause__, psycopg.errors.InsufficientPrivilege)

    # And A's key is intact
    with migrated_db.app.tenant(org_a) as conn:
        assert store(conn).current(scope) == key


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM data_keys",
        "TRUNCATE data_keys",
        "UPDATE data_keys SET subject_id = gen_random_uuid()",
        "UPDATE data_keys SET key_id = gen_random_uuid()",
        "UPDATE data_keys SET org_id = org_id",
    ],
)
def test_the_app_role_cannot_remove_or_move_keys(migrated_db: ProvisionedDatabase, statement: str) -> None:
    # Given a key and the application role in its organisation's scope
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        store(conn).put(KeyScope(org, uuid.uuid4()), new_key())

    # When it deletes or moves keys / Then PostgreSQL refuses (no grant), as a DataAccessError
    with pytest.raises(DataAccessError) as raised, migrated_db.app.tenant(org) as conn:
        conn.execute(statement)
    assert raised.value.extra["sqlstate"] == "42501"
    assert len(rows(migrated_db)) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE data_keys SET wrapped_key = '\\x01'::bytea, destroyed_at = NULL",
        "UPDATE data_keys SET current = false",
        "DELETE FROM data_keys",
        "TRUNCATE data_keys",
    ],
)
def test_a_destroyed_key_is_final_for_the_owner_too(migrated_db: ProvisionedDatabase, statement: str) -> None:
    # Given a destroyed key
    org = migrated_db.create_org()
    scope = KeyScope(org, uuid.uuid4())
    with migrated_db.app.tenant(org) as conn:
        store(conn).put(scope, new_key())
        destroy_scope(conn, scope, T0)

    # When the owner (who bypasses grants and RLS) revives, changes or removes it / Then refused
    with migrated_db.owner() as conn, pytest.raises(psycopg.errors.RaiseException, match="data_keys"):
        conn.execute(statement)
    assert [r[3] for r in rows(migrated_db)] == [None]


@pytest.mark.parametrize(
    "values",
    [
        "(gen_random_uuid(), %s, NULL, NULL, 'k', false, NULL)",  # no key and not destroyed
        "(gen_random_uuid(), %s, NULL, '\\x01', 'k', false, now())",  # destroyed with a key
        "(gen_random_uuid(), %s, NULL, '\\x01', NULL, true, NULL)",  # live without a KMS key
    ],
)
def test_the_table_refuses_inconsistent_rows(migrated_db: ProvisionedDatabase, values: str) -> None:
    org = migrated_db.create_org()
    with migrated_db.owner() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO data_keys"
            " (key_id, org_id, subject_id, wrapped_key, kms_key_id, current, destroyed_at)"
            f" VALUES {values}",
            (org,),
        )


def test_driver_errors_leave_as_data_access_errors(migrated_db: ProvisionedDatabase) -> None:
    # Given a transaction that already failed
    org = migrated_db.create_org()
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        # When the store reads / Then the driver error leaves as DataAccessError, chained
        with pytest.raises(DataAccessError) as raised:
            store(conn).current(KeyScope(org, None))
        assert isinstance(raised.value.__cause__, psycopg.errors.InFailedSqlTransaction)
        raise raised.value


def test_migration_0005_rolls_back_and_reapplies(migrated_db: ProvisionedDatabase) -> None:
    with migrated_db.owner() as conn:
        # Given the migrated database / When 0005 and every later migration are rolled back
        later = sorted(p.name.removesuffix(".up.sql") for p in MIGRATIONS_DIR.glob("*.up.sql"))
        later = later[later.index("0005_data_keys") :]
        assert migrate.down(conn, MIGRATIONS_DIR, steps=len(later)) == later[::-1]

        # Then the table and its function are gone
        names = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "data_keys" not in names
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'data\\_keys%'").fetchone() == (
            0,
        )

        # When applied again / Then it is back and usable
        assert migrate.up(conn, MIGRATIONS_DIR) == later
    org = migrated_db.create_org()
    key = new_key()
    with migrated_db.app.tenant(org) as conn:
        assert store(conn).put(KeyScope(org, None), key) == key
