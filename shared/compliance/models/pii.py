"""Bodies of ``POST /v1/pii/scan``: texts in; findings (spans, never values) and redacted texts out.

A text's own size is not limited here but by the scanner (``MAX_SCAN_CHARS``, a typed 413 naming
the limit); the batch is limited in items here and in total characters by the service.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from compliance.pii.findings import PiiType

MAX_TEXTS: Final = 100
MAX_REGIONS: Final = 20

RegionCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# hash and encrypt need keys the API does not hold per caller: only keyless modes are offered.
ApiRedactionMode = Literal["mask", "placeholder"]


class PiiScanIn(BaseModel):
    """Exactly one of ``text`` or ``texts``; ``types`` and ``regions`` default to the scanner's."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    text: str | None = None
    texts: list[str] | None = Field(default=None, min_length=1, max_length=MAX_TEXTS)
    types: list[PiiType] | None = Field(default=None, min_length=1, max_length=len(PiiType))
    regions: list[RegionCode] | None = Field(default=None, min_length=1, max_length=MAX_REGIONS)
    redact: ApiRedactionMode | None = None

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of text or texts")
        return self

    def inputs(self) -> list[str]:
        if self.texts is not None:
            return self.texts
        assert self.text is not None  # the validator guarantees one of them
        return [self.text]


class FindingOut(BaseModel):
    """``text[start:end]`` (characters) is the entity; the value itself is never returned."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: PiiType
    start: int
    end: int
    confidence: float
    validation: str


class TextScanOut(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    index: int
    findings: list[FindingOut]
    #: The text with each finding replaced, when ``redact`` was asked for.
    redacted: str | None = None


class PiiScanOut(BaseModel):
    """One result per input text, in input order (``index`` is its position in ``texts``)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    results: list[TextScanOut]
