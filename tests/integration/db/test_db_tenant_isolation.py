"""Row-level security: the application role sees and writes only the organisation in scope."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from compliance.auth.keys import generate_api_key
from compliance.db import api_keys, usage
from compliance.errors import DataAccessError
from compliance.models.auth import Role
from compliance.models.usage import UsageRecordIn
from tests.conftest import APP_PASSWORD, APP_USER, ProvisionedDatabase

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def fake_seal(column: str, value: str, subject: uuid.UUID | None) -> str:
    """Stands in for field encryption: the database only checks the ciphertext prefix."""
    return f"enc:test:{value}"


def insert(*args: Any) -> int:
    return usage.insert_usage_records(*args, seal=fake_seal)


TENANT_TABLES = ("organisations", "api_keys", "subjects", "usage_records")


def record(request_id: str, subject: str | None = "subject-1") -> UsageRecordIn:
    return UsageRecordIn(
        request_id=request_id,
        subject_id=subject,
        provider="openai",
        model="gpt-4o",
        prompt_tokens=10,
        completion_tokens=5,
        cost=Decimal("0.01"),
        occurred_at=NOW,
    )


def seed(db: ProvisionedDatabase, org_id: uuid.UUID, label: str) -> None:
    key = generate_api_key()
    with db.app.tenant(org_id) as conn:
        api_keys.insert_api_key(
            conn,
            org_id=org_id,
            name=f"{label} key",
            prefix=key.prefix,
            secret_hash=key.secret_hash,
            roles=[Role.INGEST],
            expires_at=None,
        )
        insert(conn, org_id, uuid.uuid4(), NOW, [record(f"{label}-1"), record(f"{label}-2")])


@pytest.fixture
def two_orgs(migrated_db: ProvisionedDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    org_a, org_b = migrated_db.create_org("A"), migrated_db.create_org("B")
    seed(migrated_db, org_a, "a")
    seed(migrated_db, org_b, "b")
    return org_a, org_b


def visible(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row["n"])


def test_each_org_sees_only_its_own_rows(
    migrated_db: ProvisionedDatabase, two_orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, org_b = two_orgs
    # Given two organisations with keys, subjects and usage / When org A reads
    with migrated_db.app.tenant(org_a) as conn:
        counts = {table: visible(conn, table) for table in TENANT_TABLES}
        org_ids = {row["org_id"] for row in conn.execute("SELECT org_id FROM usage_records").fetchall()}
        keys = api_keys.list_api_keys(conn)

    # Then it sees its own rows only
    assert counts == {"organisations": 1, "api_keys": 1, "subjects": 1, "usage_records": 2}
    assert org_ids == {org_a}
    assert [k.name for k in keys] == ["a key"]
    # ... while the owner sees both organisations' data.
    with migrated_db.owner() as conn:
        assert conn.execute("SELECT count(DISTINCT org_id) FROM usage_records").fetchone() == (2,)
    assert org_b != org_a


def test_without_an_org_every_tenant_table_is_empty(
    migrated_db: ProvisionedDatabase, two_orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    # Given data for two organisations / When read without an organisation in scope
    with migrated_db.app.unscoped() as conn:
        counts = {table: visible(conn, table) for table in TENANT_TABLES}

    # Then nothing is visible
    assert counts == dict.fromkeys(TENANT_TABLES, 0)


def test_the_org_setting_does_not_outlive_its_transaction(
    migrated_db: ProvisionedDatabase, two_orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    # Given a pooled connection that served org A
    with migrated_db.app.tenant(two_orgs[0]) as conn:
        assert visible(conn, "usage_records") == 2
    # When the same pool serves an unscoped transaction / Then it sees nothing
    with migrated_db.app.unscoped() as conn:
        assert visible(conn, "usage_records") == 0


def test_an_org_cannot_write_rows_of_another(
    migrated_db: ProvisionedDatabase, two_orgs: tuple[uuid.UUID, uuid.UUID]
) -> None:
    org_a, org_b = two_orgs
    # Given org A in scope / When usage for org B is inserted / Then the policy rejects it
    with pytest.raises(DataAccessError) as caught, migrated_db.app.tenant(org_a) as conn:
        insert(conn, org_b, uuid.uuid4(), NOW, [record("sneaky", subject=None)])
    assert caught.value.extra["sqlstate"] == "42501"  # insufficient_privilege: row violates policy

    # And an update cannot reach org B's keys either (no row matches)
    with migrated_db.app.tenant(org_a) as conn:
        updated = conn.execute("UPDATE api_keys SET revoked_at = now() WHERE org_id = %s", (org_b,))
        assert updated.rowcount == 0
    with migrated_db.owner() as conn:
        assert conn.execute("SELECT count(*) FROM usage_records WHERE request_id = 'sneaky'").fetchone() == (
            0,
        )


@pytest.mark.parametrize(
    "statement",
    [
        "SET row_security = off; SELECT count(*) FROM usage_records",
        "ALTER TABLE usage_records DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON usage_records",
        "SET ROLE postgres",
        "INSERT INTO organisations (name) VALUES ('rogue')",
        "UPDATE usage_records SET cost = 0",
        "DELETE FROM usage_records",
        "UPDATE api_keys SET roles = '{system_admin}'",
        "TRUNCATE usage_records",
        "CREATE TABLE public.rogue (id int)",
    ],
)
def test_the_app_role_cannot_bypass_or_widen_its_access(
    migrated_db: ProvisionedDatabase, two_orgs: tuple[uuid.UUID, uuid.UUID], statement: str
) -> None:
    # Given the application role connected with an org in scope
    with psycopg.connect(migrated_db.app_dsn, password=APP_PASSWORD, autocommit=True) as conn:
        conn.execute("SELECT set_config('app.org_id', %s, false)", (str(two_orgs[0]),))
        # When it tries to switch RLS off, take another role or write what it must not
        # Then PostgreSQL refuses
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_app_role_has_no_attribute_that_bypasses_rls(migrated_db: ProvisionedDatabase) -> None:
    with migrated_db.owner() as conn:
        row = conn.execute(
            """
            SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,
                   EXISTS (SELECT 1 FROM pg_tables WHERE tableowner = %(u)s)
            FROM pg_roles WHERE rolname = %(u)s
            """,
            {"u": APP_USER},
        ).fetchone()
        forced = conn.execute(
            "SELECT bool_and(relrowsecurity) FROM pg_class WHERE relname = ANY(%s)", (list(TENANT_TABLES),)
        ).fetchone()
    assert row == (False, False, False, False, False)
    assert forced == (True,)
