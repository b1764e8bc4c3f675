"""POST /v1/usage through the real handler, with a fake queue (no network)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from compliance.audit.events import AuditResult
from compliance.audit.sink import MemoryAuditSink
from compliance.errors import QueueError
from compliance.models.usage import MAX_BATCH_RECORDS, UsageMessage

ENV = {"INGEST_QUEUE_URL": "https://sqs.invalid/queue", "AUDIT_QUEUE_URL": "https://sqs.invalid/audit.fifo"}


class FakeSender:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str]) -> list[str]:
        self.bodies.extend(bodies)
        return [f"m{i}" for i in range(len(bodies))]


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def api(fresh_import: Any, monkeypatch: pytest.MonkeyPatch, audit: MemoryAuditSink) -> tuple[Any, FakeSender]:
    module = fresh_import("functions.ingest.api", ENV)
    sender = FakeSender()
    monkeypatch.setattr(module, "_sender", lambda: sender)
    monkeypatch.setattr(module, "_sink", lambda: audit)
    return module, sender


def recorded(audit: MemoryAuditSink, status: int, result: AuditResult) -> None:
    """Exactly one api.request event, for POST /v1/usage, with this outcome."""
    assert [e.event_type for e in audit.events] == ["api.request"]
    event = audit.events[0]
    assert event.resource == "route:POST:/v1/usage" and event.action == "post"
    assert event.details == {"method": "POST", "route": "/v1/usage", "status": status}
    assert event.result is result
    assert "cpk_" not in event.model_dump_json()  # never the presented key


def call(api: Any, event: dict[str, Any], ctx: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    response = api.handler(event, ctx)
    # The REST resolver answers with multiValueHeaders (payload format 1.0).
    headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
    return response["statusCode"], headers, json.loads(response["body"])


def test_valid_batch_is_queued_accepted_and_audited(
    api: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    module, sender = api
    # Given a batch of two records from an ingest key
    request = event("ingest/post-usage.json")
    # When it is posted
    status, _, body = call(module, request, lambda_context)
    # Then it is accepted with the ids, and queued once for the caller's organisation
    assert status == 202
    assert body["accepted"] == 2 and body["request_ids"] == ["req-0001", "req-0002"]
    messages = [UsageMessage.model_validate_json(b) for b in sender.bodies]
    assert [r.request_id for m in messages for r in m.records] == ["req-0001", "req-0002"]
    assert {str(m.org_id) for m in messages} == {request["requestContext"]["authorizer"]["org_id"]}
    # And one api.request event names the caller, its org and where the call came from
    recorded(audit, 202, AuditResult.SUCCESS)
    authorizer = request["requestContext"]["authorizer"]
    audited = audit.events[0]
    assert audited.actor == f"api_key:{authorizer['key_id']}" and str(audited.org_id) == authorizer["org_id"]
    assert str(audited.ip_address) == "127.0.0.1" and audited.user_agent == "curl/8.5.0"
    assert audited.request_id == request["requestContext"]["requestId"]


def test_unknown_field_is_400_problem_naming_the_field(
    api: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    module, sender = api
    status, headers, body = call(module, event("ingest/post-usage-unknown-field.json"), lambda_context)
    assert status == 400 and headers["Content-Type"] == "application/problem+json"
    assert body["status"] == 400 and any(e["field"] == "records.0.tokens_total" for e in body["errors"])
    assert sender.bodies == []
    recorded(audit, 400, AuditResult.FAILURE)


def test_malformed_json_is_400(api: Any, event: Any, lambda_context: Any) -> None:
    module, sender = api
    request = event("ingest/post-usage.json")
    request["body"] = '{"records": [ {"request_id": '
    status, headers, _ = call(module, request, lambda_context)
    assert status == 400 and headers["Content-Type"] == "application/problem+json"
    assert sender.bodies == []


def test_schema_violations_name_each_field_without_echoing_values(
    api: Any, event: Any, lambda_context: Any
) -> None:
    module, _ = api
    request = event("ingest/post-usage.json")
    records = json.loads(request["body"])["records"]
    records[0]["prompt_tokens"] = -5
    records[1]["occurred_at"] = "yesterday-ish"
    request["body"] = json.dumps({"records": records})
    status, _, body = call(module, request, lambda_context)
    fields = {e["field"] for e in body["errors"]}
    assert status == 400 and {"records.0.prompt_tokens", "records.1.occurred_at"} <= fields
    assert "yesterday-ish" not in json.dumps(body)


def test_batch_over_the_limit_is_413(
    api: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    module, sender = api
    request = event("ingest/post-usage.json")
    one = json.loads(request["body"])["records"][1]
    request["body"] = json.dumps(
        {"records": [dict(one, request_id=f"r{i}") for i in range(MAX_BATCH_RECORDS + 1)]}
    )
    status, _, body = call(module, request, lambda_context)
    assert status == 413 and body["status"] == 413
    assert sender.bodies == []
    recorded(audit, 413, AuditResult.FAILURE)


def test_duplicate_request_ids_in_one_batch_are_400(api: Any, event: Any, lambda_context: Any) -> None:
    module, _ = api
    request = event("ingest/post-usage.json")
    one = json.loads(request["body"])["records"][1]
    request["body"] = json.dumps({"records": [one, one]})
    status, _, _ = call(module, request, lambda_context)
    assert status == 400


def test_key_without_the_ingest_role_is_403(
    api: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    module, sender = api
    status, headers, _ = call(module, event("ingest/post-usage-viewer-role.json"), lambda_context)
    assert status == 403 and headers["Content-Type"] == "application/problem+json"
    assert sender.bodies == []
    recorded(audit, 403, AuditResult.DENIED)


def test_missing_authorizer_context_is_401(
    api: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    module, _ = api
    request = event("ingest/post-usage.json")
    request["requestContext"]["authorizer"] = None
    status, _, _ = call(module, request, lambda_context)
    assert status == 401
    recorded(audit, 401, AuditResult.DENIED)
    assert audit.events[0].actor == "anonymous"


def test_queue_failure_is_a_recorded_503(
    api: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, _ = api

    class DownSender:
        def send(self, bodies: Sequence[str]) -> list[str]:
            raise QueueError("queue unavailable")

    monkeypatch.setattr(module, "_sender", DownSender)
    status, headers, _ = call(module, event("ingest/post-usage.json"), lambda_context)
    assert status == 503 and headers["Content-Type"] == "application/problem+json"
    recorded(audit, 503, AuditResult.ERROR)


@pytest.mark.parametrize("name", ["ingest/post-usage.json", "ingest/post-usage-unknown-field.json"])
def test_audit_trail_down_is_503_problem(
    api: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any, name: str
) -> None:
    # Given the audit trail refuses events
    module, _ = api
    audit.fail = True
    # When a batch (valid or not) is posted
    status, headers, body = call(module, event(name), lambda_context)
    # Then the caller gets the audit problem, not an acceptance
    assert status == 503 and headers["Content-Type"] == "application/problem+json"
    assert body["title"] == "Audit trail unavailable" and "batch_id" not in body
