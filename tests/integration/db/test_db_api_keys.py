"""API-key repository: tenant-scoped CRUD and the pre-authentication lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from compliance.auth.keys import generate_api_key, parse_api_key, verify_secret
from compliance.db import api_keys
from compliance.models.auth import ApiKeyOut, Role
from tests.conftest import ProvisionedDatabase

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def new_key(
    db: ProvisionedDatabase, org_id: UUID, name: str = "ci", roles: list[Role] | None = None
) -> tuple[ApiKeyOut, str]:
    generated = generate_api_key()
    with db.app.tenant(org_id) as conn:
        stored = api_keys.insert_api_key(
            conn,
            org_id=org_id,
            name=name,
            prefix=generated.prefix,
            secret_hash=generated.secret_hash,
            roles=roles or [Role.COST_VIEWER, Role.INGEST],
            expires_at=T0 + timedelta(days=30),
        )
    return stored, generated.plaintext


def test_insert_then_list_and_get(migrated_db: ProvisionedDatabase) -> None:
    # Given an organisation
    org = migrated_db.create_org()

    # When two keys are created
    first, _ = new_key(migrated_db, org, "first")
    second, _ = new_key(migrated_db, org, "second", [Role.DPO])

    # Then they are listed in creation order and fetched by id, without secrets
    with migrated_db.app.tenant(org) as conn:
        listed = api_keys.list_api_keys(conn)
        fetched = api_keys.get_api_key(conn, second.id)
        missing = api_keys.get_api_key(conn, UUID(int=0))
    assert [k.name for k in listed] == ["first", "second"]
    assert fetched == second and fetched.roles == [Role.DPO]
    assert first.roles == [Role.COST_VIEWER, Role.INGEST]
    assert first.expires_at == T0 + timedelta(days=30) and first.revoked_at is None
    assert missing is None


def test_lookup_by_prefix_works_before_the_org_is_known(migrated_db: ProvisionedDatabase) -> None:
    # Given a key of some organisation
    org = migrated_db.create_org()
    stored, plaintext = new_key(migrated_db, org)
    prefix, secret = parse_api_key(plaintext)

    # When it is looked up by prefix without an organisation in scope
    with migrated_db.app.unscoped() as conn:
        found = api_keys.find_key_for_auth(conn, prefix)
        unknown = api_keys.find_key_for_auth(conn, "zzzzzzzzzzzz")
        direct = conn.execute("SELECT count(*) AS n FROM api_keys").fetchone()

    # Then the definer function returns what verification needs, the table itself stays hidden
    assert found is not None and unknown is None
    assert (found.id, found.org_id) == (stored.id, org)
    assert found.roles == frozenset({Role.COST_VIEWER, Role.INGEST})
    assert verify_secret(secret, found.secret_hash)
    assert direct == {"n": 0}
    assert found.secret_hash.hex() not in repr(found)


def test_the_lookup_function_is_not_executable_by_other_roles(migrated_db: ProvisionedDatabase) -> None:
    # Given a role that is not in compliance_rw
    with migrated_db.owner() as conn:
        conn.execute("DROP ROLE IF EXISTS outsider")
        conn.execute("CREATE ROLE outsider")
        try:
            conn.execute("SET ROLE outsider")
            # When it calls the lookup function / Then it is refused
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM auth_find_api_key('abcdefghijkl')")
        finally:
            conn.execute("RESET ROLE")
            conn.execute("DROP ROLE outsider")


def test_the_lookup_function_pins_its_search_path(migrated_db: ProvisionedDatabase) -> None:
    with migrated_db.owner() as conn:
        row = conn.execute(
            "SELECT prosecdef, proconfig FROM pg_proc WHERE proname = 'auth_find_api_key'"
        ).fetchone()
    assert row == (True, ["search_path=pg_catalog, pg_temp"])


def test_revoking_is_idempotent(migrated_db: ProvisionedDatabase) -> None:
    # Given a key
    org = migrated_db.create_org()
    stored, _ = new_key(migrated_db, org)

    # When it is revoked twice, at different times
    with migrated_db.app.tenant(org) as conn:
        first = api_keys.revoke_api_key(conn, stored.id, T0)
        second = api_keys.revoke_api_key(conn, stored.id, T0 + timedelta(hours=1))

    # Then the first revocation time stays, and the auth lookup sees it
    assert first is not None and second is not None
    assert first.revoked_at == second.revoked_at == T0
    with migrated_db.app.unscoped() as conn:
        found = api_keys.find_key_for_auth(conn, stored.prefix)
    assert found is not None and found.revoked_at == T0


def test_revoking_a_key_of_another_org_finds_nothing(migrated_db: ProvisionedDatabase) -> None:
    # Given a key of org A
    org_a, org_b = migrated_db.create_org("A"), migrated_db.create_org("B")
    stored, _ = new_key(migrated_db, org_a)

    # When org B tries to revoke it / Then it is not found and stays active
    with migrated_db.app.tenant(org_b) as conn:
        assert api_keys.revoke_api_key(conn, stored.id, T0) is None
        assert api_keys.get_api_key(conn, stored.id) is None
    with migrated_db.app.tenant(org_a) as conn:
        key = api_keys.get_api_key(conn, stored.id)
    assert key is not None and key.revoked_at is None


def test_last_use_only_moves_forward(migrated_db: ProvisionedDatabase) -> None:
    org = migrated_db.create_org()
    stored, _ = new_key(migrated_db, org)
    with migrated_db.app.tenant(org) as conn:
        api_keys.mark_api_key_used(conn, stored.id, T0 + timedelta(minutes=5))
        api_keys.mark_api_key_used(conn, stored.id, T0)
        row = conn.execute("SELECT last_used_at FROM api_keys WHERE id = %s", (stored.id,)).fetchone()
    assert row == {"last_used_at": T0 + timedelta(minutes=5)}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("roles", ["superuser"]),
        ("roles", []),
        ("roles", ["dpo", None]),
        ("prefix", "UPPER_case"),
        ("secret_hash", b"too short"),
    ],
)
def test_the_schema_rejects_invalid_keys(
    migrated_db: ProvisionedDatabase, column: str, value: object
) -> None:
    # Given otherwise valid values / When one column is invalid / Then a CHECK refuses the row
    values: dict[str, object] = {
        "org_id": migrated_db.create_org(),
        "name": "bad",
        "prefix": "abcdefghijkl",
        "secret_hash": b"\x00" * 32,
        "roles": ["ingest"],
    } | {column: value}
    with migrated_db.owner() as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO api_keys (org_id, name, prefix, secret_hash, roles)"
            " VALUES (%(org_id)s, %(name)s, %(prefix)s, %(secret_hash)s, %(roles)s)",
            values,
        )


def test_prefixes_are_unique_across_organisations(migrated_db: ProvisionedDatabase) -> None:
    org_a, org_b = migrated_db.create_org("A"), migrated_db.create_org("B")
    stored, _ = new_key(migrated_db, org_a)
    with migrated_db.owner() as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO api_keys (org_id, name, prefix, secret_hash, roles)"
            " VALUES (%s, 'x', %s, %s, '{ingest}')",
            (org_b, stored.prefix, b"\x00" * 32),
        )
