"""POST /v1/pii/scan through its handler: findings as spans, redaction on request, values never echoed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from compliance.audit.events import AuditResult
from compliance.audit.sink import MemoryAuditSink
from compliance.models.pii import MAX_TEXTS
from compliance.pii import MAX_SCAN_CHARS
from compliance.pii.service import MAX_BATCH_CHARS

RESOURCE = "route:POST:/v1/pii/scan"
# What the sample events plant (the test checks each is found, and never sent back).
EMAIL, PHONE, CARD = "jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"
SSN, ACCESS_KEY = "536-22-8145", "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def pii(aws: None, audited: Any) -> Any:
    return audited("functions.pii.api", {})


def call(module: Any, event: dict[str, Any], ctx: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    response = module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"]), response


def with_body(event: Any, body: Any) -> dict[str, Any]:
    request: dict[str, Any] = event("pii/scan-text.json")
    request["body"] = body if isinstance(body, str) else json.dumps(body)
    return request


def header(response: dict[str, Any], name: str) -> str:
    # REST API proxy responses carry headers as multiValueHeaders.
    return str(response["multiValueHeaders"][name][0])


def requests(audit: MemoryAuditSink) -> list[tuple[str, Any]]:
    return [(e.resource, e.details["status"]) for e in audit.events if e.event_type == "api.request"]


def test_one_text_gives_spans_and_placeholders_never_values(
    pii: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # Given the sample text with an email, a phone number and a card number
    request = event("pii/scan-text.json")
    text = json.loads(request["body"])["text"]
    # When a DPO scans it with placeholder redaction
    status, body, response = call(pii, request, lambda_context)
    # Then each entity is found as a span into the text, with its validation
    assert status == 200 and header(response, "Cache-Control") == "no-store"
    (result,) = body["results"]
    found = {(f["type"], text[f["start"] : f["end"]]) for f in result["findings"]}
    assert found == {("EMAIL", EMAIL), ("PHONE", PHONE), ("CREDIT_CARD", CARD)}
    assert all(f["validation"] and 0 < f["confidence"] <= 1 for f in result["findings"])
    # And the redacted text replaces them with placeholders; no value is anywhere in the response
    assert "<EMAIL_1>" in result["redacted"] and "<CREDIT_CARD_1>" in result["redacted"]
    for value in (EMAIL, PHONE, CARD):
        assert value not in response["body"]
    # And the call is one api.request event, which carries none of them either
    assert requests(audit) == [(RESOURCE, 200)] and len(audit.events) == 1
    serialized = json.dumps([e.model_dump(mode="json") for e in audit.events])
    assert all(value not in serialized for value in (EMAIL, PHONE, CARD))


def test_batch_keeps_order_limits_types_and_masks(
    pii: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # When a cost admin scans three texts for SSNs, IPs and secrets, with masking
    status, body, response = call(pii, event("pii/scan-batch.json"), lambda_context)
    # Then one result per text, in order; only the asked types; masked values keep their length
    assert status == 200 and [r["index"] for r in body["results"]] == [0, 1, 2]
    types = [sorted(f["type"] for f in r["findings"]) for r in body["results"]]
    assert types == [["SSN"], ["IP_ADDRESS", "SECRET"], []]
    assert body["results"][0]["redacted"] == "My SSN is ***********, do not share it."
    assert SSN not in response["body"] and ACCESS_KEY not in response["body"]
    assert requests(audit) == [(RESOURCE, 200)]


def test_without_redact_no_text_comes_back(pii: Any, event: Any, lambda_context: Any) -> None:
    status, body, _ = call(pii, with_body(event, {"text": f"write to {EMAIL}"}), lambda_context)
    assert status == 200 and body["results"][0]["redacted"] is None
    assert [f["type"] for f in body["results"][0]["findings"]] == ["EMAIL"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": f"x {EMAIL}", "texts": [f"y {EMAIL}"]}, "body"),  # both inputs
        ({"types": ["EMAIL"]}, "body"),  # no input
        ({"text": f"x {EMAIL}", "redact": "hash"}, "redact"),  # needs a key the API does not hold
        ({"text": f"x {EMAIL}", "types": ["PASSPORT"]}, "types.0"),
        ({"text": f"x {EMAIL}", "regions": ["gb"]}, "regions.0"),
        ({"text": f"x {EMAIL}", "extra": EMAIL}, "extra"),
        ({"texts": []}, "texts"),
    ],
)
def test_bad_input_is_400_without_echo(
    pii: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any, payload: dict[str, Any], field: str
) -> None:
    # When the body breaks a rule
    status, body, response = call(pii, with_body(event, payload), lambda_context)
    # Then a 400 problem names the field, and the texts are not echoed
    assert status == 400 and header(response, "Content-Type") == "application/problem+json"
    assert field in {e["field"] for e in body["errors"]}
    assert EMAIL not in response["body"]
    assert requests(audit) == [(RESOURCE, 400)] and audit.events[0].result is AuditResult.FAILURE


def test_unsupported_region_is_400(pii: Any, event: Any, lambda_context: Any) -> None:
    # A well-formed region code the scanner has no phone metadata for is the scanner's typed 400
    status, body, _ = call(pii, with_body(event, {"text": "call 555", "regions": ["ZZ"]}), lambda_context)
    assert status == 400 and body["title"] == "Invalid request"


def test_binary_text_is_400(pii: Any, event: Any, lambda_context: Any) -> None:
    status, body, response = call(pii, with_body(event, {"text": f"{EMAIL}\u0000\u0001"}), lambda_context)
    assert status == 400 and body["title"] == "Invalid request" and EMAIL not in response["body"]


def test_text_over_the_scanner_limit_is_413(
    pii: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # When one text is longer than the scanner takes
    text = (EMAIL + " ") * (MAX_SCAN_CHARS // len(EMAIL))
    status, body, response = call(pii, with_body(event, {"text": text}), lambda_context)
    # Then a 413 problem with the limit, and no value
    assert status == 413 and body["limit"] == MAX_SCAN_CHARS and body["size"] == len(text)
    assert EMAIL not in response["body"]
    assert requests(audit) == [(RESOURCE, 413)] and len(audit.events) == 1


def test_batch_over_the_total_limit_is_413_before_any_scan(
    pii: Any, event: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given texts each within the scanner's limit that add up to more than the batch limit
    count = MAX_BATCH_CHARS // MAX_SCAN_CHARS + 1
    texts = ["a" * MAX_SCAN_CHARS] * count
    scanned: list[str] = []
    import compliance.pii.service as service

    monkeypatch.setattr(service, "scan", lambda text, **_: scanned.append(text) or [])
    # When they are sent
    status, body, _ = call(pii, with_body(event, {"texts": texts}), lambda_context)
    # Then 413 with the batch limit, and nothing was scanned
    assert status == 413 and body["limit"] == MAX_BATCH_CHARS and scanned == []


def test_too_many_texts_is_413(pii: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any) -> None:
    status, body, _ = call(pii, with_body(event, {"texts": ["hi"] * (MAX_TEXTS + 1)}), lambda_context)
    assert status == 413 and body["title"] == "Payload too large"
    assert requests(audit) == [(RESOURCE, 413)]


@pytest.mark.parametrize("roles", ["auditor", "cost_viewer", "ingest", "auditor,cost_viewer"])
def test_other_roles_are_403(
    pii: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any, roles: str
) -> None:
    # Given a key without a scanning role
    request = event("pii/scan-text.json")
    request["requestContext"]["authorizer"]["roles"] = roles
    # When it asks for a scan
    status, body, response = call(pii, request, lambda_context)
    # Then it is forbidden, nothing is scanned back, and the denial is the one audit event
    assert status == 403 and body["title"] == "Forbidden" and EMAIL not in response["body"]
    assert requests(audit) == [(RESOURCE, 403)] and audit.events[0].result is AuditResult.DENIED


@pytest.mark.parametrize("roles", ["dpo", "system_admin", "cost_admin"])
def test_scanning_roles(pii: Any, event: Any, lambda_context: Any, roles: str) -> None:
    request = event("pii/scan-text.json")
    request["requestContext"]["authorizer"]["roles"] = roles
    assert call(pii, request, lambda_context)[0] == 200


def test_audit_trail_down_refuses_the_scan(
    pii: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # Given an audit trail that refuses events
    audit.fail = True
    # When a scan is asked
    status, body, response = call(pii, event("pii/scan-text.json"), lambda_context)
    # Then it fails closed: 503, no findings disclosed
    assert status == 503 and "results" not in body and "<EMAIL_1>" not in response["body"]
