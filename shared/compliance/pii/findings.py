"""What the scanner reports: entity types and findings (spans into the scanned text, never the value)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from enum import StrEnum


class PiiType(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    SSN = "SSN"
    CREDIT_CARD = "CREDIT_CARD"
    IBAN = "IBAN"
    IP_ADDRESS = "IP_ADDRESS"
    SECRET = "SECRET"  # noqa: S105  (an entity type name, not a credential)


@dataclass(frozen=True, slots=True)
class Finding:
    """One entity: ``text[start:end]`` is the value; ``validation`` names what confirmed it.

    The value itself is not stored, so a finding can be logged or returned without leaking it.
    """

    type: PiiType
    start: int
    end: int
    confidence: float
    validation: str

    @property
    def length(self) -> int:
        return self.end - self.start


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep non-overlapping findings: higher confidence wins, then the longer span, then the earlier one."""
    ranked = sorted(findings, key=lambda f: (-f.confidence, -f.length, f.start))
    kept: list[Finding] = []
    # Accepted spans are disjoint, so sorted by start they are sorted by end too: one bisect finds
    # the only neighbours a candidate could overlap.
    starts: list[int] = []
    for finding in ranked:
        i = bisect_right(starts, finding.start)
        if i > 0 and kept[i - 1].end > finding.start:
            continue
        if i < len(kept) and kept[i].start < finding.end:
            continue
        starts.insert(i, finding.start)
        kept.insert(i, finding)
    return kept
