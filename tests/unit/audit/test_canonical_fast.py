"""The fast canonical encoder is byte-identical to the rfc8785 reference on every input it takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.audit import canonical
from compliance.audit.canonical import canonical_bytes, canonical_form, canonicalize
from compliance.audit.events import MAX_SEQ, AuditEventIn, AuditResult, StoredAuditEvent

# Text over all of Unicode including lone surrogates, which both must refuse alike.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
keys = st.one_of(
    any_text,
    st.sampled_from(["a", "b", "\ue000", "\U0001f600", "é", "\u20ac", "\ud800", "A", "aa", ""]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=20,
)


def reference(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except Exception as exc:
        return type(exc)


def canonicalize_reference(value: Any) -> bytes:
    return rfc8785.dumps(value)


def fast(value: Any) -> bytes | type[Exception]:
    try:
        return canonicalize(value)
    except Exception as exc:
        return type(exc)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_canonicalize_equals_rfc8785_on_any_json_value(value: Any) -> None:
    # Given any JSON-like value (floats, huge ints, surrogates, non-BMP keys included)
    # Then the fast encoder yields the reference bytes, or the same error
    assert fast(value) == reference(value)


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+E000 sorts before U+1F600 by code point, after it by UTF-16 (0xD83D...): the fast path
    # must hand such keys to the reference encoder.
    value: Any = {"\ue000": 1, "\U0001f600": 2, "a": {"\ue000": 1, "\U0001f600": 2}}
    assert canonicalize(value) == rfc8785.dumps(value)
    assert canonicalize(value).index("\U0001f600".encode()) < canonicalize(value).index("\ue000".encode())


@pytest.mark.parametrize(
    "value", [{"x": 1.5}, {"x": [1e21]}, {"x": -0.0}, {"x": 2**53}, "\ud800", [[[[[[]]]]]]]
)
def test_values_outside_the_fast_path_still_match(value: Any) -> None:
    assert fast(value) == reference(value)


def test_deep_nesting_falls_back_to_the_reference() -> None:
    value: Any = 1
    for _ in range(40):
        value = [value]
    assert canonicalize(value) == rfc8785.dumps(value)


# -- whole events --------------------------------------------------------------------------

safe_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20)
ident = st.from_regex(r"\A[A-Za-z0-9._:/@+=-]{1,30}\Z")
details_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        safe_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(safe_text.filter(lambda k: 1 <= len(k) <= 64), children, max_size=3),
    ),
    max_leaves=8,
)
details = st.dictionaries(
    st.one_of(st.sampled_from(["status", "method", "\ue000", "\U0001f600x"]), safe_text).filter(
        lambda k: 1 <= len(k) <= 64
    ),
    details_values,
    max_size=4,
)
ips = st.one_of(
    st.none(),
    st.builds(IPv4Address, st.integers(0, 2**32 - 1)),
    st.builds(IPv6Address, st.integers(0, 2**128 - 1)),
    st.sampled_from([IPv6Address("fe80::1%eth0"), IPv6Address("::ffff:192.0.2.1")]),
)
moments = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), UTC]),
)


@st.composite
def events(draw: st.DrawFn) -> StoredAuditEvent:
    values: dict[str, Any] = {
        "event_id": draw(st.uuids()),
        "occurred_at": draw(moments),
        "event_type": draw(st.sampled_from(["api.request", "auth.failure", "api_key.created"])),
        "actor": draw(ident),
        "org_id": draw(st.uuids()),
        "resource": draw(ident),
        "action": draw(st.sampled_from(["read", "create", "revoke"])),
        "result": draw(st.sampled_from(list(AuditResult))),
        "ip_address": draw(ips),
        "user_agent": draw(st.none() | safe_text),
        "request_id": draw(st.none() | ident),
        "details": draw(details),
        "seq": draw(st.integers(1, MAX_SEQ)),
        "prev_hash": draw(st.from_regex(r"\A[0-9a-f]{64}\Z")),
        "event_hash": "0" * 64,
    }
    try:
        return StoredAuditEvent.model_validate(values)
    except ValueError:
        # Rare: details over the size limit. Still compare: construct without validation.
        return StoredAuditEvent.model_construct(**values)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_canonical_bytes_equal_rfc8785_of_the_canonical_form(event: StoredAuditEvent) -> None:
    # Given any valid stored event (and some only constructed: other time zones, years < 1000)
    # Then the fast event encoder gives exactly the reference bytes
    expected = canonicalize_reference(canonical_form(event, seq=event.seq, prev_hash=event.prev_hash))
    assert canonical_bytes(event, seq=event.seq, prev_hash=event.prev_hash) == expected


def test_a_constructed_event_with_odd_types_takes_the_reference_path() -> None:
    base = AuditEventIn.model_validate(
        {
            "event_id": UUID(int=1),
            "occurred_at": datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC),
            "event_type": "api.request",
            "actor": "a",
            "org_id": UUID(int=2),
            "resource": "r",
            "action": "read",
            "result": "success",
        }
    )
    odd = [
        base,  # year < 1000: strftime does not pad
        base.model_copy(update={"occurred_at": datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1)))}),
        base.model_copy(update={"ip_address": IPv6Address("fe80::1%eth0")}),
        base.model_copy(update={"event_id": "not-a-uuid"}),
        base.model_copy(update={"details": {"f": 0.1}}),
    ]
    for event in odd:
        assert canonical._fast_canonical_bytes(event, 1, "0" * 64) is None
        assert canonical_bytes(event, seq=1, prev_hash="0" * 64) == canonicalize_reference(
            canonical_form(event, seq=1, prev_hash="0" * 64)
        )


def test_the_fast_path_is_taken_for_a_typical_event() -> None:
    event = AuditEventIn.model_validate(
        {
            "event_id": UUID(int=1),
            "occurred_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "event_type": "api.request",
            "actor": "api_key:x",
            "org_id": UUID(int=2),
            "resource": "route:GET:/v1/usage",
            "action": "read",
            "result": "success",
            "ip_address": "192.0.2.1",
            "user_agent": 'curl "8"\n\u2028é',
            "details": {"status": 200, "route": "/v1/usage", "ok": True, "tags": ["a", None]},
        }
    )
    fast_bytes = canonical._fast_canonical_bytes(event, 7, "a" * 64)
    assert fast_bytes is not None
    assert fast_bytes == canonicalize_reference(canonical_form(event, seq=7, prev_hash="a" * 64))
