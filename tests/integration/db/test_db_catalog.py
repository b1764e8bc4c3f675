"""The data catalog against a real PostgreSQL: it covers the live schema exactly, loads idempotently,
is read-only for the application, and the deploy loads it after migrating."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from compliance.catalog import Catalog, catalog_path, load_catalog
from compliance.db import catalog as db_catalog
from compliance.errors import DataAccessError
from tests.conftest import APP_PASSWORD, APP_USER, MIGRATIONS_DIR, ProvisionedDatabase

REGION = "us-east-1"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(catalog_path(MIGRATIONS_DIR))


def stored(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM data_catalog ORDER BY table_name, column_name").fetchall()


def test_every_column_of_the_live_schema_has_exactly_one_catalog_entry(
    migrated_db: ProvisionedDatabase, catalog: Catalog
) -> None:
    # Given the schema after every migration and the repository's catalog
    with migrated_db.owner() as conn:
        # When compared (information_schema.columns, schema public, base tables)
        drift = db_catalog.schema_drift(conn, catalog)

    # Then no column lacks an entry and no entry names a missing column
    assert not drift.undocumented, "columns without an entry in migrations/catalog.toml: " + ", ".join(
        drift.undocumented
    )
    assert not drift.unknown, "catalog entries naming no column of the schema: " + ", ".join(drift.unknown)


def test_drift_names_undocumented_columns_and_entries_without_a_column(
    migrated_db: ProvisionedDatabase, catalog: Catalog
) -> None:
    # Given a column no migration of the repository made, a view (not a base table), and an entry
    # for a column that does not exist
    ghost = catalog.entries[0].model_copy(update={"column_name": "ghost"})
    extended = catalog.model_copy(update={"entries": (*catalog.entries, ghost)})
    with migrated_db.owner() as conn:
        conn.execute("ALTER TABLE subjects ADD COLUMN nickname text")
        conn.execute("CREATE VIEW subject_nicknames AS SELECT nickname FROM subjects")

        # When compared
        drift = db_catalog.schema_drift(conn, extended)

    # Then both are named, as table.column; the view is not a table to catalogue
    assert drift.undocumented == ["subjects.nickname"]
    assert drift.unknown == [f"{ghost.table_name}.ghost"]
    assert drift


def test_sync_loads_the_file_and_is_idempotent(migrated_db: ProvisionedDatabase, catalog: Catalog) -> None:
    with migrated_db.owner() as conn:
        # Given a migrated database before the deploy loads the catalog (the table is empty)
        conn.execute("DELETE FROM data_catalog")
        assert stored(conn) == []

        # When synced twice
        first = db_catalog.sync(conn, catalog)
        after_first = stored(conn)
        second = db_catalog.sync(conn, catalog)

        # Then both wrote every entry, and the second changed nothing
        assert first == second == len(catalog.entries)
        assert stored(conn) == after_first
        assert db_catalog.list_entries(conn) == list(catalog.entries)


def test_sync_replaces_entries_the_file_no_longer_has(
    migrated_db: ProvisionedDatabase, catalog: Catalog
) -> None:
    # Given a loaded catalog
    smaller = catalog.model_copy(update={"entries": catalog.entries[1:]})
    with migrated_db.owner() as conn:
        db_catalog.sync(conn, catalog)

        # When a catalog without its first entry is synced
        db_catalog.sync(conn, smaller)

        # Then the dropped entry is gone and the rest is unchanged
        assert db_catalog.list_entries(conn) == list(smaller.entries)


def test_a_failing_sync_leaves_the_previous_catalog_in_place(
    migrated_db: ProvisionedDatabase, catalog: Catalog
) -> None:
    # Given a loaded catalog, and one whose last entry the table's constraints refuse
    bad = catalog.entries[-1].model_copy(update={"legal_basis": None, "erasure": "retain_legal_basis"})
    broken = catalog.model_copy(update={"entries": (*catalog.entries[:-1], bad)})
    with migrated_db.owner() as conn:
        db_catalog.sync(conn, catalog)

        # When it is synced / Then a domain error, and the old rows all remain (one transaction)
        with pytest.raises(DataAccessError, match="23514"):
            db_catalog.sync(conn, broken)
        assert db_catalog.list_entries(conn) == list(catalog.entries)


def test_the_application_reads_the_catalog_but_cannot_write_it(
    migrated_db: ProvisionedDatabase, catalog: Catalog
) -> None:
    # Given a loaded catalog
    with migrated_db.owner() as conn:
        db_catalog.sync(conn, catalog)

    # When the application reads it (no organisation scope needed: not tenant data)
    with migrated_db.app.unscoped() as conn:
        entries = db_catalog.list_entries(conn)
        personal = db_catalog.personal_data(conn)
        usage = db_catalog.personal_data(conn, table="usage_records")

    # Then it sees every entry, the personal ones, and those of one table
    assert entries == list(catalog.entries)
    assert personal == catalog.personal_data() and all(e.personal for e in personal)
    assert [e.column_name for e in usage] == ["client_ip", "completion_text", "prompt_text", "subject_id"]

    # When it tries to change it / Then every write is refused
    for statement in (
        "INSERT INTO data_catalog SELECT * FROM data_catalog LIMIT 1",
        "UPDATE data_catalog SET personal = false",
        "DELETE FROM data_catalog",
        "TRUNCATE data_catalog",
    ):
        with (
            psycopg.connect(migrated_db.app_dsn, password=APP_PASSWORD) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(statement)
    # ... and so is the library's sync, as a domain error
    with migrated_db.app.transaction() as conn, pytest.raises(DataAccessError, match="42501"):
        db_catalog.sync(conn, catalog)
    with migrated_db.owner() as conn:
        assert len(stored(conn)) == len(catalog.entries)


# -- deploy -----------------------------------------------------------------------------------


def test_deploy_loads_the_catalog_after_migrating(
    aws: None, empty_db: ProvisionedDatabase, catalog: Catalog
) -> None:
    import boto3

    from compliance.config import MigrationSettings
    from compliance.deploy import apply_migrations

    # Given an empty database and the secrets the stack creates
    sm = boto3.client("secretsmanager", region_name=REGION)
    master = sm.create_secret(
        Name="master",
        SecretString=json.dumps(
            {"username": empty_db.endpoint.superuser, "password": empty_db.endpoint.password or "local"}
        ),
    )["ARN"]
    app = sm.create_secret(Name="app", SecretString=json.dumps({"password": APP_PASSWORD}))["ARN"]
    settings = MigrationSettings(
        db_host=empty_db.endpoint.host,
        db_port=empty_db.endpoint.port,
        db_name=empty_db.name,
        db_secret_arn=master,
        db_app_secret_arn=app,
        db_app_user=APP_USER,
        migrations_dir=str(MIGRATIONS_DIR),
    )

    # When the deploy runs
    report = apply_migrations(settings)

    # Then the catalog table holds the file's entries, readable by the application
    assert report.catalog_entries == len(catalog.entries)
    with psycopg.connect(empty_db.app_dsn, password=APP_PASSWORD) as conn:
        assert db_catalog.list_entries(conn) == list(catalog.entries)
