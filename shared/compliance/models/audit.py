"""Requests and responses of the audit API (query, verification, proofs, checkpoints, exports).

Events leave the API in their *record* form (:class:`AuditEventOut`): every stored field, formatted
exactly as the canonical form hashes it (``compliance.audit.canonical``), so a client can recompute
``event_hash`` from a response or an export line without knowing Python's formatting rules.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from compliance.audit.canonical import canonical_form
from compliance.audit.checkpoint import SignedCheckpoint
from compliance.audit.events import MAX_SEQ

if TYPE_CHECKING:
    from compliance.audit.events import StoredAuditEvent

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
MAX_CURSOR_CHARS = 200

# Query filters: the limits of the stored columns (migration 0002), no pattern (a filter that
# matches nothing is an empty page, not an error).
ActorFilter = Annotated[str, StringConstraints(min_length=1, max_length=200)]
EventTypeFilter = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ResourceFilter = Annotated[str, StringConstraints(min_length=1, max_length=256)]
PageLimit = Annotated[int, Field(ge=1, le=MAX_PAGE_LIMIT)]
Cursor = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_CURSOR_CHARS, pattern=r"^[A-Za-z0-9_-]+$")
]
Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]
CheckpointNumber = Annotated[int, Field(ge=1, le=MAX_SEQ)]


class EventQuery(BaseModel):
    """``GET /v1/audit/events``: filters (all optional, combined with AND) and the page.

    ``from`` is inclusive and ``to`` exclusive (on ``occurred_at``). Results are in ``seq`` order.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    occurred_from: AwareDatetime | None = Field(default=None, alias="from")
    occurred_to: AwareDatetime | None = Field(default=None, alias="to")
    actor: ActorFilter | None = None
    event_type: EventTypeFilter | None = None
    resource: ResourceFilter | None = None
    limit: PageLimit = DEFAULT_PAGE_LIMIT
    cursor: Cursor | None = None


class AuditEventOut(BaseModel):
    """An event as stored, every field in its canonical text form (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    seq: int
    event_id: str
    occurred_at: str
    event_type: str
    actor: str
    org_id: str
    resource: str
    action: str
    result: str
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, JsonValue]
    prev_hash: str
    event_hash: str

    @classmethod
    def from_stored(cls, event: StoredAuditEvent) -> AuditEventOut:
        return cls.model_validate(event_record(event))


def event_record(event: StoredAuditEvent) -> dict[str, Any]:
    """The canonical form of ``event`` plus its ``event_hash``: what exports and responses carry."""
    record = canonical_form(event, seq=event.seq, prev_hash=event.prev_hash)
    record["event_hash"] = event.event_hash
    return record


class EventPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class VerifiedCheckpoint(BaseModel):
    """The checkpoint a verification compared the range with."""

    number: int
    tree_size: int
    signature_valid: bool | None = Field(description="null when the signature was not checked")
    root_matches: bool | None = Field(description="null when the comparison was not reached")


class VerifyVerdict(BaseModel):
    """``GET /v1/audit/verify``: valid, or the first bad ``seq`` and why."""

    valid: bool
    from_seq: int
    to_seq: int = Field(description="Last seq of the range (0 for an empty log).")
    checked: int = Field(description="Events that verified before the first failure (all when valid).")
    first_bad_seq: int | None = None
    reason: str | None = None
    detail: str = ""
    checkpoint: VerifiedCheckpoint | None = None


class InclusionProofOut(BaseModel):
    """RFC 6962 audit path of one event's leaf in the tree of a signed checkpoint."""

    event_id: UUID
    seq: int
    leaf_index: int = Field(description="seq - 1")
    leaf_hash: str = Field(description="SHA-256(0x00 || bytes(event_hash)), hex")
    tree_size: int
    root_hash: str
    audit_path: list[str]
    checkpoint: SignedCheckpoint


class ConsistencyProofOut(BaseModel):
    """RFC 6962 consistency proof between two signed checkpoints of one organisation."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_checkpoint: SignedCheckpoint = Field(alias="from")
    to_checkpoint: SignedCheckpoint = Field(alias="to")
    proof: list[str]


class CheckpointPage(BaseModel):
    items: list[SignedCheckpoint]
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last page.")


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class ExportRequest(BaseModel):
    """``POST /v1/audit/exports``: a ``seq`` range (default: the whole log) in one format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: ExportFormat
    from_seq: Seq | None = None
    to_seq: Seq | None = None


class ExportOut(BaseModel):
    export_id: UUID
    format: ExportFormat
    events: int
    from_seq: int
    to_seq: int
    url: str
    checkpoints_url: str
    expires_at: datetime
