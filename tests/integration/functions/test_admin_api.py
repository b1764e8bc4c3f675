"""API-key administration through the admin handler: shown once, scoped to the caller's org."""

from __future__ import annotations

import json
from typing import Any

import pytest

from compliance.audit.events import AuditEventIn, AuditResult
from compliance.audit.sink import MemoryAuditSink
from compliance.models.auth import Role
from compliance_tools.seed import create_key

CALLER_KEY = "6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f00aa"  # the key id in the sample events' authorizer context


@pytest.fixture
def admin(aws: None, org: str, db_env: dict[str, str], audited: Any, field_key: str) -> Any:
    return audited("functions.admin.api", {**db_env, "FIELD_KEY_ID": field_key})


def requests(audit: MemoryAuditSink) -> list[tuple[str, Any]]:
    """(resource, status) of each api.request event, in order."""
    return [(e.resource, e.details["status"]) for e in audit.events if e.event_type == "api.request"]


def of_type(audit: MemoryAuditSink, event_type: str) -> list[AuditEventIn]:
    return [e for e in audit.events if e.event_type == event_type]


def key_count(migrated_db: Any) -> int:
    with migrated_db.owner() as conn:
        return int(conn.execute("SELECT count(*) FROM api_keys").fetchone()[0])


def call(module: Any, event: dict[str, Any], ctx: Any) -> tuple[int, dict[str, Any]]:
    response = module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"])


def test_create_shows_the_key_once_and_list_never_does(
    admin: Any, audit: MemoryAuditSink, org: str, event: Any, lambda_context: Any
) -> None:
    # When a system admin creates an ingest key
    status, created = call(admin, event("admin/create-api-key.json"), lambda_context)
    # Then the key is returned once, with its roles
    assert status == 201 and created["key"].startswith("cpk_") and created["roles"] == ["ingest"]
    # And listing shows the key's metadata but no secret
    status, listed = call(admin, event("admin/list-api-keys.json"), lambda_context)
    assert status == 200 and [k["id"] for k in listed["items"]] == [created["id"]]
    assert "key" not in listed["items"][0] and created["key"] not in json.dumps(listed)
    # And the audit trail has the creation (before its call's event) and one api.request per call
    assert [e.event_type for e in audit.events] == ["api_key.created", "api.request", "api.request"]
    (made,) = of_type(audit, "api_key.created")
    assert made.resource == f"api_key:{created['id']}" and made.actor == f"api_key:{CALLER_KEY}"
    assert str(made.org_id) == org and made.details == {"roles": ["ingest"], "expires_at": None}
    assert made.request_id == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef" and str(made.ip_address) == "127.0.0.1"
    assert requests(audit) == [("route:POST:/v1/api-keys", 201), ("route:GET:/v1/api-keys", 200)]
    # And no event carries the key's secret, its plaintext or its (free-text) name
    serialized = json.dumps([e.model_dump(mode="json") for e in audit.events])
    secret = created["key"].split("_", 2)[2]
    assert created["key"] not in serialized and secret not in serialized
    assert created["name"] not in serialized


def test_audit_trail_down_refuses_creation_and_leaves_no_key(
    admin: Any, audit: MemoryAuditSink, migrated_db: Any, event: Any, lambda_context: Any
) -> None:
    # Given the audit trail refuses events
    audit.fail = True
    # When a system admin creates a key
    status, body = call(admin, event("admin/create-api-key.json"), lambda_context)
    # Then it is refused with the audit problem, without the key, and the key does not exist
    assert status == 503 and body["title"] == "Audit trail unavailable" and "key" not in body
    assert key_count(migrated_db) == 0


def test_audit_trail_down_refuses_revocation(
    admin: Any, audit: MemoryAuditSink, migrated_db: Any, event: Any, lambda_context: Any
) -> None:
    # Given a key, and then an audit trail that refuses events
    _, created = call(admin, event("admin/create-api-key.json"), lambda_context)
    audit.fail = True
    revoke = event("admin/revoke-api-key.json")
    revoke["path"] = f"/v1/api-keys/{created['id']}/revoke"
    revoke["pathParameters"] = {"key_id": created["id"]}
    # When it is revoked
    status, _ = call(admin, revoke, lambda_context)
    # Then the revocation is refused and rolled back: the key still works
    assert status == 503
    with migrated_db.owner() as conn:
        row = conn.execute("SELECT revoked_at FROM api_keys WHERE id = %s", (created["id"],)).fetchone()
    assert row == (None,)


def test_audit_trail_down_refuses_reads_too(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    _, created = call(admin, event("admin/create-api-key.json"), lambda_context)
    audit.fail = True
    status, body = call(admin, event("admin/list-api-keys.json"), lambda_context)
    assert status == 503 and created["id"] not in json.dumps(body)


def test_invalid_role_is_400(
    admin: Any, audit: MemoryAuditSink, migrated_db: Any, event: Any, lambda_context: Any
) -> None:
    request = event("admin/create-api-key.json")
    request["body"] = json.dumps({"name": "x", "roles": ["root"]})
    status, body = call(admin, request, lambda_context)
    assert status == 400 and body["errors"][0]["field"].startswith("roles")
    assert requests(audit) == [("route:POST:/v1/api-keys", 400)] and len(audit.events) == 1
    assert audit.events[0].result is AuditResult.FAILURE and key_count(migrated_db) == 0


def test_only_system_admins_manage_keys(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    request = event("admin/list-api-keys.json")
    request["requestContext"]["authorizer"]["roles"] = "auditor,cost_admin"
    status, body = call(admin, request, lambda_context)
    assert status == 403 and body["title"] == "Forbidden"
    assert requests(audit) == [("route:GET:/v1/api-keys", 403)] and len(audit.events) == 1
    assert audit.events[0].result is AuditResult.DENIED and audit.events[0].actor == f"api_key:{CALLER_KEY}"


def test_revoke_is_idempotent_and_another_orgs_key_is_404(
    admin: Any, audit: MemoryAuditSink, migrated_db: Any, event: Any, lambda_context: Any
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
    # And the audit trail has one revocation (the change) and one api.request per call
    (revoked,) = of_type(audit, "api_key.revoked")
    assert revoked.resource == f"api_key:{created['id']}" and revoked.action == "revoke"
    revoke_route = "route:POST:/v1/api-keys/:key_id/revoke"
    assert requests(audit) == [
        ("route:POST:/v1/api-keys", 201),
        (revoke_route, 200),
        (revoke_route, 200),
        (revoke_route, 404),
        ("route:GET:/v1/api-keys/:key_id", 404),
    ]
    assert other_id not in json.dumps([e.model_dump(mode="json") for e in audit.events])
