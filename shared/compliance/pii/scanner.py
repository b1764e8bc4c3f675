"""`scan()`: run the detectors over one text and return non-overlapping findings in text order."""

from __future__ import annotations

import re
from collections.abc import Iterable

from compliance.pii.detectors import DETECTORS, SUPPORTED_REGIONS, clear_caches, detect_phones
from compliance.pii.errors import (
    BinaryInputError,
    NonUtf8InputError,
    ScanInputTooLargeError,
    ScanOptionsError,
)
from compliance.pii.findings import Finding, PiiType, resolve_overlaps
from compliance.pii.windows import DigitRuns

MAX_SCAN_CHARS = 1_000_000
DEFAULT_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "IN")
_DIGIT_TYPES = frozenset({PiiType.PHONE, PiiType.SSN, PiiType.CREDIT_CARD, PiiType.IP_ADDRESS})

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

    The detectors' per-value caches (phone matcher runs, IP checks) serve repeats within this text
    only: they are emptied before returning, so no phone number or address seen in one request stays
    in memory for the next (at the price of re-validating values that recur across calls).
    """
    try:
        return run_detectors(ensure_text(text), _select_regions(regions), _select_types(types))
    finally:
        clear_caches()


def run_detectors(
    text: str, regions: tuple[str, ...], types: list[PiiType], *, prepass: bool = True
) -> list[Finding]:
    """``scan`` on checked input. ``prepass=False`` runs each regex over the whole text: the slow
    reference that the pre-pass windows must agree with (tests/unit/pii/test_prepass.py)."""
    # One pass for the digit runs that the SSN, card, phone and IPv4 regexes then scan.
    runs = DigitRuns.of(text) if prepass and not _DIGIT_TYPES.isdisjoint(types) else None
    found: list[Finding] = []
    for pii_type in types:
        if pii_type is not PiiType.PHONE:
            found.extend(DETECTORS[pii_type](text, regions, runs=runs, prepass=prepass))
    if PiiType.PHONE in types:
        # Last, so it can skip digit groups that a stricter detector already explained.
        found.extend(detect_phones(text, regions, claimed=found, runs=runs, prepass=prepass))
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
