"""Usage records: what the cost-ops platform sends for every LLM call."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

MAX_BATCH_RECORDS = 500
MAX_TEXT_CHARS = 100_000

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:/@+=-]+$")
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
# An address as RFC 5321 bounds it (254 characters): one "@", no spaces or controls. Deliverability
# is not checked; the value is only stored (encrypted) for the subject.
Email = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=254, strip_whitespace=True, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$"
    ),
]


class UsageRecordIn(BaseModel):
    """One LLM call as the platform reports it. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Identifier = Field(description="Unique per organisation; makes ingestion idempotent.")
    subject_id: Identifier | None = Field(
        default=None, description="The platform's pseudonymous id of the person behind the call."
    )
    provider: Name
    model: Name
    prompt_tokens: int = Field(ge=0, le=10_000_000)
    completion_tokens: int = Field(ge=0, le=10_000_000)
    cost: Decimal = Field(ge=0, le=Decimal("1000000"), max_digits=18, decimal_places=8)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    latency_ms: int | None = Field(default=None, ge=0, le=3_600_000)
    occurred_at: AwareDatetime
    prompt_text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    completion_text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    subject_email: Email | None = Field(
        default=None, description="The subject's e-mail address; stored encrypted under the subject's key."
    )
    client_ip: IPv4Address | IPv6Address | None = Field(
        default=None, description="The end user's IP address of the call; stored encrypted."
    )

    @model_validator(mode="after")
    def _email_needs_subject(self) -> UsageRecordIn:
        # The address belongs to a subject: without one it could never be erased with them.
        if self.subject_email is not None and self.subject_id is None:
            raise ValueError("subject_email needs subject_id")
        return self

    @field_validator("prompt_text", "completion_text")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL; reject here rather than poison the queue.
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class UsageBatchIn(BaseModel):
    """Body of ``POST /v1/usage``. The record limit is checked before this model (413, not 400)."""

    model_config = ConfigDict(extra="forbid")

    records: list[UsageRecordIn] = Field(min_length=1, max_length=MAX_BATCH_RECORDS)

    @field_validator("records")
    @classmethod
    def _unique_request_ids(cls, records: list[UsageRecordIn]) -> list[UsageRecordIn]:
        seen: set[str] = set()
        for record in records:
            if record.request_id in seen:
                raise ValueError(f"duplicate request_id {record.request_id!r} in batch")
            seen.add(record.request_id)
        return records


class IngestAccepted(BaseModel):
    """202 body: the records are queued; the processor writes them exactly once."""

    batch_id: UUID
    accepted: int
    request_ids: list[str]


class UsageMessage(BaseModel):
    """Body of one ingest-queue message: a slice of an accepted batch for one organisation."""

    model_config = ConfigDict(extra="forbid")

    org_id: UUID
    batch_id: UUID
    received_at: datetime
    records: list[UsageRecordIn] = Field(min_length=1, max_length=MAX_BATCH_RECORDS)


class UsageRecordOut(BaseModel):
    """A stored usage record as the read API returns it."""

    request_id: str
    subject_id: UUID | None
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    currency: str
    latency_ms: int | None
    occurred_at: datetime
    received_at: datetime
    has_prompt_text: bool
    has_completion_text: bool


ContentStatus = Literal["decrypted", "withheld", "erased", "unreadable", "none"]


class UsageRecordDetailOut(UsageRecordOut):
    """``GET /v1/usage/{request_id}``: a record with its encrypted fields decrypted when the
    caller's role may read content (``content_status`` "decrypted"); else they are null and
    ``content_status`` says why: "withheld" (role), "erased" (the subject's key was shredded),
    "unreadable" (a value failed authentication: an integrity incident, logged), "none" (the
    record carries no such field)."""

    prompt_text: str | None = None
    completion_text: str | None = None
    client_ip: str | None = None
    content_status: ContentStatus
