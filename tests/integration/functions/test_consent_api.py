"""POST /v1/consents, POST /v1/consents/{id}/revoke, GET /v1/subjects/{id}/consents via the admin handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from compliance.audit.sink import MemoryAuditSink


@pytest.fixture
def admin(aws: None, org: str, db_env: dict[str, str], audited: Any, field_key: str) -> Any:
    return audited("functions.admin.api", {**db_env, "FIELD_KEY_ID": field_key})


def call(module: Any, request: dict[str, Any], ctx: Any) -> tuple[int, Any]:
    response = module.handler(request, ctx)
    return response["statusCode"], json.loads(response["body"])


def grant(event: Any, **changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = event("admin/post-consent.json")
    body = json.loads(request["body"]) | changes
    request["body"] = json.dumps({k: v for k, v in body.items() if v is not None})
    return request


def revoke(event: Any, consent_id: str, roles: str = "dpo") -> dict[str, Any]:
    request: dict[str, Any] = event("admin/revoke-consent.json")
    request["path"] = f"/v1/consents/{consent_id}/revoke"
    request["pathParameters"] = {"consent_id": consent_id}
    request["requestContext"]["authorizer"]["roles"] = roles
    return request


def history(event: Any, subject: str = "user-42") -> dict[str, Any]:
    request: dict[str, Any] = event("admin/get-subject-consents.json")
    request["path"] = f"/v1/subjects/{subject}/consents"
    request["pathParameters"] = {"subject_id": subject}
    return request


def test_a_grant_is_recorded_audited_and_superseded_by_a_later_one(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # When the platform's key records a grant for a subject it never sent before
    status, first = call(admin, grant(event), lambda_context)
    # Then it is stored (the subject created), active, and audited without the platform's subject id
    assert status == 201 and first["active"] is True and first["subject_id"] == "user-42"
    (granted,) = [e for e in audit.events if e.event_type == "consent.granted"]
    assert granted.resource == f"consent:{first['consent_id']}"
    assert granted.details["purpose"] == "prompt_logging" and "user-42" not in json.dumps(granted.details)

    # When a newer notice version is accepted
    status, second = call(admin, grant(event, notice_version="privacy-2026-11"), lambda_context)
    assert status == 201

    # Then the history holds both, newest first, and only the newest decides
    status, body = call(admin, history(event), lambda_context)
    assert status == 200
    assert [(i["notice_version"], i["active"]) for i in body["items"]] == [
        ("privacy-2026-11", True),
        ("privacy-2026-09", False),
    ]
    assert body["items"][0]["consent_id"] == second["consent_id"]


def test_a_revocation_is_final_audited_and_kept_in_the_history(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    _, granted = call(admin, grant(event), lambda_context)
    # When the DPO revokes it
    status, revoked = call(admin, revoke(event, granted["consent_id"]), lambda_context)
    # Then it is inactive, dated, audited, and still in the history
    assert status == 200 and revoked["active"] is False and revoked["revoked_at"] is not None
    assert [e.event_type for e in audit.events if e.event_type.startswith("consent.")] == [
        "consent.granted",
        "consent.revoked",
    ]
    _, body = call(admin, history(event), lambda_context)
    assert [i["revoked_at"] is not None for i in body["items"]] == [True]
    # And revoking again is a conflict that changes nothing
    status, problem = call(admin, revoke(event, granted["consent_id"]), lambda_context)
    assert status == 409, problem
    assert len([e for e in audit.events if e.event_type == "consent.revoked"]) == 1


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"purpose": "selling_data"}, 400),
        ({"legal_basis": "because"}, 400),
        ({"notice_version": "has spaces"}, 400),
        ({"colour": "red"}, 400),
        ({"granted_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, 400),
        ({"granted_at": "2026-01-02T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"}, 400),
    ],
)
def test_bad_grants_are_refused_and_store_nothing(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any, changes: dict[str, Any], status: int
) -> None:
    got, problem = call(admin, grant(event, **changes), lambda_context)
    assert got == status, problem
    assert not [e for e in audit.events if e.event_type == "consent.granted"]
    assert call(admin, history(event), lambda_context)[0] == 404  # no subject was created either


def test_roles_unknown_ids_and_other_orgs(
    admin: Any, migrated_db: Any, event: Any, lambda_context: Any
) -> None:
    # A cost viewer may neither record nor read consent
    request = grant(event)
    request["requestContext"]["authorizer"]["roles"] = "cost_viewer"
    assert call(admin, request, lambda_context)[0] == 403
    viewer = history(event)
    viewer["requestContext"]["authorizer"]["roles"] = "cost_viewer"
    assert call(admin, viewer, lambda_context)[0] == 403
    # Unknown record and unknown subject: 404
    assert call(admin, revoke(event, "3b1f0c52-0d0e-4d7b-9a43-1c1f5d3f0c99"), lambda_context)[0] == 404
    assert call(admin, history(event, "nobody"), lambda_context)[0] == 404
    # Another organisation's record: 404, as if it did not exist
    with migrated_db.owner() as conn:
        other = conn.execute("INSERT INTO organisations (name) VALUES ('Other') RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO subjects (org_id, external_id) VALUES (%s, 'user-42')", (other,))
        foreign = conn.execute(
            "INSERT INTO consents"
            " (org_id, subject_id, purpose, legal_basis, notice_version, source, granted_at)"
            " SELECT org_id, id, 'analytics', 'consent', 'n-1', 'test', now() FROM subjects WHERE org_id = %s"
            " RETURNING consent_id",
            (other,),
        ).fetchone()[0]
    assert call(admin, revoke(event, str(foreign)), lambda_context)[0] == 404


def test_history_cannot_be_rewritten_not_even_by_the_owner(
    admin: Any, migrated_db: Any, event: Any, lambda_context: Any
) -> None:
    _, granted = call(admin, grant(event), lambda_context)
    with migrated_db.owner() as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute(
            "UPDATE consents SET purpose = 'analytics' WHERE consent_id = %s", (granted["consent_id"],)
        )
    with migrated_db.owner() as conn:
        conn.execute("UPDATE consents SET revoked_at = now() WHERE consent_id = %s", (granted["consent_id"],))
    with migrated_db.owner() as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("UPDATE consents SET revoked_at = now() WHERE consent_id = %s", (granted["consent_id"],))
