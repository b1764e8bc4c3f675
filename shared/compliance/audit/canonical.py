"""Canonical form and hash of an audit event.

Canonicalisation is RFC 8785 (JSON Canonicalization Scheme, JCS), done by the ``rfc8785``
package (Trail of Bits, pure Python): object members sorted by the UTF-16 code units of their
names, no insignificant whitespace, strings as UTF-8 with only the mandatory escapes, numbers
serialised like ECMAScript ``Number.prototype.toString`` (integers outside +-(2**53-1), NaN and
infinities are errors).

Hashed object (the "canonical form" of a stored event)
-------------------------------------------------------
A JSON object with exactly these 14 members, always all present (``null`` when absent), i.e. every
stored field except ``event_hash``:

==============  ==========================================================================
``action``      string
``actor``       string
``details``     JSON object, as validated (``{}`` when empty)
``event_id``    UUID, lowercase hyphenated 8-4-4-4-12
``event_type``  string
``ip_address``  IPv4: dotted quad (``192.0.2.1``); IPv6: RFC 5952 text, i.e. lowercase hex
                groups without leading zeros, the longest run (leftmost on a tie) of two or
                more zero groups as ``::``, never a dotted IPv4 tail (``::ffff:c000:201``),
                then ``%zone`` if any; or ``null``. Formatted here, not by ``str()``: Python
                3.13 changed ``str()`` of IPv4-mapped IPv6 addresses.
``occurred_at`` RFC 3339 UTC with exactly six fractional digits and ``Z``:
                ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
``org_id``      UUID, lowercase hyphenated
``prev_hash``   64 lowercase hex characters: the ``event_hash`` of ``seq - 1``, or
                :data:`GENESIS_HASH` (32 zero bytes, i.e. 64 ``0``) for the first event
``request_id``  string or ``null``
``resource``    string
``result``      one of ``success``, ``failure``, ``denied``, ``error``
``seq``         integer >= 1 (JSON number, at most 2**53 - 1)
``user_agent``  string or ``null``
==============  ==========================================================================

``event_hash = lowercase hex(SHA-256(JCS(canonical form)))``. The Merkle leaf data of an event is
the 32 raw bytes of its ``event_hash`` (:func:`compliance.audit.chain.merkle_leaf_data`).

Adding a field later changes the preimage of every event: it must then be hashed only when
present (or behind a format version), so that old events keep verifying.
"""

from __future__ import annotations

import hashlib
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any
from uuid import UUID

import rfc8785

if TYPE_CHECKING:
    from datetime import datetime

    from compliance.audit.events import AuditEventIn, StoredAuditEvent

GENESIS_HASH = "0" * 64
"""``prev_hash`` of ``seq`` 1: 32 zero bytes in hex."""

HASHED_FIELDS = (
    "action",
    "actor",
    "details",
    "event_id",
    "event_type",
    "ip_address",
    "occurred_at",
    "org_id",
    "prev_hash",
    "request_id",
    "resource",
    "result",
    "seq",
    "user_agent",
)

CanonicalizationError = rfc8785.CanonicalizationError


def canonicalize(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of a JSON value (dict/list/str/int/float/bool/None).

    Raises :class:`CanonicalizationError` (a ``ValueError``) for values JCS cannot represent.
    """
    return rfc8785.dumps(value)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with microseconds and 'Z'. Naive datetimes are refused."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("timestamp must be timezone-aware")
    utc = (value - offset).replace(tzinfo=None)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_uuid(value: UUID) -> str:
    return str(value)  # str(UUID) is already lowercase, hyphenated


def format_ip(value: IPv4Address | IPv6Address) -> str:
    """IPv4 dotted quad, or IPv6 per RFC 5952 without an embedded dotted IPv4 part."""
    if isinstance(value, IPv4Address):
        return str(value)
    groups = [int.from_bytes(value.packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_start, best_len, run_start = -1, 0, -1
    for i, group in enumerate([*groups, 1]):  # sentinel closes a trailing run
        if group == 0 and run_start < 0:
            run_start = i
        elif group != 0 and run_start >= 0:
            if i - run_start > best_len:
                best_start, best_len = run_start, i - run_start
            run_start = -1
    hexes = [f"{group:x}" for group in groups]
    if best_len >= 2:
        text = ":".join(hexes[:best_start]) + "::" + ":".join(hexes[best_start + best_len :])
    else:
        text = ":".join(hexes)
    return text if value.scope_id is None else f"{text}%{value.scope_id}"


def canonical_form(event: AuditEventIn, *, seq: int, prev_hash: str) -> dict[str, Any]:
    """The JSON object that is hashed for ``event`` at position ``seq`` after ``prev_hash``."""
    return {
        "action": event.action,
        "actor": event.actor,
        "details": event.details,
        "event_id": format_uuid(event.event_id),
        "event_type": event.event_type,
        "ip_address": None if event.ip_address is None else format_ip(event.ip_address),
        "occurred_at": format_timestamp(event.occurred_at),
        "org_id": format_uuid(event.org_id),
        "prev_hash": prev_hash,
        "request_id": event.request_id,
        "resource": event.resource,
        "result": str(event.result),  # StrEnum: its value
        "seq": seq,
        "user_agent": event.user_agent,
    }


def canonical_bytes(event: AuditEventIn, *, seq: int, prev_hash: str) -> bytes:
    """RFC 8785 bytes of :func:`canonical_form`."""
    return canonicalize(canonical_form(event, seq=seq, prev_hash=prev_hash))


def compute_event_hash(event: AuditEventIn, *, seq: int, prev_hash: str) -> str:
    """``event_hash`` (lowercase hex SHA-256) of ``event`` at ``seq`` after ``prev_hash``."""
    return hashlib.sha256(canonical_bytes(event, seq=seq, prev_hash=prev_hash)).hexdigest()


def recompute_hash(stored: StoredAuditEvent) -> str:
    """The hash ``stored`` *should* carry, from its own ``seq`` and ``prev_hash``."""
    return compute_event_hash(stored, seq=stored.seq, prev_hash=stored.prev_hash)
