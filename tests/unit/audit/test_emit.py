"""Audit event builders: vocabulary, actor/resource/result conventions, request origin, publishing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from ipaddress import IPv4Address
from typing import Any
from uuid import UUID, uuid4

import pytest

from compliance.audit import emit
from compliance.audit.events import SYSTEM_ORG_ID, AuditEventIn, AuditResult
from compliance.audit.sink import MemoryAuditSink
from compliance.errors import AuditUnavailableError
from compliance.models.auth import Principal, Role

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PRINCIPAL = Principal(org_id=uuid4(), key_id=uuid4(), roles=frozenset({Role.SYSTEM_ADMIN}))
ORIGIN = emit.RequestOrigin(ip_address=IPv4Address("203.0.113.7"), user_agent="curl/8", request_id="r-1")


@pytest.mark.parametrize(
    ("status", "result"),
    [
        (200, AuditResult.SUCCESS),
        (201, AuditResult.SUCCESS),
        (202, AuditResult.SUCCESS),
        (400, AuditResult.FAILURE),
        (401, AuditResult.DENIED),
        (403, AuditResult.DENIED),
        (404, AuditResult.FAILURE),
        (413, AuditResult.FAILURE),
        (500, AuditResult.ERROR),
        (503, AuditResult.ERROR),
    ],
)
def test_result_follows_the_http_status(status: int, result: AuditResult) -> None:
    assert emit.result_for_status(status) is result


@pytest.mark.parametrize(
    ("method", "template", "resource", "route"),
    [
        (
            "POST",
            "/v1/api-keys/<key_id>/revoke",
            "route:POST:/v1/api-keys/:key_id/revoke",
            "/v1/api-keys/{key_id}/revoke",
        ),
        ("get", "/v1/api-keys/{key_id}", "route:GET:/v1/api-keys/:key_id", "/v1/api-keys/{key_id}"),
        ("POST", "/v1/usage", "route:POST:/v1/usage", "/v1/usage"),
        ("GET", None, "route:GET:*", "*"),
        ("GET", "/v1/users/jane@example.com", "route:GET:*", "*"),
        ("BREW COFFEE", "/v1/usage", "route:OTHER:/v1/usage", "/v1/usage"),
    ],
)
def test_api_request_names_the_route_template_never_a_raw_path(
    method: str, template: str | None, resource: str, route: str
) -> None:
    # When an API call is recorded
    event = emit.api_request(
        principal=PRINCIPAL, method=method, route=template, status=201, origin=ORIGIN, occurred_at=NOW
    )
    # Then the resource and details name the template (or '*'), and the caller is its key
    assert event.event_type == "api.request" and event.resource == resource
    assert event.details["route"] == route and event.details["status"] == 201
    assert event.actor == f"api_key:{PRINCIPAL.key_id}" and event.org_id == PRINCIPAL.org_id
    assert event.result is AuditResult.SUCCESS and event.request_id == "r-1"


def test_an_unknown_caller_is_anonymous_in_the_system_organisation() -> None:
    event = emit.api_request(
        principal=None, method="GET", route="/v1/usage", status=401, origin=ORIGIN, occurred_at=NOW
    )
    assert event.actor == "anonymous" and event.org_id == SYSTEM_ORG_ID and event.result is AuditResult.DENIED


def test_event_ids_are_fresh_uuid4s() -> None:
    first, second = emit.new_event_id(), emit.new_event_id()
    assert first != second and first.version == 4


def test_origin_comes_from_the_gateway_context_and_drops_malformed_values() -> None:
    # Given a proxy event whose context holds a bad IP and an out-of-pattern request id
    event = {
        "headers": {"User-Agent": "from-header"},
        "requestContext": {"requestId": "has space", "identity": {"sourceIp": "not-an-ip"}},
    }
    # Then those are left out rather than failing the event, and the header's user agent is used
    assert emit.RequestOrigin.from_event(event) == emit.RequestOrigin(user_agent="from-header")
    good = {"requestContext": {"requestId": "abc-1", "identity": {"sourceIp": "2001:db8::1"}}}
    origin = emit.RequestOrigin.from_event(good)
    assert origin.request_id == "abc-1" and str(origin.ip_address) == "2001:db8::1"
    assert emit.RequestOrigin.from_event({}) == emit.RequestOrigin()


def test_auth_failure_goes_to_the_keys_org_only_when_the_prefix_matched() -> None:
    key_id = uuid4()
    matched = emit.auth_failure(
        reason="wrong_secret",
        org_id=PRINCIPAL.org_id,
        key_id=key_id,
        key_prefix="abcdefghijkl",
        method="POST",
        route="/v1/usage",
        origin=ORIGIN,
        occurred_at=NOW,
    )
    assert matched.org_id == PRINCIPAL.org_id and matched.result is AuditResult.DENIED
    assert matched.details == {"reason": "wrong_secret", "key_prefix": "abcdefghijkl", "key_id": str(key_id)}
    unknown = emit.auth_failure(
        reason="malformed",
        org_id=None,
        key_id=None,
        key_prefix=None,
        method="POST",
        route="/v1/usage",
        origin=ORIGIN,
        occurred_at=NOW,
    )
    assert unknown.org_id == SYSTEM_ORG_ID and unknown.actor == "anonymous"
    assert unknown.details == {"reason": "malformed"} and unknown.resource == "route:POST:/v1/usage"


def test_key_events_carry_ids_roles_and_expiry_only() -> None:
    key_id = uuid4()
    created = emit.api_key_created(
        principal=PRINCIPAL,
        key_id=key_id,
        roles=[Role.INGEST, Role.AUDITOR],
        expires_at=None,
        origin=ORIGIN,
        occurred_at=NOW,
    )
    assert (created.event_type, created.action, created.resource) == (
        "api_key.created",
        "create",
        f"api_key:{key_id}",
    )
    assert created.details == {"roles": ["auditor", "ingest"], "expires_at": None}
    revoked = emit.api_key_revoked(principal=PRINCIPAL, key_id=key_id, origin=ORIGIN, occurred_at=NOW)
    assert (revoked.event_type, revoked.action, revoked.details) == ("api_key.revoked", "revoke", {})


class BrokenSink:
    def publish(self, events: Sequence[AuditEventIn]) -> None:
        raise ConnectionError("network down")


@pytest.mark.parametrize("sink", [MemoryAuditSink(fail=True), BrokenSink()])
def test_publish_turns_any_sink_failure_into_audit_unavailable(sink: Any) -> None:
    event = emit.api_key_revoked(principal=PRINCIPAL, key_id=UUID(int=1), origin=ORIGIN, occurred_at=NOW)
    with pytest.raises(AuditUnavailableError):
        emit.publish(sink, [event])


def test_publish_hands_the_events_to_the_sink() -> None:
    sink = MemoryAuditSink()
    event = emit.api_key_revoked(principal=PRINCIPAL, key_id=UUID(int=1), origin=ORIGIN, occurred_at=NOW)
    emit.publish(sink, [event])
    assert sink.events == [event]
