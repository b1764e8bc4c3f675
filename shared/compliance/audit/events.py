"""Audit events: what producers submit (:class:`AuditEventIn`) and what the chain stores
(:class:`StoredAuditEvent`).

Every state-changing or security-relevant action produces one event. Personal data is minimised:
people are referred to by pseudonymous ids (``actor``, ``resource``, ``details``), never by name or
e-mail, and ``details`` rejects a few key names that would carry secrets or raw content
(:data:`FORBIDDEN_DETAIL_KEYS`). The IP address and user agent are the only direct identifiers and
are kept for security investigation.

All strings must be valid Unicode scalar values without NUL (PostgreSQL ``text`` cannot hold NUL,
RFC 8785 cannot encode lone surrogates). ``details`` is a JSON object whose canonical (RFC 8785)
form is at most :data:`MAX_DETAILS_BYTES` bytes, nested at most :data:`MAX_DETAILS_DEPTH` levels,
with integers inside the IEEE-754 safe range and finite floats only, so that every accepted event
has exactly one canonical form and survives a round trip through JSON/JSONB unchanged.

``occurred_at`` is normalised to UTC and IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) to IPv4
on validation. ``user_agent`` is attacker-controlled and only
informational: it is clipped to :data:`MAX_USER_AGENT_CHARS` characters (NUL replaced by U+FFFD)
instead of rejected, so that an audit event is never lost because of a hostile header.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    JsonValue,
    StringConstraints,
    field_validator,
)

from compliance.audit.canonical import canonicalize

MAX_DETAILS_BYTES = 8192
MAX_DETAILS_DEPTH = 4
MAX_DETAIL_KEY_CHARS = 64
MAX_USER_AGENT_CHARS = 512
MAX_SEQ = 2**53 - 1  # RFC 8785 numbers are IEEE-754 doubles: seq must stay exactly representable.
SAFE_INT = 2**53 - 1

FORBIDDEN_DETAIL_KEYS = frozenset(
    {
        "password",
        "secret",
        "token",
        "api_key",
        "authorization",
        "cookie",
        "email",
        "prompt_text",
        "completion_text",
    }
)

HEX_SHA256 = r"^[0-9a-f]{64}$"


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain lone surrogates") from None
    return value


def _clip_user_agent(value: object) -> object:
    if isinstance(value, str):
        value = value.replace("\x00", "\ufffd")
        value = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> '?'
        return value[:MAX_USER_AGENT_CHARS]
    return value


EventType = Annotated[
    str,
    StringConstraints(min_length=3, max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"),
]
Actor = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@+=-]+$")]
Resource = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._:/@+=*-]+$")]
Action = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")]
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@+=-]+$")]
UserAgent = Annotated[
    str, BeforeValidator(_clip_user_agent), StringConstraints(max_length=MAX_USER_AGENT_CHARS)
]
Sha256Hex = Annotated[str, StringConstraints(min_length=64, max_length=64, pattern=HEX_SHA256)]


class AuditResult(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"
    ERROR = "error"


def _check_details(value: Any, depth: int, path: str) -> None:
    """Walk a JSON value: depth, key names, text, number domains. Raises ``ValueError``."""
    if isinstance(value, dict):
        if depth >= MAX_DETAILS_DEPTH:
            raise ValueError(f"details nested deeper than {MAX_DETAILS_DEPTH} levels at {path}")
        for key, item in value.items():
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_DETAIL_KEY_CHARS:
                raise ValueError(f"details key at {path} must be 1..{MAX_DETAIL_KEY_CHARS} characters")
            _check_text(key)
            if key.lower() in FORBIDDEN_DETAIL_KEYS:
                raise ValueError(f"details key {key!r} at {path} is not allowed in audit events")
            _check_details(item, depth + 1, f"{path}.{key}")
    elif isinstance(value, list):
        if depth >= MAX_DETAILS_DEPTH:
            raise ValueError(f"details nested deeper than {MAX_DETAILS_DEPTH} levels at {path}")
        for index, item in enumerate(value):
            _check_details(item, depth + 1, f"{path}[{index}]")
    elif isinstance(value, str):
        _check_text(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not -SAFE_INT <= value <= SAFE_INT:
            raise ValueError(f"details integer at {path} is outside the exact JSON range (+-2**53-1)")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"details number at {path} must be finite")
    else:  # pragma: no cover - JsonValue admits nothing else
        raise ValueError(f"details value at {path} is not JSON")


class AuditEventIn(BaseModel):
    """One audit event as a producer submits it. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: UUID = Field(description="Producer-chosen idempotency key: resubmitting it is a no-op.")
    occurred_at: AwareDatetime = Field(description="When the action happened; normalised to UTC.")
    event_type: EventType = Field(description="Dotted lowercase, e.g. 'api_key.created'.")
    actor: Actor = Field(description="Who acted, pseudonymous: 'api_key:<uuid>', 'system:<component>'.")
    org_id: UUID
    resource: Resource = Field(description="What was acted on, e.g. 'api_key/<uuid>'.")
    action: Action = Field(description="Verb, e.g. 'create', 'revoke', 'read'.")
    result: AuditResult
    ip_address: IPvAnyAddress | None = None
    user_agent: UserAgent | None = None
    request_id: RequestId | None = None
    details: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("ip_address")
    @classmethod
    def _unmap_ipv4(cls, value: IPv4Address | IPv6Address | None) -> IPv4Address | IPv6Address | None:
        # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d: store the IPv4 address.
        if isinstance(value, IPv6Address) and value.ipv4_mapped is not None:
            return value.ipv4_mapped
        return value

    @field_validator("details")
    @classmethod
    def _bounded_details(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        _check_details(value, 0, "details")
        size = len(canonicalize(value))
        if size > MAX_DETAILS_BYTES:
            raise ValueError(f"details is {size} bytes in canonical form, more than {MAX_DETAILS_BYTES}")
        return value


class StoredAuditEvent(AuditEventIn):
    """An event as linked into its organisation's chain (see :mod:`compliance.audit.chain`).

    The model checks shapes only; whether ``event_hash`` and ``prev_hash`` are *right* is what
    :func:`compliance.audit.chain.verify_chain` decides, so tampered rows still load.
    """

    seq: int = Field(ge=1, le=MAX_SEQ, description="1, 2, 3... per organisation, no gaps.")
    prev_hash: Sha256Hex = Field(description="event_hash of seq - 1; GENESIS_HASH for seq 1.")
    event_hash: Sha256Hex = Field(description="SHA-256 of the canonical form, lowercase hex.")


# Events that belong to no organisation (authentication failures with an unknown key) go to the
# chain of this reserved organisation, created by migration 0003.
SYSTEM_ORG_ID = UUID("00000000-0000-0000-0000-000000000000")
