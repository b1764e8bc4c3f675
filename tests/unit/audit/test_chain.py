"""Canonical form (RFC 8785) and the per-organisation hash chain (compliance.audit.canonical/chain)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from compliance.audit.canonical import (
    GENESIS_HASH,
    HASHED_FIELDS,
    CanonicalizationError,
    canonical_bytes,
    canonical_form,
    canonicalize,
    compute_event_hash,
    format_ip,
    format_timestamp,
    recompute_hash,
)
from compliance.audit.chain import (
    ChainHead,
    FailureReason,
    link,
    merkle_leaf_data,
    merkle_leaves,
    verify_chain,
)
from compliance.audit.events import FORBIDDEN_DETAIL_KEYS, AuditEventIn, AuditResult, StoredAuditEvent

ORG = UUID("0b5e4c52-3f0e-4d7e-9a55-8f6a2f1c9d10")
OTHER_ORG = UUID("9d4a4b8e-0000-4000-8000-000000000001")
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def event(i: int = 0, org: UUID = ORG, **overrides: Any) -> AuditEventIn:
    fields: dict[str, Any] = {
        "event_id": uuid4(),
        "occurred_at": T0 + timedelta(seconds=i),
        "event_type": "api_key.created",
        "actor": "api_key:7f1c2d9e",
        "org_id": org,
        "resource": f"api_key/{i}",
        "action": "create",
        "result": "success",
        "ip_address": "203.0.113.7",
        "user_agent": "curl/8.5.0",
        "request_id": f"req-{i}",
        "details": {"i": i},
    }
    fields.update(overrides)
    return AuditEventIn.model_validate(fields)


def chain(n: int) -> list[StoredAuditEvent]:
    return link([event(i) for i in range(n)], None)


# ------------------------------------------------------------------ RFC 8785 vectors


def from_bits(bits: int) -> float:
    return float(struct.unpack(">d", bits.to_bytes(8, "big"))[0])


# RFC 8785 Appendix B: IEEE-754 bit patterns and their required serialisation.
RFC8785_NUMBERS = [
    (0x0000000000000000, "0"),
    (0x8000000000000000, "0"),
    (0x0000000000000001, "5e-324"),
    (0x8000000000000001, "-5e-324"),
    (0x7FEFFFFFFFFFFFFF, "1.7976931348623157e+308"),
    (0xFFEFFFFFFFFFFFFF, "-1.7976931348623157e+308"),
    (0x4340000000000000, "9007199254740992"),
    (0xC340000000000000, "-9007199254740992"),
    (0x4430000000000000, "295147905179352830000"),
    (0x44B52D02C7E14AF5, "9.999999999999997e+22"),
    (0x44B52D02C7E14AF6, "1e+23"),
    (0x44B52D02C7E14AF7, "1.0000000000000001e+23"),
    (0x444B1AE4D6E2EF4E, "999999999999999700000"),
    (0x444B1AE4D6E2EF4F, "999999999999999900000"),
    (0x444B1AE4D6E2EF50, "1e+21"),
    (0x3EB0C6F7A0B5ED8C, "9.999999999999997e-7"),
    (0x3EB0C6F7A0B5ED8D, "0.000001"),
    (0x41B3DE4355555553, "333333333.3333332"),
    (0x41B3DE4355555554, "333333333.33333325"),
    (0x41B3DE4355555555, "333333333.3333333"),
    (0x41B3DE4355555556, "333333333.3333334"),
    (0x41B3DE4355555557, "333333333.33333343"),
    (0xBECBF647612F3696, "-0.0000033333333333333333"),
    (0x43143FF3C1CB0959, "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), RFC8785_NUMBERS, ids=[e for _, e in RFC8785_NUMBERS])
def test_rfc8785_appendix_b_numbers(bits: int, expected: str) -> None:
    # Given an IEEE-754 double from RFC 8785 Appendix B
    # When it is canonicalised, Then it is serialised exactly as the RFC (ECMAScript) requires
    assert canonicalize(from_bits(bits)) == expected.encode()


@pytest.mark.parametrize("bits", [0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000, 0xFFF0000000000000])
def test_rfc8785_nan_and_infinity_are_errors(bits: int) -> None:
    with pytest.raises(CanonicalizationError):
        canonicalize(from_bits(bits))


def test_rfc8785_section_3_2_2_example() -> None:
    # Given the input of RFC 8785 §3.2.2 (parsed as JSON, numbers become doubles)
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    # When canonicalised, Then the bytes are the RFC's output
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(json.loads(source)) == expected.encode("utf-8")


def test_rfc8785_section_3_2_3_property_sorting_by_utf16_code_units() -> None:
    # Given the RFC's sorting example (an emoji outside the BMP sorts by its surrogates)
    source = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    # When canonicalised, Then the members come in the RFC's order
    order = [key for key in json.loads(canonicalize(source))]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_integers_beyond_the_double_range_are_refused() -> None:
    assert canonicalize(2**53 - 1) == b"9007199254740991"
    with pytest.raises(CanonicalizationError):
        canonicalize(2**53)


# ------------------------------------------------------------------ canonical form of an event

KAT_EVENT = AuditEventIn.model_validate(
    {
        "event_id": "6F9619FF-8B86-D011-B42D-00C04FC964FF",
        "occurred_at": "2026-11-23T13:30:00.000005+01:00",
        "event_type": "api_key.revoked",
        "actor": "api_key:7f1c2d9e",
        "org_id": str(ORG),
        "resource": "api_key/3c9a",
        "action": "revoke",
        "result": "denied",
        "ip_address": "2001:DB8::7",
        "user_agent": "Mozilla/5.0 \u00e9",
        "request_id": "req-1",
        "details": {"z": 1, "a": [0.1, 1e21, -0.0], "\u20ac": "x"},
    }
)
KAT_BYTES = (
    b'{"action":"revoke","actor":"api_key:7f1c2d9e","details":{"a":[0.1,1e+21,0],"z":1,"\xe2\x82\xac":"x"},'
    b'"event_id":"6f9619ff-8b86-d011-b42d-00c04fc964ff","event_type":"api_key.revoked",'
    b'"ip_address":"2001:db8::7","occurred_at":"2026-11-23T12:30:00.000005Z",'
    b'"org_id":"0b5e4c52-3f0e-4d7e-9a55-8f6a2f1c9d10",'
    b'"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"request_id":"req-1","resource":"api_key/3c9a","result":"denied","seq":1,'
    b'"user_agent":"Mozilla/5.0 \xc3\xa9"}'
)
KAT_HASH = "3ccc3f6c93855130e6975b82f280fd7be0302bf5e8066541ebc26423a473dd0a"


def test_canonical_form_known_answer() -> None:
    # Given a fixed event (uppercase UUID, +01:00 time, IPv6 in capitals, float details)
    # When it is canonicalised as the first event of a chain
    got = canonical_bytes(KAT_EVENT, seq=1, prev_hash=GENESIS_HASH)
    # Then the bytes and hash are exactly the documented form: this pins the format forever
    assert got == KAT_BYTES
    assert hashlib.sha256(KAT_BYTES).hexdigest() == KAT_HASH
    assert compute_event_hash(KAT_EVENT, seq=1, prev_hash=GENESIS_HASH) == KAT_HASH


def test_canonical_form_has_every_stored_field_but_event_hash() -> None:
    form = canonical_form(event(), seq=3, prev_hash=GENESIS_HASH)
    assert tuple(sorted(form)) == HASHED_FIELDS
    assert set(HASHED_FIELDS) == set(StoredAuditEvent.model_fields) - {"event_hash"}


def test_absent_optional_fields_are_hashed_as_null() -> None:
    bare = event(ip_address=None, user_agent=None, request_id=None, details={})
    form = json.loads(canonical_bytes(bare, seq=1, prev_hash=GENESIS_HASH))
    assert form["ip_address"] is None and form["user_agent"] is None and form["request_id"] is None
    assert form["details"] == {}


def test_timestamps_are_rfc3339_utc_with_microseconds() -> None:
    assert format_timestamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    assert format_timestamp(datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))) == (
        "2025-12-31T23:30:00.000000Z"
    )
    with pytest.raises(ValueError, match="aware"):
        format_timestamp(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (IPv4Address("192.0.2.1"), "192.0.2.1"),
        (IPv6Address("2001:0DB8:0000:0000:0000:0000:0000:0001"), "2001:db8::1"),
        (IPv6Address("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1"),  # longest run
        (IPv6Address("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1"),  # leftmost of equal runs
        (IPv6Address("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1"),  # one zero group stays
        (IPv6Address("::"), "::"),
        (IPv6Address("::1"), "::1"),
        (IPv6Address("1::"), "1::"),
        (IPv6Address("::ffff:192.0.2.1"), "::ffff:c000:201"),  # same on every Python version
        (IPv6Address("fe80::1%eth0"), "fe80::1%eth0"),
    ],
)
def test_ip_addresses_are_formatted_per_rfc5952(address: IPv4Address | IPv6Address, text: str) -> None:
    assert format_ip(address) == text


@settings(max_examples=200, deadline=None)
@given(address=st.ip_addresses(v=6))
def test_ipv6_formatting_round_trips_and_matches_the_stdlib_outside_mapped_addresses(
    address: IPv6Address,
) -> None:
    # Then the text parses back to the address, and equals str() wherever str() is stable
    text = format_ip(address)
    assert ip_address(text) == address and text == text.lower()
    if address.ipv4_mapped is None:
        assert text == str(address)


def test_genesis_is_32_zero_bytes() -> None:
    assert bytes.fromhex(GENESIS_HASH) == bytes(32)


# ------------------------------------------------------------------ link


def test_link_starts_a_new_chain_at_genesis() -> None:
    # Given three events for an empty chain
    events_in = [event(i) for i in range(3)]
    # When they are linked
    stored = link(events_in, None)
    # Then they get seq 1..3, each pointing at its predecessor, each hash over its canonical form
    assert [s.seq for s in stored] == [1, 2, 3]
    assert stored[0].prev_hash == GENESIS_HASH
    assert [s.prev_hash for s in stored[1:]] == [s.event_hash for s in stored[:-1]]
    for s in stored:
        assert (
            s.event_hash == hashlib.sha256(canonical_bytes(s, seq=s.seq, prev_hash=s.prev_hash)).hexdigest()
        )
    # And the content is the submitted one
    assert [s.event_id for s in stored] == [e.event_id for e in events_in]
    assert stored[1].model_dump(include=set(AuditEventIn.model_fields)) == events_in[1].model_dump()


def test_link_continues_from_the_current_head() -> None:
    # Given a chain linked in one go and the same events linked in two batches
    events_in = [event(i) for i in range(5)]
    whole = link(events_in, None)
    first = link(events_in[:2], None)
    second = link(events_in[2:], (first[-1].seq, first[-1].event_hash))
    # Then both give the same chain, which verifies
    assert first + second == whole
    assert verify_chain(whole).valid


def test_link_accepts_a_chain_head() -> None:
    stored = chain(2)
    more = link([event(9)], ChainHead(stored[-1].seq, stored[-1].event_hash))
    assert more[0].seq == 3 and verify_chain(stored + more).valid


def test_link_of_nothing_is_nothing() -> None:
    assert link([], None) == []


@pytest.mark.parametrize(
    ("events_in", "prev", "message"),
    [
        ([event(0), event(1, org=OTHER_ORG)], None, "one organisation"),
        ([(e := event(0)), e], None, "duplicate event_id"),
        ([event(0)], (1, "A" * 64), "hex"),
        ([event(0)], (-1, GENESIS_HASH), "seq"),
        ([event(0)], (0, "1" * 64), "genesis"),
    ],
)
def test_link_rejects_inconsistent_input(
    events_in: list[AuditEventIn], prev: tuple[int, str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        link(events_in, prev)


def test_merkle_leaf_data_is_the_raw_event_hash() -> None:
    stored = chain(3)
    assert merkle_leaf_data(stored[0]) == bytes.fromhex(stored[0].event_hash)
    assert len(merkle_leaf_data(stored[0])) == 32
    assert list(merkle_leaves(stored)) == [bytes.fromhex(s.event_hash) for s in stored]


# ------------------------------------------------------------------ verify_chain: examples


def test_an_intact_chain_is_valid() -> None:
    stored = chain(4)
    verdict = verify_chain(stored)
    assert verdict.valid and verdict.checked == 4 and verdict.first_bad_seq is None and verdict.reason is None
    assert verdict.head == (4, stored[-1].event_hash)
    assert str(verdict) == "valid (4 events)"


def test_an_empty_chain_is_valid() -> None:
    verdict = verify_chain([])
    assert verdict.valid and verdict.checked == 0 and verdict.head is None


def test_modified_content_is_a_hash_mismatch_at_that_event() -> None:
    # Given a chain whose second event's action was edited in storage
    stored = chain(3)
    stored[1] = stored[1].model_copy(update={"result": AuditResult.SUCCESS, "action": "read"})
    # When verified
    verdict = verify_chain(stored)
    # Then it is invalid at seq 2 because the content no longer matches its hash
    assert not verdict.valid
    assert (verdict.first_bad_seq, verdict.found_seq, verdict.reason) == (2, 2, FailureReason.HASH_MISMATCH)
    assert verdict.checked == 1 and verdict.head == (1, stored[0].event_hash)
    assert str(verdict).startswith("invalid at seq 2: hash_mismatch")


def test_modified_and_rehashed_event_breaks_the_next_link() -> None:
    # Given an attacker who edits event 2 and recomputes its own hash
    stored = chain(3)
    edited = stored[1].model_copy(update={"details": {"i": 99}})
    stored[1] = edited.model_copy(update={"event_hash": recompute_hash(edited)})
    # Then event 3 no longer points at it
    verdict = verify_chain(stored)
    assert (verdict.first_bad_seq, verdict.reason) == (3, FailureReason.PREV_HASH_MISMATCH)


def test_deleted_event_is_a_seq_gap() -> None:
    stored = chain(4)
    del stored[1]
    verdict = verify_chain(stored)
    assert (verdict.first_bad_seq, verdict.found_seq, verdict.reason) == (2, 3, FailureReason.SEQ_GAP)


def test_deleted_and_renumbered_event_is_a_broken_link() -> None:
    # Given event 2 deleted and the later events renumbered (their hashes cannot follow)
    stored = chain(4)
    del stored[1]
    stored[1:] = [s.model_copy(update={"seq": s.seq - 1}) for s in stored[1:]]
    verdict = verify_chain(stored)
    assert (verdict.first_bad_seq, verdict.reason) == (2, FailureReason.PREV_HASH_MISMATCH)


def test_duplicated_event_is_a_seq_duplicate() -> None:
    stored = chain(3)
    stored.insert(2, stored[1])
    verdict = verify_chain(stored)
    assert (verdict.first_bad_seq, verdict.found_seq, verdict.reason) == (3, 2, FailureReason.SEQ_DUPLICATE)


def test_swapped_events_are_caught_at_the_first_moved_one() -> None:
    stored = chain(4)
    stored[1], stored[3] = stored[3], stored[1]
    verdict = verify_chain(stored)
    assert (verdict.first_bad_seq, verdict.found_seq, verdict.reason) == (2, 4, FailureReason.SEQ_GAP)
    stored = chain(4)
    stored.append(stored.pop(1))  # 1, 3, 4, 2: caught where 2 should be
    assert verify_chain(stored).first_bad_seq == 2


def test_an_older_seq_later_in_the_stream_is_out_of_order() -> None:
    stored = chain(4)
    stored.insert(3, stored[0])
    verdict = verify_chain(stored)
    assert (verdict.first_bad_seq, verdict.found_seq, verdict.reason) == (
        4,
        1,
        FailureReason.SEQ_OUT_OF_ORDER,
    )


def test_a_well_formed_forged_insertion_is_caught_at_the_displaced_event() -> None:
    # Given a forged event correctly linked after event 1 and given seq 2
    stored = chain(3)
    forged = link([event(42)], (1, stored[0].event_hash))[0]
    tampered = [stored[0], forged, *stored[1:]]
    # Then the forgery itself looks right, but the displaced original event 2 cannot follow it
    verdict = verify_chain(tampered)
    assert (verdict.first_bad_seq, verdict.found_seq, verdict.reason) == (3, 2, FailureReason.SEQ_DUPLICATE)


def test_another_orgs_event_is_an_org_mismatch() -> None:
    stored = chain(3)
    foreign = link([event(0, org=OTHER_ORG), event(1, org=OTHER_ORG)], None)
    verdict = verify_chain([stored[0], foreign[1], stored[2]])
    assert (verdict.first_bad_seq, verdict.reason) == (2, FailureReason.ORG_MISMATCH)
    # And a chain checked against the wrong org fails at its first event
    assert verify_chain(stored, org_id=OTHER_ORG).first_bad_seq == 1


def test_verification_can_resume_from_a_previous_head() -> None:
    # Given a long chain verified in two segments
    stored = chain(6)
    first = verify_chain(stored[:4])
    assert first.valid and first.head is not None
    second = verify_chain(stored[4:], start_seq=first.head.seq + 1, start_prev_hash=first.head.event_hash)
    # Then the second segment is valid too, and a wrong start hash is caught at once
    assert second.valid and second.checked == 2 and second.head == (6, stored[-1].event_hash)
    bad = verify_chain(stored[4:], start_seq=5, start_prev_hash="f" * 64)
    assert (bad.first_bad_seq, bad.reason) == (5, FailureReason.PREV_HASH_MISMATCH)


def test_bad_start_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="start_seq"):
        verify_chain([], start_seq=0)
    with pytest.raises(ValueError, match="genesis"):
        verify_chain([], start_seq=1, start_prev_hash="1" * 64)
    with pytest.raises(ValueError, match="checkpoint"):
        verify_chain([], start_seq=5, start_prev_hash="1" * 64, checkpoint=(2, "2" * 64))


def test_verification_streams_and_stops_at_the_first_failure() -> None:
    # Given a lazily produced stream whose second event is bad
    stored = chain(3)
    stored[1] = stored[1].model_copy(update={"actor": "intruder"})
    consumed: list[int] = []

    def stream() -> Iterator[StoredAuditEvent]:
        for s in stored:
            consumed.append(s.seq)
            yield s

    # When verified, Then it stops reading right there
    assert verify_chain(stream()).first_bad_seq == 2
    assert consumed == [1, 2]


# ------------------------------------------------------------------ truncation and checkpoints


def test_pure_tail_truncation_leaves_a_valid_prefix() -> None:
    # Given the newest two events deleted
    stored = chain(5)
    # Then the rest is a valid chain on its own: the chain alone cannot show truncation
    assert verify_chain(stored[:3]).valid


def test_checkpoint_reveals_tail_truncation() -> None:
    # Given a checkpoint taken when the chain had 5 events
    stored = chain(5)
    checkpoint = ChainHead(5, stored[-1].event_hash)
    # When the last two events are deleted
    verdict = verify_chain(stored[:3], checkpoint=checkpoint)
    # Then verification reports truncation at the first missing seq
    assert not verdict.valid
    assert (verdict.first_bad_seq, verdict.found_seq, verdict.reason) == (4, None, FailureReason.TRUNCATED)
    assert verdict.checked == 3
    # And the intact chain, or one that grew since, matches the checkpoint
    assert verify_chain(stored, checkpoint=checkpoint).valid
    grown = stored + link([event(7)], checkpoint)
    assert verify_chain(grown, checkpoint=checkpoint).valid


def test_checkpoint_reveals_a_rewritten_chain() -> None:
    # Given a checkpoint at 4, then events 3.. deleted and replaced by a freshly linked history
    stored = chain(4)
    checkpoint = (4, stored[-1].event_hash)
    rewritten = stored[:2] + link([event(i + 50) for i in range(3)], (2, stored[1].event_hash))
    # Then the chain verifies on its own, but not against the checkpoint
    assert verify_chain(rewritten).valid
    verdict = verify_chain(rewritten, checkpoint=checkpoint)
    assert (verdict.first_bad_seq, verdict.reason) == (4, FailureReason.CHECKPOINT_MISMATCH)


def test_checkpoint_at_the_start_of_a_segment_is_compared_with_the_start_hash() -> None:
    stored = chain(4)
    ok = verify_chain(
        stored[2:], start_seq=3, start_prev_hash=stored[1].event_hash, checkpoint=(2, stored[1].event_hash)
    )
    assert ok.valid
    bad = verify_chain(
        stored[2:], start_seq=3, start_prev_hash=stored[1].event_hash, checkpoint=(2, "e" * 64)
    )
    assert (bad.first_bad_seq, bad.reason) == (2, FailureReason.CHECKPOINT_MISMATCH)


# ------------------------------------------------------------------ properties

_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6).filter(
    lambda k: k not in FORBIDDEN_DETAIL_KEYS
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)
)
_details = st.dictionaries(_keys, _scalars | st.lists(_scalars, max_size=2), max_size=2)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])

events_in = st.builds(
    AuditEventIn,
    event_id=st.uuids(),
    occurred_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=_zones
    ),
    event_type=st.sampled_from(
        ["api_key.created", "api_key.revoked", "auth.login_failed", "dsar.export.completed"]
    ),
    actor=st.sampled_from(["api_key:7f1c2d9e", "system:scheduler", "user:subj_1"]),
    org_id=st.just(ORG),
    resource=st.sampled_from(["api_key/1", "org/settings", "usage/*"]),
    action=st.sampled_from(["create", "revoke", "read", "export"]),
    result=st.sampled_from(AuditResult),
    ip_address=st.none() | st.ip_addresses(),
    user_agent=st.none() | st.text(max_size=20),
    request_id=st.none() | st.sampled_from(["req-1", "req-2", "b7e1:0"]),
    details=_details,
)


def chains(min_size: int = 1) -> st.SearchStrategy[list[StoredAuditEvent]]:
    """Valid linked chains of ``min_size``..5 events of one organisation."""
    batches = st.lists(events_in, min_size=min_size, max_size=5, unique_by=lambda e: e.event_id)
    return batches.map(lambda es: link(es, None))


FIELDS = sorted(StoredAuditEvent.model_fields)
PROPS = settings(max_examples=50, deadline=None)


def altered(stored: StoredAuditEvent, field: str, data: st.DataObject) -> StoredAuditEvent:
    """``stored`` with one field changed to a different, well-typed value (no re-hashing)."""
    old = getattr(stored, field)
    new: Any
    if field in ("event_id", "org_id"):
        new = data.draw(st.uuids().filter(lambda u: u != old))
    elif field == "occurred_at":
        new = old + timedelta(
            microseconds=data.draw(st.integers(1, 10**12)) * data.draw(st.sampled_from([1, -1]))
        )
    elif field == "result":
        new = data.draw(st.sampled_from([r for r in AuditResult if r != old]))
    elif field == "ip_address":
        new = data.draw((st.none() | st.ip_addresses()).filter(lambda ip: ip != old))
    elif field == "details":
        new = {**old, "tampered": data.draw(_scalars)} if "tampered" not in old else {}
    elif field == "seq":
        new = data.draw(st.integers(1, 50).filter(lambda s: s != old))
    elif field in ("prev_hash", "event_hash"):
        pos = data.draw(st.integers(0, 63))
        flipped = "0" if old[pos] != "0" else "1"
        new = old[:pos] + flipped + old[pos + 1 :]
    else:  # text fields: actor, resource, action, event_type, request_id, user_agent
        new = "x" if old is None else old + "x"
    assert new != old
    return stored.model_copy(update={field: new})


@PROPS
@given(stored=chains(), data=st.data())
def test_any_field_modification_is_caught_at_that_event(
    stored: list[StoredAuditEvent], data: st.DataObject
) -> None:
    # Given a valid chain and one field of one event changed in storage
    assert verify_chain(stored).valid
    index = data.draw(st.integers(0, len(stored) - 1), label="index")
    field = data.draw(st.sampled_from(FIELDS), label="field")
    tampered = list(stored)
    tampered[index] = altered(stored[index], field, data)
    # When verified, Then the chain is invalid exactly at that event
    verdict = verify_chain(tampered)
    assert not verdict.valid
    assert verdict.first_bad_seq == index + 1
    assert verdict.checked == index


@PROPS
@given(stored=chains(), data=st.data())
def test_deletion_is_caught_at_the_gap_and_tail_deletion_by_the_checkpoint(
    stored: list[StoredAuditEvent], data: st.DataObject
) -> None:
    # Given one event deleted
    index = data.draw(st.integers(0, len(stored) - 1), label="index")
    tampered = stored[:index] + stored[index + 1 :]
    checkpoint = (stored[-1].seq, stored[-1].event_hash)
    verdict = verify_chain(tampered)
    if index < len(stored) - 1:
        # Then it is caught where the event is missing, with or without a checkpoint
        assert (verdict.valid, verdict.first_bad_seq) == (False, index + 1)
    else:
        # Or, for the newest one, only the checkpoint shows it
        assert verdict.valid
        verdict = verify_chain(tampered, checkpoint=checkpoint)
        assert (verdict.valid, verdict.first_bad_seq, verdict.reason) == (
            False,
            index + 1,
            FailureReason.TRUNCATED,
        )


@PROPS
@given(stored=chains(2), data=st.data())
def test_range_deletion_with_continuation_is_caught_at_the_first_missing_event(
    stored: list[StoredAuditEvent], data: st.DataObject
) -> None:
    # Given events [start, stop) cut out of the middle while later events remain
    start, width = data.draw(st.tuples(st.integers(0, 63), st.integers(0, 63)), label="cut")
    start %= len(stored) - 1
    stop = start + 1 + width % (len(stored) - 1 - start)
    verdict = verify_chain(stored[:start] + stored[stop:])
    assert (verdict.valid, verdict.first_bad_seq, verdict.reason) == (False, start + 1, FailureReason.SEQ_GAP)


@PROPS
@given(
    stored=chains(),
    data=st.data(),
    extra=st.lists(events_in, min_size=1, max_size=3, unique_by=lambda e: e.event_id),
)
def test_truncation_then_new_events_is_caught_by_the_checkpoint(
    stored: list[StoredAuditEvent], data: st.DataObject, extra: list[AuditEventIn]
) -> None:
    # Given the chain cut after k events and new events linked onto the shortened head
    k = data.draw(st.integers(0, len(stored) - 1), label="k")
    head = None if k == 0 else (stored[k - 1].seq, stored[k - 1].event_hash)
    rewritten = stored[:k] + link(extra, head)
    # Then the chain alone looks valid (nothing to compare with) ...
    assert verify_chain(rewritten).valid
    # ... but a checkpoint of the original chain catches it: truncated, or a different history
    n = len(stored)
    verdict = verify_chain(rewritten, checkpoint=(n, stored[-1].event_hash))
    assert not verdict.valid
    if len(rewritten) < n:
        assert (verdict.first_bad_seq, verdict.reason) == (len(rewritten) + 1, FailureReason.TRUNCATED)
    else:
        assert (verdict.first_bad_seq, verdict.reason) == (n, FailureReason.CHECKPOINT_MISMATCH)


@PROPS
@given(stored=chains(), data=st.data())
def test_insertion_is_caught_at_the_first_differing_position(
    stored: list[StoredAuditEvent], data: st.DataObject
) -> None:
    # Given a copy of an existing event, or a forged event with an arbitrary link, inserted anywhere
    position = data.draw(st.integers(0, len(stored)), label="position")
    if data.draw(st.booleans(), label="copy"):
        intruder = stored[data.draw(st.integers(0, len(stored) - 1), label="source")]
    else:
        forged = link([data.draw(events_in, label="forged")], (0, GENESIS_HASH))[0]
        intruder = forged.model_copy(
            update={
                "seq": data.draw(st.integers(1, 10), label="seq"),
                "prev_hash": hashlib.sha256(b"x").hexdigest(),
            }
        )
    tampered = [*stored[:position], intruder, *stored[position:]]
    # Then verification fails at the first position where the stream differs from the real chain
    first_diff = next(i for i, (a, b) in enumerate(zip(tampered, [*stored, None], strict=True)) if a != b)
    verdict = verify_chain(tampered)
    assert (verdict.valid, verdict.first_bad_seq) == (False, first_diff + 1)


@PROPS
@given(stored=chains(2), data=st.data())
def test_reordering_is_caught_at_the_first_moved_event(
    stored: list[StoredAuditEvent], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(range(len(stored))), label="order")
    assume(order != list(range(len(stored))))
    tampered = [stored[i] for i in order]
    first_moved = next(i for i, j in enumerate(order) if i != j)
    verdict = verify_chain(tampered)
    assert (verdict.valid, verdict.first_bad_seq) == (False, first_moved + 1)


@PROPS
@given(stored=chains())
def test_linked_chains_verify_and_survive_json_storage(stored: list[StoredAuditEvent]) -> None:
    # Given a linked chain written as JSON and read back
    reloaded = [StoredAuditEvent.model_validate(json.loads(s.model_dump_json())) for s in stored]
    # Then it still verifies, with the same hashes
    assert verify_chain(reloaded).valid
    assert [s.event_hash for s in reloaded] == [s.event_hash for s in stored]
