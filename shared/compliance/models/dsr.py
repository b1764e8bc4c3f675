"""Requests and responses of the data subject request API (``/v1/dsr``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from compliance.models.usage import Email, Identifier

MIN_REASON_CHARS = 10
MAX_REASON_CHARS = 500
DEFAULT_PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 200
MAX_CURSOR_CHARS = 200
MAX_STEPS = 50


class DsrType(StrEnum):
    ACCESS = "access"
    PORTABILITY = "portability"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"


# The types whose answer is a copy of the subject's data, hence an export in some format.
EXPORTING_TYPES = frozenset({DsrType.ACCESS, DsrType.PORTABILITY})


class DsrStatus(StrEnum):
    """Lifecycle of a request; the legal moves are in ``compliance.dsr.status``."""

    RECEIVED = "received"
    AWAITING_VERIFICATION = "awaiting_verification"
    VERIFIED = "verified"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Regulation(StrEnum):
    """The law a request is answered under; its periods are in ``compliance.dsr.deadlines``."""

    GDPR = "gdpr"
    UK_GDPR = "uk_gdpr"
    CCPA = "ccpa"
    HIPAA = "hipaa"
    PIPEDA = "pipeda"
    LGPD = "lgpd"


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    XML = "xml"


class StepStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


Reason = Annotated[
    str,
    StringConstraints(min_length=MIN_REASON_CHARS, max_length=MAX_REASON_CHARS, strip_whitespace=True),
]
# The code as the subject may type it: Crockford base32, any case, with the hyphen of the e-mailed
# form or stray spaces (compliance.dsr.verification normalises it). Anything else is a 400, not a
# counted attempt.
VerificationCode = Annotated[
    str, StringConstraints(min_length=10, max_length=16, strip_whitespace=True, pattern=r"^[0-9A-Za-z -]+$")
]
PageLimit = Annotated[int, Field(ge=1, le=MAX_PAGE_LIMIT)]
Cursor = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_CURSOR_CHARS, pattern=r"^[A-Za-z0-9_-]+$")
]


class DsrCorrections(BaseModel):
    """Rectification: the new values, one field per correctable column of the subject.

    Only ``subjects.email`` is held for a subject today (migration 0006); ``external_id`` is the
    customer's own key for the person and is corrected on their side, not here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: Email | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> DsrCorrections:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("corrections must set at least one field")
        return self


class DsrCreate(BaseModel):
    """Body of ``POST /v1/dsr``. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: DsrType
    subject_id: Identifier | None = Field(
        default=None, description="The platform's id of the person, as sent in usage records."
    )
    email: Email | None = Field(
        default=None, description="The person's e-mail address, when the id is unknown."
    )
    regulation: Regulation
    export_formats: list[ExportFormat] | None = Field(
        default=None,
        min_length=1,
        max_length=len(ExportFormat),
        description="Access and portability only; defaults to json.",
    )
    corrections: DsrCorrections | None = Field(default=None, description="Rectification only, and required.")

    @model_validator(mode="before")
    @classmethod
    def _default_format(cls, data: Any) -> Any:
        # json unless told otherwise, but only where an export is made (the model is frozen, so
        # the default is filled in before validation).
        if isinstance(data, dict) and data.get("type") in EXPORTING_TYPES and "export_formats" not in data:
            return {**data, "export_formats": [ExportFormat.JSON]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> DsrCreate:
        # Exactly one way to find the subject: two could name two different people.
        if (self.subject_id is None) == (self.email is None):
            raise ValueError("give exactly one of subject_id and email")
        if self.type in EXPORTING_TYPES:
            if self.export_formats is None:
                raise ValueError("export_formats must name at least one format")
            if len(set(self.export_formats)) != len(self.export_formats):
                raise ValueError("export_formats must not repeat a format")
        elif self.export_formats is not None:
            raise ValueError("export_formats is only allowed for access and portability")
        if self.type is DsrType.RECTIFICATION and self.corrections is None:
            raise ValueError("corrections is required for rectification")
        if self.type is not DsrType.RECTIFICATION and self.corrections is not None:
            raise ValueError("corrections is only allowed for rectification")
        return self


class DsrExtend(BaseModel):
    """Body of ``POST /v1/dsr/{id}/extend``: once per request, with the reason the subject is told."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: Reason
    days: int | None = Field(
        default=None,
        ge=1,
        le=366,
        description="Extend by this many days; default the regulation's full extension. Never beyond it.",
    )


class DsrVerify(BaseModel):
    """Body of ``POST /v1/dsr/{id}/verify``: the code e-mailed to the subject is the credential."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: VerificationCode


class DsrListQuery(BaseModel):
    """``GET /v1/dsr``: optional filters (AND) and the page, newest first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: DsrStatus | None = None
    type: DsrType | None = None
    limit: PageLimit = DEFAULT_PAGE_LIMIT
    cursor: Cursor | None = None


class DsrStep(BaseModel):
    """One step of the workflow as the request row mirrors it."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    status: StepStatus
    at: datetime


class DsrAccepted(BaseModel):
    """202 body of ``POST /v1/dsr``."""

    id: UUID
    status: DsrStatus
    deadline: datetime


class DsrVerified(BaseModel):
    """``POST /v1/dsr/{id}/verify`` answered to an unauthenticated caller: the id and status only."""

    id: UUID
    status: DsrStatus


class DsrExportOut(BaseModel):
    """One export object of an access or portability request (one per format)."""

    format: ExportFormat
    bytes: int = Field(ge=0)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    large: bool = Field(default=False, description="Above the size the record warns about (100 MB).")
    url: str | None = Field(default=None, description="Presigned link while the export is available.")


class DsrOut(BaseModel):
    """``GET /v1/dsr/{id}``. The subject is not echoed: the response carries no personal data."""

    id: UUID
    type: DsrType
    status: DsrStatus
    regulation: Regulation
    received_at: AwareDatetime
    deadline: AwareDatetime
    days_left: int = Field(description="Whole days to the deadline (UTC dates); negative when overdue.")
    extended: bool
    extension_reason: str | None = None
    export_formats: list[ExportFormat] | None = None
    steps: list[DsrStep] = Field(default_factory=list, max_length=MAX_STEPS)
    export_url: str | None = Field(default=None, description="Presigned link, once the export is ready.")
    export_expires_at: AwareDatetime | None = None
    export_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    export_bytes: int | None = Field(default=None, ge=0)
    exports: list[DsrExportOut] = Field(
        default_factory=list, description="Every export object; export_url and the like give the first."
    )
    outcome: str | None = Field(default=None, description="How it ended, e.g. no_data_held.")
    completed_at: AwareDatetime | None = None


class DsrList(BaseModel):
    items: list[DsrOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
