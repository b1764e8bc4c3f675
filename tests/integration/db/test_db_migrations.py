"""Migration runner against a real PostgreSQL: round trips, tamper refusal, concurrency, app user."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from compliance.db import migrate
from compliance.db.migrate import MigrationError
from tests.conftest import APP_USER, MIGRATIONS_DIR, ProvisionedDatabase

CORE_TABLES = {"organisations", "api_keys", "subjects", "usage_records"}


def tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows} - {"schema_migrations"}


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


def test_up_down_up_round_trip(empty_db: ProvisionedDatabase) -> None:
    with empty_db.owner() as conn:
        # Given an empty database
        assert tables(conn) == set()

        # When every migration is applied
        applied = migrate.up(conn, MIGRATIONS_DIR)

        # Then the core tables exist and status reports them applied, checksums intact
        assert applied[0] == "0001_core"
        assert tables(conn) >= CORE_TABLES
        assert all(s.applied and s.checksum_ok for s in migrate.status(conn, MIGRATIONS_DIR))
        assert migrate.current_version(conn) == int(applied[-1][:4])

        # When everything is rolled back
        rolled_back = migrate.down(conn, MIGRATIONS_DIR, steps=len(applied))

        # Then the schema is empty again and nothing is applied
        assert rolled_back == list(reversed(applied))
        assert tables(conn) == set()
        assert migrate.current_version(conn) is None

        # When applied again / Then it succeeds identically, and a further up is a no-op
        assert migrate.up(conn, MIGRATIONS_DIR) == applied
        assert migrate.up(conn, MIGRATIONS_DIR) == []


def test_up_to_a_target_and_down_by_steps(empty_db: ProvisionedDatabase, tmp_path: Path) -> None:
    # Given the repository migrations plus two more
    directory = copy_migrations(tmp_path)
    (directory / "9001_extra_a.up.sql").write_text("CREATE TABLE extra_a (id int);")
    (directory / "9001_extra_a.down.sql").write_text("DROP TABLE extra_a;")
    (directory / "9002_extra_b.up.sql").write_text("CREATE TABLE extra_b (id int);")
    (directory / "9002_extra_b.down.sql").write_text("DROP TABLE extra_b;")

    with empty_db.owner() as conn:
        # When migrating up to 9001 only
        migrate.up(conn, directory, target=9001)

        # Then 9002 is pending
        pending = [s.version for s in migrate.status(conn, directory) if not s.applied]
        assert pending == [9002]

        # When the rest is applied and one step rolled back / Then only 9002 is undone
        assert migrate.up(conn, directory) == ["9002_extra_b"]
        assert migrate.down(conn, directory) == ["9002_extra_b"]
        assert "extra_a" in tables(conn) and "extra_b" not in tables(conn)


def test_a_changed_applied_migration_is_refused(empty_db: ProvisionedDatabase, tmp_path: Path) -> None:
    # Given applied migrations
    directory = copy_migrations(tmp_path)
    migrate.up(empty_db.owner_dsn, directory)

    # When an applied file is edited afterwards
    core = directory / "0001_core.up.sql"
    core.write_text(core.read_text() + "\n-- edited after it ran\n")
    (directory / "9001_next.up.sql").write_text("CREATE TABLE next_one (id int);")

    # Then up refuses (and applies nothing), and status flags the file
    with pytest.raises(MigrationError, match="0001_core"):
        migrate.up(empty_db.owner_dsn, directory)
    with empty_db.owner() as conn:
        assert "next_one" not in tables(conn)
        flagged = {s.version: s.checksum_ok for s in migrate.status(conn, directory)}
    assert flagged[1] is False and flagged[9001] is None


def test_a_failing_migration_leaves_nothing_behind(empty_db: ProvisionedDatabase, tmp_path: Path) -> None:
    # Given a migration that fails half-way
    directory = copy_migrations(tmp_path)
    (directory / "9001_broken.up.sql").write_text("CREATE TABLE half (id int); SELECT 1/0;")

    # When applied / Then the error surfaces, the earlier migrations stay, the broken one is rolled back
    with pytest.raises(psycopg.errors.DivisionByZero):
        migrate.up(empty_db.owner_dsn, directory)
    with empty_db.owner() as conn:
        assert "half" not in tables(conn)
        assert migrate.current_version(conn) == migrate.discover(MIGRATIONS_DIR)[-1].version


def test_rolling_back_without_a_down_file_is_refused(empty_db: ProvisionedDatabase, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "9001_one_way.up.sql").write_text("CREATE TABLE one_way (id int);")
    migrate.up(empty_db.owner_dsn, directory)

    with pytest.raises(MigrationError, match="no rollback"):
        migrate.down(empty_db.owner_dsn, directory)


def test_concurrent_up_calls_apply_each_migration_once(empty_db: ProvisionedDatabase, tmp_path: Path) -> None:
    # Given a slow extra migration, so the deploys really overlap
    directory = copy_migrations(tmp_path)
    (directory / "9001_slow.up.sql").write_text("SELECT pg_sleep(0.3); CREATE TABLE slow (id int);")
    results: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def deploy() -> None:
        try:
            start.wait()
            results.append(migrate.up(empty_db.owner_dsn, directory))
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    # When four deploys run up at the same time
    threads = [threading.Thread(target=deploy) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # Then none failed, one applied everything and the others found nothing to do
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 0, 0, len(migrate.discover(directory))]
    with empty_db.owner() as conn:
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert count == (len(migrate.discover(directory)),)


def test_passing_a_connection_inside_a_transaction_is_refused(empty_db: ProvisionedDatabase) -> None:
    with psycopg.connect(empty_db.owner_dsn) as conn:
        conn.execute("SELECT 1")  # opens an implicit transaction
        with pytest.raises(MigrationError, match="inside a transaction"):
            migrate.up(conn, MIGRATIONS_DIR)


def test_app_user_gets_a_scram_verifier_never_the_password(migrated_db: ProvisionedDatabase) -> None:
    # Given the migrated database (its fixture already ensured the app user once)
    with migrated_db.owner() as conn:
        # When the user is ensured again with a new password
        migrate.ensure_app_user(conn, APP_USER, "a-new-Password-123")

        # Then it logs in, is a member of compliance_rw, cannot bypass RLS, and stores only a SCRAM verifier
        row = conn.execute(
            """
            SELECT r.rolcanlogin, r.rolsuper, r.rolbypassrls, a.rolpassword,
                   pg_has_role(r.rolname, 'compliance_rw', 'MEMBER')
            FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid WHERE r.rolname = %s
            """,
            (APP_USER,),
        ).fetchone()
    assert row is not None
    can_login, is_super, bypass, stored, member = row
    assert can_login and member and not is_super and not bypass
    assert stored.startswith("SCRAM-SHA-256$") and "a-new-Password-123" not in stored


def test_the_owner_cannot_become_the_app_user(migrated_db: ProvisionedDatabase) -> None:
    with migrated_db.owner() as conn:
        owner = conn.execute("SELECT current_user").fetchone()
        assert owner is not None
        with pytest.raises(MigrationError, match="must not be"):
            migrate.ensure_app_user(conn, owner[0], "whatever")
