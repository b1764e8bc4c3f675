"""Migration 0008: the application role may erase a subject (delete it, clear its usage rows' link)
and nothing more; rolling 0008 back takes exactly that away. Step SQL refuses names not in the plan."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from compliance.db import migrate
from compliance.db.dsr_erasure import apply_step
from compliance.dsr.erasure_plan import ColumnErasure, TableErasure
from compliance.errors import DataAccessError
from tests.conftest import MIGRATIONS_DIR, ProvisionedDatabase

ROLE = "compliance_rw"


def privileges(conn: psycopg.Connection[Any]) -> dict[str, bool]:
    row = conn.execute(
        "SELECT has_table_privilege(%(r)s, 'subjects', 'DELETE'),"
        " has_column_privilege(%(r)s, 'usage_records', 'subject_id', 'UPDATE'),"
        " has_table_privilege(%(r)s, 'usage_records', 'DELETE'),"
        " has_column_privilege(%(r)s, 'subjects', 'external_id', 'UPDATE'),"
        " has_column_privilege(%(r)s, 'usage_records', 'cost', 'UPDATE'),"
        " has_table_privilege(%(r)s, 'data_keys', 'DELETE')",
        {"r": ROLE},
    ).fetchone()
    assert row is not None
    names = [
        "delete_subjects",
        "clear_usage_link",
        "delete_usage",
        "update_external_id",
        "update_cost",
        "delete_keys",
    ]
    return dict(zip(names, row, strict=True))


def test_0008_grants_exactly_what_erasure_needs_and_its_rollback_removes_it(
    empty_db: ProvisionedDatabase,
) -> None:
    with empty_db.owner() as conn:
        # Given the migrations up to 0007: the application may neither delete subjects nor clear links
        migrate.up(conn, MIGRATIONS_DIR, target=7)
        assert not any(privileges(conn).values())

        # When 0008 is applied / Then exactly the two erasure privileges exist
        assert migrate.up(conn, MIGRATIONS_DIR, target=8) == ["0008_dsr_erasure"]
        assert privileges(conn) == {
            "delete_subjects": True,
            "clear_usage_link": True,
            "delete_usage": False,
            "update_external_id": False,
            "update_cost": False,
            "delete_keys": False,
        }

        # When 0008 is rolled back / Then both are gone again
        assert migrate.down(conn, MIGRATIONS_DIR, steps=1) == ["0008_dsr_erasure"]
        assert not any(privileges(conn).values())


def test_the_application_still_cannot_change_usage_figures(migrated_db: ProvisionedDatabase) -> None:
    # Given an organisation, as the application
    org = migrated_db.create_org()

    # When it tries to change a usage figure or delete a usage row / Then the database refuses
    for statement in ("UPDATE usage_records SET cost = 0", "DELETE FROM usage_records"):
        with pytest.raises(DataAccessError) as caught, migrated_db.app.tenant(org) as conn:
            conn.execute(statement)
        assert getattr(caught.value.__cause__, "sqlstate", None) == "42501"  # insufficient_privilege


def step(table: str, link: str, *columns: str) -> TableErasure:
    cols = tuple(ColumnErasure(c, "anonymize", "set_null", True, False) for c in columns)
    return TableErasure(table=table, subject_link=link, action="update", columns=cols)


@pytest.mark.parametrize(
    "bad",
    [
        step('usage_records"; DROP TABLE subjects; --', "subject_id", "org_id", "subject_id"),
        step("usage_records", "subject_id", "subject_id"),  # no org_id column to scope by
        step("usage_records", "Subject Id", "org_id", "Subject Id"),
    ],
)
def test_step_sql_refuses_names_outside_the_catalog_pattern(bad: TableErasure) -> None:
    # Given a step whose names are not catalog identifiers / When applied / Then nothing is sent
    with pytest.raises(ValueError):
        apply_step(None, bad, uuid.uuid4(), uuid.uuid4())  # type: ignore[arg-type]


def test_driver_errors_leave_as_data_access_errors(migrated_db: ProvisionedDatabase) -> None:
    # Given a step naming a table that does not exist
    missing = step("no_such_table", "subject_id", "org_id", "subject_id")
    org = migrated_db.create_org()

    # When applied / Then a DataAccessError with the SQLSTATE leaves, not a driver error
    with pytest.raises(DataAccessError) as caught, migrated_db.app.tenant(org) as conn:
        apply_step(conn, missing, org, uuid.uuid4())
    assert getattr(caught.value.__cause__, "sqlstate", None) == "42P01"
