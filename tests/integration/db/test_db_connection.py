"""compliance.db.connection.Database against a real server: transactions, credentials, errors."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from compliance.db import connection as connection_module
from compliance.db.connection import Database
from compliance.errors import DataAccessError
from compliance_tools.pg import free_port
from tests.conftest import APP_PASSWORD, ProvisionedDatabase


class CountingProvider:
    """A password provider that counts how often the pool asks (once per new connection)."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
        return APP_PASSWORD


@pytest.fixture
def provider() -> CountingProvider:
    return CountingProvider()


@pytest.fixture
def app(migrated_db: ProvisionedDatabase, provider: CountingProvider) -> Iterator[Database]:
    db = Database(migrated_db.app_dsn, password_provider=provider, max_size=2)
    yield db
    db.close()


def insert_key(conn: psycopg.Connection[Any], org: uuid.UUID, name: str) -> None:
    conn.execute(
        "INSERT INTO api_keys (org_id, name, prefix, secret_hash, roles) VALUES (%s, %s, %s, %s, '{dpo}')",
        (org, name, "abcdefghijkl", b"\x01" * 32),
    )


def test_the_scope_is_set_for_the_transaction_only(migrated_db: ProvisionedDatabase, app: Database) -> None:
    # Given an organisation / When a tenant transaction reads the setting
    org = migrated_db.create_org()
    with app.tenant(org) as conn:
        inside = conn.execute("SELECT current_setting('app.org_id') AS org, current_user AS who").fetchone()
    # Then it is the org, as the application user; an unscoped transaction has none
    with app.unscoped() as conn:
        outside = conn.execute("SELECT current_setting('app.org_id', true) AS org").fetchone()
    assert inside == {"org": str(org), "who": "compliance_app"}
    assert outside is not None and not outside["org"]


def test_a_snapshot_transaction_reads_one_moment_and_writes_nothing(
    migrated_db: ProvisionedDatabase, app: Database
) -> None:
    # Given an organisation with one API key, and a snapshot transaction that has read once
    org = migrated_db.create_org()
    with app.tenant(org) as conn:
        insert_key(conn, org, "before")
    with app.tenant(org, snapshot=True) as conn:
        first = conn.execute("SELECT count(*) AS n FROM api_keys").fetchone()
        # When another transaction commits a second key meanwhile
        with migrated_db.owner() as other:
            other.execute(
                "INSERT INTO api_keys (org_id, name, prefix, secret_hash, roles)"
                " VALUES (%s, 'during', 'abcdefghijkm', %s, '{dpo}')",
                (org, b"\x02" * 32),
            )
        # Then the snapshot still sees one (a plain transaction would see two), in scope
        again = conn.execute(
            "SELECT count(*) AS n, current_setting('app.org_id') AS org FROM api_keys"
        ).fetchone()
    assert first == {"n": 1} and again == {"n": 1, "org": str(org)}
    # And it refuses to write
    with pytest.raises(DataAccessError), app.tenant(org, snapshot=True) as conn:
        insert_key(conn, org, "refused")


def test_a_new_password_is_fetched_for_every_new_connection_only(
    app: Database, provider: CountingProvider
) -> None:
    # Given a fresh pool / When it serves sequential transactions
    for _ in range(3):
        with app.unscoped() as conn:
            conn.execute("SELECT 1")
    # Then one connection was opened, with one password
    assert provider.calls == 1

    # When two transactions overlap / Then a second connection is opened with a fresh password
    with app.unscoped(), app.unscoped() as second:
        second.execute("SELECT 1")
    assert provider.calls == 2


def test_driver_errors_surface_as_data_access_errors_and_roll_back(
    migrated_db: ProvisionedDatabase, app: Database
) -> None:
    # Given an organisation in scope
    org = migrated_db.create_org()
    # When a statement fails after a write in the same transaction
    with pytest.raises(DataAccessError) as caught, app.tenant(org) as conn:
        conn.execute("UPDATE api_keys SET last_used_at = now()")
        conn.execute("SELECT 1/0")
    # Then the domain error keeps the SQLSTATE and the driver error as cause
    assert caught.value.extra["sqlstate"] == "22012"
    assert isinstance(caught.value.__cause__, psycopg.errors.DivisionByZero)
    # ... and the pooled connection is usable again
    with app.tenant(org) as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}


def test_other_exceptions_roll_back_and_propagate_unchanged(
    migrated_db: ProvisionedDatabase, app: Database
) -> None:
    # Given a transaction that writes, then fails in application code
    class BoomError(Exception):
        pass

    org = migrated_db.create_org()
    with pytest.raises(BoomError), app.tenant(org) as conn:
        insert_key(conn, org, "lost")
        raise BoomError
    # Then the error is not wrapped, the write is gone and the pool still works
    with app.tenant(org) as conn:
        assert conn.execute("SELECT count(*) AS n FROM api_keys").fetchone() == {"n": 0}


def test_work_inside_a_transaction_is_committed_together(
    migrated_db: ProvisionedDatabase, app: Database
) -> None:
    # Given an organisation with one key written in a tenant transaction, and a failed savepoint
    org = migrated_db.create_org()
    with app.tenant(org) as conn:
        insert_key(conn, org, "kept")
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            insert_key(conn, org, "duplicate prefix")
    # Then the outer work is committed and the failed savepoint is not
    with migrated_db.owner() as conn:
        assert conn.execute("SELECT name FROM api_keys").fetchall() == [("kept",)]


@pytest.mark.parametrize("idle_check", [True, False], ids=["idle-check", "dead-at-begin"])
def test_a_connection_killed_while_idle_is_replaced(
    migrated_db: ProvisionedDatabase, app: Database, monkeypatch: pytest.MonkeyPatch, idle_check: bool
) -> None:
    # Given a pooled connection whose server session was terminated (proxy idle timeout)
    with app.unscoped() as conn:
        pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
    assert pid is not None
    with migrated_db.owner() as owner:
        owner.execute("SELECT pg_terminate_backend(%s)", (pid["pid"],))
    # When it is checked out again, verified on checkout (idle long enough) or not
    if idle_check:
        monkeypatch.setattr(connection_module, "_CHECK_IDLE_AFTER_S", 0.0)
    with app.unscoped() as conn:
        new_pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
    # Then the caller never sees the dead connection: a new one serves the transaction
    assert new_pid is not None and new_pid["pid"] != pid["pid"]


def test_an_unreachable_server_is_a_data_access_error() -> None:
    # Given a Database pointing at a closed port
    db = Database(f"host=127.0.0.1 port={free_port()} dbname=x user=y connect_timeout=1", timeout_s=1.0)
    # When it is used / Then the failure is a DataAccessError
    with pytest.raises(DataAccessError), db.unscoped():
        pass
    db.close()


def test_tenant_requires_a_uuid(app: Database) -> None:
    with pytest.raises(ValueError), app.tenant("x'; DROP TABLE api_keys; --"):  # type: ignore[arg-type]
        pass
    with app.tenant(uuid.uuid4()) as conn:
        assert conn.execute("SELECT count(*) AS n FROM api_keys").fetchone() == {"n": 0}
