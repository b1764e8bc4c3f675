"""Consent records: what a data subject agreed to per purpose (``/v1/consents``), kept as history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from compliance.models.usage import Identifier

Label = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/+-]{1,64}$")]
Source = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/+-]{1,128}$")]


class ConsentPurpose(StrEnum):
    PROMPT_LOGGING = "prompt_logging"  # storing prompt and completion text (ingest obeys it)
    ANALYTICS = "analytics"
    MODEL_IMPROVEMENT = "model_improvement"


class LegalBasis(StrEnum):
    """GDPR Art. 6(1) (a) to (f)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


class ConsentCreate(BaseModel):
    """Body of ``POST /v1/consents``. The subject is the platform's id (created if new)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject_id: Identifier
    purpose: ConsentPurpose
    legal_basis: LegalBasis = LegalBasis.CONSENT
    notice_version: Label = Field(description="The version of the notice the subject was shown.")
    source: Source = Field(description="Where it was collected, e.g. 'web:signup'.")
    granted_at: AwareDatetime | None = Field(default=None, description="Defaults to the time recorded.")
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _expiry_after_grant(self) -> ConsentCreate:
        if self.expires_at is not None and self.granted_at is not None and self.expires_at <= self.granted_at:
            raise ValueError("expires_at must be after granted_at")
        return self


class ConsentOut(BaseModel):
    """One record; ``active`` says whether it is the subject's deciding grant for its purpose now."""

    consent_id: UUID
    subject_id: str
    purpose: ConsentPurpose
    legal_basis: LegalBasis
    notice_version: str
    source: str
    granted_at: datetime
    expires_at: datetime | None
    recorded_at: datetime
    revoked_at: datetime | None
    active: bool


class ConsentHistory(BaseModel):
    """``GET /v1/subjects/{subject_id}/consents``: every record, newest grant first."""

    subject_id: str
    items: list[ConsentOut]
