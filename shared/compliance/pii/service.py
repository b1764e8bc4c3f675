"""The scan behind ``POST /v1/pii/scan``: a batch of texts in, findings and redactions out.

The batch's total size is checked before any text is scanned: at the measured ~1.5 MB/s per core
(docs/benchmarks.md) a full batch stays within API Gateway's 29 s integration timeout.
"""

from __future__ import annotations

from typing import Final

from compliance.models.pii import FindingOut, PiiScanIn, PiiScanOut, TextScanOut
from compliance.pii.errors import ScanBatchTooLargeError
from compliance.pii.findings import Finding
from compliance.pii.redaction import redact
from compliance.pii.scanner import DEFAULT_REGIONS, MAX_SCAN_CHARS, scan

MAX_BATCH_CHARS: Final = 2 * MAX_SCAN_CHARS


def scan_request(request: PiiScanIn) -> PiiScanOut:
    """Scan each text (the scanner refuses one over ``MAX_SCAN_CHARS``), redacting if asked."""
    texts = request.inputs()
    total = sum(len(text) for text in texts)
    if total > MAX_BATCH_CHARS:
        raise ScanBatchTooLargeError(
            f"the texts add up to more than {MAX_BATCH_CHARS} characters", limit=MAX_BATCH_CHARS, size=total
        )
    regions = tuple(request.regions) if request.regions is not None else DEFAULT_REGIONS
    results = []
    for index, text in enumerate(texts):
        findings = scan(text, regions=regions, types=request.types)
        redacted = None
        if request.redact is not None:
            redacted = redact(text, mode=request.redact, findings=findings).text
        results.append(TextScanOut(index=index, findings=[_out(f) for f in findings], redacted=redacted))
    return PiiScanOut(results=results)


def _out(finding: Finding) -> FindingOut:
    return FindingOut(
        type=finding.type,
        start=finding.start,
        end=finding.end,
        confidence=finding.confidence,
        validation=finding.validation,
    )
