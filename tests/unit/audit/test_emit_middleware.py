"""The api.request middleware on a small resolver: one event per call however the call ends, 503 if the
audit trail refuses it.

Powertools validates requests in a middleware that runs before every user middleware, and converts
exceptions to responses after the whole chain: these tests pin both paths, so an upgrade that moves
them fails here rather than silently dropping events.
"""

# No `from __future__ import annotations`: the routes below are defined in a function, and Powertools
# must evaluate their annotations (the Depends on a local dependency) where they are defined.
import json
from typing import Annotated, Any
from uuid import UUID

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.depends import Depends
from pydantic import BaseModel, Field

from compliance.api.identity import require
from compliance.api.problems import register_error_handlers
from compliance.audit.events import SYSTEM_ORG_ID, AuditEventIn, AuditResult
from compliance.audit.middleware import register_audit_middleware
from compliance.audit.sink import MemoryAuditSink
from compliance.errors import NotFoundError
from compliance.models.auth import Principal, Role

ORG = "6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001"
KEY = "6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f00aa"


class Batch(BaseModel):
    records: list[int] = Field(max_length=2)


def make_app(sink: MemoryAuditSink) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)
    register_error_handlers(app)
    register_audit_middleware(app, lambda: sink)
    writer = require(app, {Role.INGEST})

    @app.get("/v1/things/<thing_id>")
    def get_thing(thing_id: UUID) -> dict[str, str]:
        if thing_id.int == 0:
            raise NotFoundError("no such thing")
        return {"id": str(thing_id)}

    @app.post("/v1/things")
    def post_things(batch: Batch, principal: Annotated[Principal, Depends(writer)]) -> dict[str, int]:
        return {"count": len(batch.records)}

    @app.get("/v1/broken")
    def broken() -> dict[str, str]:
        raise RuntimeError("bug")

    return app


def request(
    method: str, path: str, resource: str, *, body: Any = None, roles: str = "ingest"
) -> dict[str, Any]:
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", "User-Agent": "curl/8.5.0"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": None,
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
        "requestContext": {
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.9", "userAgent": "curl/8.5.0"},
            "authorizer": {"org_id": ORG, "key_id": KEY, "roles": roles},
        },
    }


def resolve(app: APIGatewayRestResolver, event: dict[str, Any], ctx: Any) -> tuple[int, str, str]:
    response = app.resolve(event, ctx)
    content_type = (response.get("multiValueHeaders") or {}).get("Content-Type", [""])[-1]
    return response["statusCode"], content_type, response["body"]


def only_event(sink: MemoryAuditSink) -> AuditEventIn:
    assert len(sink.events) == 1, [e.event_type for e in sink.events]
    return sink.events[0]


THING = "/v1/things/9b2b7bd2-7b39-4b7e-9b0a-4c5f0e6f1a2b"


@pytest.mark.parametrize(
    ("method", "path", "resource", "body", "roles", "status", "result", "route"),
    [
        (
            "GET",
            THING,
            "/v1/things/{thing_id}",
            None,
            "ingest",
            200,
            AuditResult.SUCCESS,
            "/v1/things/{thing_id}",
        ),
        (
            "GET",
            "/v1/things/00000000-0000-0000-0000-000000000000",
            "/v1/things/{thing_id}",
            None,
            "ingest",
            404,
            AuditResult.FAILURE,
            "/v1/things/{thing_id}",
        ),
        (
            "GET",
            "/v1/things/not-a-uuid",
            "/v1/things/{thing_id}",
            None,
            "ingest",
            400,
            AuditResult.FAILURE,
            "/v1/things/{thing_id}",
        ),
        (
            "POST",
            "/v1/things",
            "/v1/things",
            {"records": [1]},
            "ingest",
            200,
            AuditResult.SUCCESS,
            "/v1/things",
        ),
        (
            "POST",
            "/v1/things",
            "/v1/things",
            {"records": [1]},
            "auditor",
            403,
            AuditResult.DENIED,
            "/v1/things",
        ),
        (
            "POST",
            "/v1/things",
            "/v1/things",
            {"records": "x"},
            "ingest",
            400,
            AuditResult.FAILURE,
            "/v1/things",
        ),
        (
            "POST",
            "/v1/things",
            "/v1/things",
            {"records": [1, 2, 3]},
            "ingest",
            413,
            AuditResult.FAILURE,
            "/v1/things",
        ),
        ("GET", "/v1/nowhere/jane@example.com", "/{proxy+}", None, "ingest", 404, AuditResult.FAILURE, "*"),
    ],
)
def test_every_call_records_exactly_one_api_request(
    method: str,
    path: str,
    resource: str,
    body: Any,
    roles: str,
    status: int,
    result: AuditResult,
    route: str,
    lambda_context: Any,
) -> None:
    # Given an audited app
    sink = MemoryAuditSink()
    app = make_app(sink)
    # When a call ends in success, a domain error, a dependency's 403, a validation error or no route
    got, _, _ = resolve(app, request(method, path, resource, body=body, roles=roles), lambda_context)
    # Then exactly one api.request event records it, with the route template, caller and origin
    assert got == status
    event = only_event(sink)
    assert event.event_type == "api.request" and event.result is result
    assert event.details == {"method": method, "route": route, "status": status}
    assert event.actor == f"api_key:{KEY}" and str(event.org_id) == ORG
    assert str(event.ip_address) == "203.0.113.9" and event.user_agent == "curl/8.5.0"
    assert event.request_id == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    # And never the raw path (it may carry personal data)
    assert "jane" not in event.model_dump_json()


def test_unsupported_content_type_is_a_recorded_415_problem(lambda_context: Any) -> None:
    sink = MemoryAuditSink()
    event = request("POST", "/v1/things", "/v1/things", body={"records": [1]})
    event["headers"]["Content-Type"] = "text/plain"
    status, content_type, _ = resolve(make_app(sink), event, lambda_context)
    assert status == 415 and content_type == "application/problem+json"
    assert only_event(sink).details["status"] == 415


def test_a_call_without_a_principal_is_anonymous_in_the_system_org(lambda_context: Any) -> None:
    sink = MemoryAuditSink()
    event = request("POST", "/v1/things", "/v1/things", body={"records": [1]})
    event["requestContext"]["authorizer"] = None
    status, _, _ = resolve(make_app(sink), event, lambda_context)
    recorded = only_event(sink)
    assert status == 401 and recorded.actor == "anonymous" and recorded.org_id == SYSTEM_ORG_ID
    assert recorded.result is AuditResult.DENIED


def test_an_unhandled_error_is_recorded_then_raised(lambda_context: Any) -> None:
    sink = MemoryAuditSink()
    with pytest.raises(RuntimeError, match="bug"):
        make_app(sink).resolve(request("GET", "/v1/broken", "/v1/broken"), lambda_context)
    recorded = only_event(sink)
    assert recorded.details["status"] == 500 and recorded.result is AuditResult.ERROR


@pytest.mark.parametrize(
    ("method", "path", "resource", "body"),
    [
        ("GET", THING, "/v1/things/{thing_id}", None),  # a read: refused too
        ("GET", "/v1/things/00000000-0000-0000-0000-000000000000", "/v1/things/{thing_id}", None),
        ("POST", "/v1/things", "/v1/things", {"records": "x"}),  # request validation path
        ("GET", "/v1/nowhere", "/{proxy+}", None),
    ],
)
def test_an_unavailable_audit_trail_turns_every_answer_into_503(
    method: str, path: str, resource: str, body: Any, lambda_context: Any
) -> None:
    # Given the audit trail refuses events
    sink = MemoryAuditSink(fail=True)
    # When any call is made
    status, content_type, payload = resolve(
        make_app(sink), request(method, path, resource, body=body), lambda_context
    )
    # Then the answer is the audit problem, not the route's data
    assert status == 503 and content_type == "application/problem+json"
    assert json.loads(payload)["title"] == "Audit trail unavailable" and sink.events == []


def test_registering_before_the_error_handlers_is_refused() -> None:
    with pytest.raises(RuntimeError, match="register_error_handlers"):
        register_audit_middleware(APIGatewayRestResolver(), MemoryAuditSink)
