"""`scan()`: run the detectors over one text and return non-overlapping findings in text order."""

from __future__ import annotations

import re
from collections.abc import Iterable

from compliance.pii.detectors import DETECTORS, SUPPORTED_REGIONS, detect_phones
from compliance.pii.errors import (
    BinaryInputError,
    NonUtf8InputError,
    ScanInputTooLargeError,
    ScanOptionsError,
)
from compliance.pii.findings import Finding, PiiType, resolve_overlaps

MAX_SCAN_CHARS = 1_000_000
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN")

# C0 controls other than tab, newline, vertical tab, form feed and carriage return, plus DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_BINARY_SAMPLE_CHARS = 8192
_BINARY_CONTROL_RATIO = 0.05


def scan(
    text: str | bytes,
    *,
    regions: Iterable[str] = DEFAULT_REGIONS,
    types: Iterable[PiiType | str] | None = None,
) -> list[Finding]:
    """Findings in ``text`` (bytes must be UTF-8), ordered by start, spans in characters.

    ``regions`` are the default regions for phone numbers written without a country code, tried in
    order; ``types`` limits the detectors (all when None).
    """
    checked = ensure_text(text)
    selected = _select_types(types)
    region_list = _select_regions(regions)
    found: list[Finding] = []
    for pii_type in selected:
        if pii_type is not PiiType.PHONE:
            found.extend(DETECTORS[pii_type](checked, region_list))
    if PiiType.PHONE in selected:
        # Last, so it can skip digit groups that a stricter detector already explained.
        found.extend(detect_phones(checked, region_list, claimed=found))
    return resolve_overlaps(found)


def ensure_text(text: str | bytes) -> str:
    """The input as text, or a typed error: too large, not UTF-8, or binary."""
    # The size check comes first and costs nothing, so a 10 MB body is refused before any work.
    if len(text) > MAX_SCAN_CHARS:
        raise ScanInputTooLargeError(
            f"text is longer than {MAX_SCAN_CHARS} characters", limit=MAX_SCAN_CHARS, size=len(text)
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NonUtf8InputError(f"input is not valid UTF-8 (byte {exc.start})") from exc
    if "\x00" in text:
        raise BinaryInputError("input contains NUL characters: binary data, not text")
    sample = text[:_BINARY_SAMPLE_CHARS]
    if sample and len(_CONTROL.findall(sample)) > _BINARY_CONTROL_RATIO * len(sample):
        raise BinaryInputError("input is mostly control characters: binary data, not text")
    return text


def _select_types(types: Iterable[PiiType | str] | None) -> list[PiiType]:
    if types is None:
        return list(PiiType)
    selected: list[PiiType] = []
    for value in types:
        try:
            selected.append(PiiType(value))
        except ValueError as exc:
            raise ScanOptionsError(f"unknown entity type {value!r}") from exc
    return selected


def _select_regions(regions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(regions, str):
        raise ScanOptionsError("regions must be a list of region codes, not one string")
    chosen = tuple(regions)
    unknown = [r for r in chosen if r not in SUPPORTED_REGIONS]
    if unknown:
        raise ScanOptionsError(f"unknown phone regions {unknown!r}")
    if not chosen:
        raise ScanOptionsError("at least one phone region is needed")
    return chosen
