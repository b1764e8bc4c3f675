"""API-key administration through the admin handler: shown once, scoped to the caller's org."""

from __future__ import annotations

import json
from typing import Any

import pytest

from compliance.models.auth import Role
from compliance_tools.seed import create_key


@pytest.fixture
def admin(aws: None, org: str, db_env: dict[str, str], fresh_import: Any) -> Any:
    return fresh_import("functions.admin.api", db_env)


def call(module: Any, event: dict[str, Any], ctx: Any) -> tuple[int, dict[str, Any]]:
    response = module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"])


def test_create_shows_the_key_once_and_list_never_does(admin: Any, event: Any, lambda_context: Any) -> None:
    # When a system admin creates an ingest key
    status, created = call(admin, event("admin/create-api-key.json"), lambda_context)
    # Then the key is returned once, with its roles
    assert status == 201 and created["key"].startswith("cpk_") and created["roles"] == ["ingest"]
    # And listing shows the key's metadata but no secret
    status, listed = call(admin, event("admin/list-api-keys.json"), lambda_context)
    assert status == 200 and [k["id"] for k in listed["items"]] == [created["id"]]
    assert "key" not in listed["items"][0] and created["key"] not in json.dumps(listed)


def test_invalid_role_is_400(admin: Any, event: Any, lambda_context: Any) -> None:
    request = event("admin/create-api-key.json")
    request["body"] = json.dumps({"name": "x", "roles": ["root"]})
    status, body = call(admin, request, lambda_context)
    assert status == 400 and body["errors"][0]["field"].startswith("roles")


def test_only_system_admins_manage_keys(admin: Any, event: Any, lambda_context: Any) -> None:
    request = event("admin/list-api-keys.json")
    request["requestContext"]["authorizer"]["roles"] = "auditor,cost_admin"
    status, body = call(admin, request, lambda_context)
    assert status == 403 and body["title"] == "Forbidden"


def test_revoke_is_idempotent_and_another_orgs_key_is_404(
    admin: Any, migrated_db: Any, event: Any, lambda_context: Any
) -> None:
    # Given a key in the caller's org and one in another org
    _, created = call(admin, event("admin/create-api-key.json"), lambda_context)
    other_org = migrated_db.create_org("Other Org")
    with migrated_db.owner() as conn:
        create_key(conn, other_org, "theirs", [Role.SYSTEM_ADMIN])
        other_id = str(conn.execute("SELECT id FROM api_keys WHERE org_id = %s", (other_org,)).fetchone()[0])
    revoke = event("admin/revoke-api-key.json")
    # When the caller revokes its key twice
    revoke["path"] = f"/v1/api-keys/{created['id']}/revoke"
    revoke["pathParameters"] = {"key_id": created["id"]}
    status1, first = call(admin, revoke, lambda_context)
    status2, second = call(admin, revoke, lambda_context)
    # Then both succeed and the first revocation time stands
    assert status1 == status2 == 200 and first["revoked_at"] and first["revoked_at"] == second["revoked_at"]
    # And the other org's key is invisible: 404 on read and revoke
    revoke["path"] = f"/v1/api-keys/{other_id}/revoke"
    revoke["pathParameters"] = {"key_id": other_id}
    status, _ = call(admin, revoke, lambda_context)
    assert status == 404
    get = event("admin/list-api-keys.json")
    get.update(
        path=f"/v1/api-keys/{other_id}", resource="/v1/api-keys/{key_id}", pathParameters={"key_id": other_id}
    )
    status, _ = call(admin, get, lambda_context)
    assert status == 404
