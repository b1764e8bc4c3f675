"""GET /v1/usage/{request_id} (decrypted for content roles) and /v1/settings/pii, via the admin handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from compliance.audit.sink import MemoryAuditSink
from compliance.crypto.ledger import MemoryShredLedger
from compliance.crypto.shredding import shred

INGESTED = "ingest/sqs-usage-personal-data.json"


@pytest.fixture
def admin(aws: None, org: str, db_env: dict[str, str], audited: Any, field_key: str) -> Any:
    return audited("functions.admin.api", {**db_env, "FIELD_KEY_ID": field_key})


@pytest.fixture
def ingested(processor: Any, event: Any, lambda_context: Any, org: str, grant_consent: Any) -> None:
    """The personal-data sample message, stored by the processor (org default mode: encrypt; both
    subjects consented to prompt logging)."""
    grant_consent(org, "user-42")
    grant_consent(org, "user-7")
    assert processor.handler(event(INGESTED), lambda_context) == {"batchItemFailures": []}


def call(module: Any, request: dict[str, Any], ctx: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    response = module.handler(request, ctx)
    return response["statusCode"], json.loads(response["body"]), response


def read_as(event: Any, roles: str, request_id: str = "req-pd-1") -> dict[str, Any]:
    request: dict[str, Any] = event("admin/get-usage-record.json")
    request["requestContext"]["authorizer"]["roles"] = roles
    request["path"] = f"/v1/usage/{request_id}"
    request["pathParameters"] = {"request_id": request_id}
    return request


def test_a_cost_admin_reads_the_record_decrypted_and_uncached(
    admin: Any, ingested: None, event: Any, lambda_context: Any
) -> None:
    # When a cost admin reads a stored record
    status, body, response = call(admin, read_as(event, "cost_admin"), lambda_context)
    # Then its sealed fields come back decrypted, and no intermediary may cache them
    assert status == 200 and body["content_status"] == "decrypted"
    assert body["prompt_text"].startswith("Draft a reply to ada.lovelace@example.com")
    assert body["completion_text"] == "Dear Ada, thank you for your message."
    assert body["client_ip"] == "203.0.113.7"
    assert body["prompt_tokens"] == 96 and body["has_prompt_text"] is True
    assert response["multiValueHeaders"]["Cache-Control"] == ["no-store"]


def test_a_cost_viewer_sees_the_figures_but_not_the_content(
    admin: Any, ingested: None, event: Any, lambda_context: Any
) -> None:
    status, body, _ = call(admin, read_as(event, "cost_viewer"), lambda_context)
    assert status == 200 and body["content_status"] == "withheld"
    assert body["prompt_text"] is None and body["completion_text"] is None and body["client_ip"] is None
    assert body["cost"] == "0.00002100"


def test_after_the_subject_is_shredded_the_content_reads_as_erased(
    admin: Any, ingested: None, migrated_db: Any, org: str, event: Any, lambda_context: Any
) -> None:
    # Given the subject behind the record was crypto-shredded
    with migrated_db.owner() as conn:
        row = conn.execute("SELECT id FROM subjects WHERE external_id = 'user-42'").fetchone()
    assert row is not None
    shred(
        migrated_db.app,
        MemoryAuditSink(),
        UUID(org),
        row[0],
        actor="dpo:test",
        now=datetime.now(UTC),
        ledger=MemoryShredLedger(),
    )
    # When a DPO reads the record
    status, body, _ = call(admin, read_as(event, "dpo"), lambda_context)
    # Then the figures remain and the content is reported erased, not an error and not garbage
    assert status == 200 and body["content_status"] == "erased"
    assert body["prompt_text"] is None and body["client_ip"] is None and body["prompt_tokens"] == 96
    # While another subject's record still decrypts
    status, other, _ = call(admin, read_as(event, "dpo", "req-pd-2"), lambda_context)
    assert other["content_status"] == "decrypted"


def test_unknown_records_and_bad_ids_are_problems(
    admin: Any, ingested: None, event: Any, lambda_context: Any
) -> None:
    status, _body, response = call(admin, read_as(event, "cost_admin", "req-nothing"), lambda_context)
    assert status == 404 and response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]
    status, _body, _ = call(admin, read_as(event, "cost_admin", "bad id!"), lambda_context)
    assert status == 400
    status, _body, _ = call(admin, read_as(event, "auditor"), lambda_context)
    assert status == 403


def test_pii_settings_default_then_change_audited(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # Given an organisation that never set its PII handling
    status, body, _ = call(admin, event("admin/get-pii-settings.json"), lambda_context)
    assert status == 200 and body == {"mode": "encrypt", "regions": ["US", "GB", "DE", "FR", "IN"]}

    # When a DPO sets it to redact
    status, body, _ = call(admin, event("admin/put-pii-settings.json"), lambda_context)

    # Then it is stored, read back, and audited with before and after
    assert status == 200 and body == {"mode": "redact", "regions": ["GB", "US"]}
    _, again, _ = call(admin, event("admin/get-pii-settings.json"), lambda_context)
    assert again == body
    (changed,) = [e for e in audit.events if e.event_type == "org.settings_changed"]
    assert changed.details["before"]["mode"] == "encrypt" and changed.details["after"]["mode"] == "redact"
    assert changed.resource == "settings:pii"


@pytest.mark.parametrize(
    ("body", "roles", "status"),
    [
        ({"mode": "shred-everything"}, "dpo", 400),
        ({"mode": "reject", "regions": ["ZZ"]}, "dpo", 400),
        ({"mode": "reject", "regions": []}, "dpo", 400),
        ({"mode": "reject", "colour": "red"}, "dpo", 400),
        ({"mode": "reject"}, "cost_admin", 403),
    ],
)
def test_bad_pii_settings_are_refused_and_change_nothing(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any, body: Any, roles: str, status: int
) -> None:
    request: dict[str, Any] = event("admin/put-pii-settings.json")
    request["body"] = json.dumps(body)
    request["requestContext"]["authorizer"]["roles"] = roles
    got, problem, _ = call(admin, request, lambda_context)
    assert got == status, problem
    assert not [e for e in audit.events if e.event_type == "org.settings_changed"]
    _, current, _ = call(admin, event("admin/get-pii-settings.json"), lambda_context)
    assert current["mode"] == "encrypt"
