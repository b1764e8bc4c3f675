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

Speed
-----
``rfc8785`` is a pure-Python reference encoder (~100 us per event here). Hashing every event
of a chain on append and verification goes through a fast path that produces the same bytes
for the values it accepts and hands everything else to ``rfc8785``: JSON values made only of
``str``, ``int`` in the exact range, ``bool``, ``None`` and plain ``dict``/``list`` whose keys
sort identically by code point and by UTF-16 code unit (no key character at or above U+D800)
are written by the standard library's C JSON encoder (``ensure_ascii=False`` escapes exactly
the characters RFC 8785 escapes, with the same short forms and lowercase ``\\u00xx``).
Floats (ECMAScript number formatting), other types, lone surrogates and deep nesting always
take the ``rfc8785`` path. ``tests/unit/audit/test_canonical_fast.py`` checks byte identity
against ``rfc8785`` on generated values and events.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any
from uuid import UUID

import rfc8785

if TYPE_CHECKING:
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

_SAFE_INT = 2**53 - 1
_FAST_MAX_DEPTH = 32  # deeper values take the reference path (which also owns recursion errors)
# C; quotes and escapes a string exactly as RFC 8785 does (the ensure_ascii=False encoder).
_encode_str: Callable[[str], str] = json.encoder.encode_basestring
_json_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False, check_circular=False
)
# The C encoder itself, built once (JSONEncoder.encode builds one per call). Only for values
# _plain accepted: no circular check, no default hook, no floats.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encoder: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, None, _encode_str, None, ":", ",", True, False, False)
)


def _encode_plain(value: Any) -> str:
    if _c_encoder is None:  # pragma: no cover - CPython always has the C encoder
        return _json_encoder.encode(value)
    return "".join(_c_encoder(value, 0))


def _plain(value: Any, depth: int) -> bool:
    """Whether the C JSON encoder writes ``value`` exactly as RFC 8785 does (see module doc)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    if depth >= _FAST_MAX_DEPTH:
        return False
    if kind is dict:
        items: Iterable[Any] = value.values()
        for key in value:
            # Code point order equals UTF-16 order below U+D800 (surrogates, then U+E000.. differ).
            if type(key) is not str or not (key.isascii() or max(key) < "\ud800"):
                return False
    elif kind is list:
        items = value
    else:
        return False
    for item in items:  # scalars inline: most details are flat
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if not -_SAFE_INT <= item <= _SAFE_INT:
                return False
        elif not _plain(item, depth + 1):
            return False
    return True


def canonicalize(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes of a JSON value (dict/list/str/int/float/bool/None).

    Raises :class:`CanonicalizationError` (a ``ValueError``) for values JCS cannot represent.
    """
    if _plain(value, 0):
        try:
            return _encode_plain(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the reference encoder raises the right error
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
    fast = _fast_canonical_bytes(event, seq, prev_hash)
    if fast is not None:
        return fast
    return canonicalize(canonical_form(event, seq=seq, prev_hash=prev_hash))


@functools.lru_cache(maxsize=4096)
def _ip_text(version: int, value: int) -> str:
    # Keyed by the address integer: hashing an ip_address object costs more than formatting it.
    return format_ip(IPv4Address(value) if version == 4 else IPv6Address(value))


def _json_str(value: Any) -> str | None:
    """JCS text of an optional string field; ``None`` when the fast path cannot vouch for it."""
    if value is None:
        return "null"
    if type(value) is str:
        return _encode_str(value)
    return None


_last_org: tuple[int, str] = (-1, "")


def _fast_canonical_bytes(event: AuditEventIn, seq: int, prev_hash: str) -> bytes | None:
    """:func:`canonical_form` written directly in member order (the names are ASCII and
    pre-sorted), or ``None`` whenever a value is outside what the fast path reproduces
    byte for byte; the caller then uses the reference encoder."""
    details = event.details
    if type(details) is not dict:
        return None
    if not details:
        details_text = "{}"
    elif _plain(details, 1):
        details_text = _encode_plain(details)
    else:
        return None
    moment = event.occurred_at
    if type(moment) is not datetime or moment.tzinfo is not UTC or moment.year < 1000:
        return None  # strftime's %Y does not pad years below 1000
    ip = event.ip_address
    if ip is None:
        ip_text = "null"
    elif type(ip) is IPv4Address or (type(ip) is IPv6Address and ip.scope_id is None):
        ip_text = _encode_str(_ip_text(ip.version, int(ip)))
    else:
        return None
    result = event.result
    if type(seq) is not int or not -_SAFE_INT <= seq <= _SAFE_INT or not isinstance(result, str):
        return None
    event_id, org_id = event.event_id, event.org_id
    if type(event_id) is not UUID or type(org_id) is not UUID:
        return None
    global _last_org
    cached = _last_org
    if cached[0] != org_id.int:  # a chain is one organisation: format its id once
        cached = _last_org = (org_id.int, str(org_id))
    org_text = cached[1]
    request_id, user_agent = _json_str(event.request_id), _json_str(event.user_agent)
    action, actor, event_type, resource = event.action, event.actor, event.event_type, event.resource
    if (
        request_id is None
        or user_agent is None
        or type(action) is not str
        or type(actor) is not str
        or type(event_type) is not str
        or type(resource) is not str
        or type(prev_hash) is not str
    ):
        return None
    # isoformat of a UTC datetime ends in "+00:00"; it is C code, strftime and f-string padding
    # of six fields cost five times as much.
    occurred = moment.isoformat(timespec="microseconds")[:-6]
    text = (
        f'{{"action":{_encode_str(action)},"actor":{_encode_str(actor)},"details":{details_text},'
        f'"event_id":"{event_id}","event_type":{_encode_str(event_type)},"ip_address":{ip_text},'
        f'"occurred_at":"{occurred}Z","org_id":"{org_text}","prev_hash":{_encode_str(prev_hash)},'
        f'"request_id":{request_id},"resource":{_encode_str(resource)},'
        f'"result":{_encode_str(str(result))},"seq":{seq},"user_agent":{user_agent}}}'
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None  # lone surrogate: the reference path raises


def compute_event_hash(event: AuditEventIn, *, seq: int, prev_hash: str) -> str:
    """``event_hash`` (lowercase hex SHA-256) of ``event`` at ``seq`` after ``prev_hash``."""
    return hashlib.sha256(canonical_bytes(event, seq=seq, prev_hash=prev_hash)).hexdigest()


def recompute_hash(stored: StoredAuditEvent) -> str:
    """The hash ``stored`` *should* carry, from its own ``seq`` and ``prev_hash``."""
    return compute_event_hash(stored, seq=stored.seq, prev_hash=stored.prev_hash)
