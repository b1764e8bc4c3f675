"""Organisation settings the API changes: how ingest treats personal data in prompt text."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# The settings document key (organisations.settings->'pii').
PII_SETTINGS_KEY = "pii"
Region = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class PiiMode(StrEnum):
    """What the ingest processor does with a prompt or completion in which the scanner finds
    personal data or secrets. Text is always stored encrypted under the subject's key."""

    ENCRYPT = "encrypt"  # store it as sent (encrypted): erasable by shredding, nothing scanned
    REDACT = "redact"  # replace each finding by a type placeholder (<EMAIL_1>), then encrypt
    REJECT = "reject"  # store neither the record nor its text; an audit event says which and why


class PiiSettings(BaseModel):
    """``organisations.settings.pii``; the defaults apply to an organisation that set nothing.
    Until the policy engine takes this decision over, it is the org's PII handling of ingest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: PiiMode = PiiMode.ENCRYPT
    regions: tuple[Region, ...] = Field(
        default=("US", "GB", "DE", "FR", "IN"),
        min_length=1,
        max_length=10,
        description="Default regions for phone numbers written without a country code, in order.",
    )
