"""PII scanner: detect personal data and secrets in free text (prompts, completions) and redact it.

Pure library: no AWS, no database. ``scan`` finds, ``redact`` replaces.
"""

from __future__ import annotations

from compliance.pii.errors import (
    BinaryInputError,
    NonUtf8InputError,
    ScanInputTooLargeError,
    ScanOptionsError,
)
from compliance.pii.findings import Finding, PiiType
from compliance.pii.redaction import RedactionMode, RedactionResult, redact
from compliance.pii.scanner import DEFAULT_REGIONS, MAX_SCAN_CHARS, scan

__all__ = [
    "DEFAULT_REGIONS",
    "MAX_SCAN_CHARS",
    "BinaryInputError",
    "Finding",
    "NonUtf8InputError",
    "PiiType",
    "RedactionMode",
    "RedactionResult",
    "ScanInputTooLargeError",
    "ScanOptionsError",
    "redact",
    "scan",
]
