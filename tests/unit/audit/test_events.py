"""Audit event models: field limits, normalisation, round trips (compliance.audit.events)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from compliance.audit.canonical import canonical_bytes
from compliance.audit.events import (
    FORBIDDEN_DETAIL_KEYS,
    MAX_DETAILS_BYTES,
    MAX_USER_AGENT_CHARS,
    SAFE_INT,
    AuditEventIn,
    AuditResult,
    StoredAuditEvent,
)

ORG = UUID("0b5e4c52-3f0e-4d7e-9a55-8f6a2f1c9d10")
NOW = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)


def payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": str(uuid4()),
        "occurred_at": NOW.isoformat(),
        "event_type": "api_key.created",
        "actor": "api_key:7f1c2d9e",
        "org_id": str(ORG),
        "resource": "api_key/3c9a",
        "action": "create",
        "result": "success",
        "ip_address": "203.0.113.7",
        "user_agent": "curl/8.5.0",
        "request_id": "req-123",
        "details": {"roles": ["cost_viewer"], "subject": "subj_9f2a"},
    }
    base.update(overrides)
    return base


def test_valid_event_parses_from_json() -> None:
    # Given a complete producer payload
    body = json.dumps(payload())
    # When it is validated as JSON
    event = AuditEventIn.model_validate_json(body)
    # Then every field is typed
    assert event.org_id == ORG
    assert event.result is AuditResult.SUCCESS
    assert event.ip_address == IPv4Address("203.0.113.7")
    assert event.details == {"roles": ["cost_viewer"], "subject": "subj_9f2a"}


def test_optional_fields_default_to_none_and_empty_details() -> None:
    body = payload()
    for key in ("ip_address", "user_agent", "request_id", "details"):
        del body[key]
    event = AuditEventIn.model_validate(body)
    assert (event.ip_address, event.user_agent, event.request_id, event.details) == (None, None, None, {})


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        AuditEventIn.model_validate(payload(email="a@example.com"))


def test_stored_fields_cannot_be_smuggled_in_by_producers() -> None:
    # Given a producer that tries to choose its own chain position
    # Then the input model refuses it
    with pytest.raises(ValidationError):
        AuditEventIn.model_validate(payload(seq=1, prev_hash="0" * 64, event_hash="0" * 64))


def test_occurred_at_must_be_aware_and_is_normalised_to_utc() -> None:
    # Given a naive timestamp, Then it is rejected
    with pytest.raises(ValidationError):
        AuditEventIn.model_validate(payload(occurred_at="2026-11-23T12:00:00"))
    # Given the same instant in +02:00, When validated, Then it is stored in UTC
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    event = AuditEventIn.model_validate(payload(occurred_at=local.isoformat()))
    assert event.occurred_at == NOW and event.occurred_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("event_type", ["api_key.created", "auth.login_failed", "dsar.export.completed"])
def test_dotted_lowercase_event_types_are_accepted(event_type: str) -> None:
    assert AuditEventIn.model_validate(payload(event_type=event_type)).event_type == event_type


@pytest.mark.parametrize(
    "event_type",
    ["login", "Api_Key.Created", "api_key..created", ".created", "api_key.", "a b.c", "x." + "y" * 64],
)
def test_other_event_types_are_rejected(event_type: str) -> None:
    with pytest.raises(ValidationError):
        AuditEventIn.model_validate(payload(event_type=event_type))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", ""),
        ("actor", "a" * 201),
        ("actor", "Jane Doe"),
        ("resource", "r" * 257),
        ("action", "Create"),
        ("request_id", "r" * 129),
        ("request_id", "req\x00"),
        ("result", "ok"),
        ("ip_address", "999.1.1.1"),
        ("ip_address", "example.com"),
        ("org_id", "not-a-uuid"),
        ("event_id", "42"),
        ("details", ["not", "an", "object"]),
    ],
)
def test_out_of_bounds_fields_are_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        AuditEventIn.model_validate(payload(**{field: value}))


def test_all_results_are_accepted() -> None:
    for result in ("success", "failure", "denied", "error"):
        assert AuditEventIn.model_validate(payload(result=result)).result == result


def test_ipv6_is_accepted_and_normalised() -> None:
    event = AuditEventIn.model_validate(payload(ip_address="2001:DB8:0:0::1"))
    assert event.ip_address == IPv6Address("2001:db8::1") and str(event.ip_address) == "2001:db8::1"


def test_ipv4_mapped_ipv6_is_stored_as_ipv4() -> None:
    # Given an IPv4 client seen through a dual-stack socket
    event = AuditEventIn.model_validate(payload(ip_address="::ffff:203.0.113.7"))
    # Then the event records the IPv4 address
    assert event.ip_address == IPv4Address("203.0.113.7")


def test_hostile_user_agent_is_clipped_not_rejected() -> None:
    # Given an oversized user agent with a NUL and a lone surrogate
    ua = "A\x00B\ud800" + "x" * 5000
    # When the event is validated
    event = AuditEventIn.model_validate(payload(user_agent=ua))
    # Then the event is kept, with a bounded, storable user agent
    assert event.user_agent is not None
    assert len(event.user_agent) == MAX_USER_AGENT_CHARS
    assert event.user_agent.startswith("A\ufffdB?")
    event.user_agent.encode("utf-8")


@pytest.mark.parametrize(
    "details",
    [
        {"a": {"b": {"c": {"d": {"e": 1}}}}},  # 5 levels of containers, details included
        {"a": [[[[1]]]]},
        {"n": SAFE_INT + 1},
        {"n": -SAFE_INT - 1},
        {"f": float("nan")},
        {"f": float("inf")},
        {"s": "nul\x00"},
        {"s": "lone\udc00"},
        {"": 1},
        {"k" * 65: 1},
        {"blob": "x" * MAX_DETAILS_BYTES},
    ],
)
def test_details_outside_limits_are_rejected(details: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AuditEventIn.model_validate(payload(details=details))


@pytest.mark.parametrize("key", sorted(FORBIDDEN_DETAIL_KEYS))
def test_details_keys_that_would_carry_secrets_or_content_are_rejected(key: str) -> None:
    # Given a forbidden key, top level or nested, any case
    for details in ({key: "x"}, {"nested": {key.upper(): "x"}}, {"list": [{key: "x"}]}):
        with pytest.raises(ValidationError, match="not allowed"):
            AuditEventIn.model_validate(payload(details=details))


def test_details_at_the_limits_are_accepted() -> None:
    details = {"a": {"b": {"c": [1, SAFE_INT, -SAFE_INT, 1.5e300, True, None]}}, "k" * 64: "v"}
    assert AuditEventIn.model_validate(payload(details=details)).details == details


def test_stored_event_checks_chain_fields() -> None:
    base = payload(seq=1, prev_hash="0" * 64, event_hash="a" * 64)
    assert StoredAuditEvent.model_validate(base).seq == 1
    for bad in ({"seq": 0}, {"seq": 2**53}, {"prev_hash": "A" * 64}, {"event_hash": "a" * 63}, {"junk": 1}):
        with pytest.raises(ValidationError):
            StoredAuditEvent.model_validate({**base, **bad})


def test_models_are_immutable() -> None:
    event = AuditEventIn.model_validate(payload())
    with pytest.raises(ValidationError):
        event.actor = "someone_else"


# ------------------------------------------------------------------ round trips

_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda k: k not in FORBIDDEN_DETAIL_KEYS
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE_INT, SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
)
_values = _scalars | st.lists(_scalars, max_size=3) | st.dictionaries(_keys, _scalars, max_size=3)
details_strategy = st.dictionaries(_keys, _values, max_size=4)


@settings(max_examples=60, deadline=None)
@given(details=details_strategy, ip=st.none() | st.ip_addresses())
def test_stored_event_survives_json_round_trip_with_the_same_canonical_bytes(
    details: dict[str, Any], ip: IPv4Address | IPv6Address | None
) -> None:
    # Given a stored event with arbitrary JSON details
    stored = StoredAuditEvent.model_validate(
        payload(
            details=details,
            ip_address=None if ip is None else str(ip),
            seq=7,
            prev_hash="1" * 64,
            event_hash="2" * 64,
        )
    )
    # When it goes through JSON (API, queue) and through a plain json.loads (as JSONB comes back)
    via_pydantic = StoredAuditEvent.model_validate_json(stored.model_dump_json())
    via_json = StoredAuditEvent.model_validate(json.loads(stored.model_dump_json()))
    # Then the canonical form is unchanged, so the hash still verifies
    want = canonical_bytes(stored, seq=7, prev_hash="1" * 64)
    assert canonical_bytes(via_pydantic, seq=7, prev_hash="1" * 64) == want
    assert canonical_bytes(via_json, seq=7, prev_hash="1" * 64) == want
