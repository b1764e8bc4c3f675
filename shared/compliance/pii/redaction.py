"""Redaction of findings: mask, keyed hash, numbered type placeholder, or an injected encryption.

Equal values get equal replacements (hash and placeholder) after a per-type normalisation, so a
redacted text still says "the same email twice" and keyed hashes join across records.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from compliance.pii.errors import ScanOptionsError
from compliance.pii.findings import Finding, PiiType
from compliance.pii.scanner import DEFAULT_REGIONS, ensure_text, scan

MIN_HASH_KEY_BYTES = 16
HASH_HEX_CHARS = 16  # 64 bits: collisions stay negligible for joins over millions of values


class RedactionMode(StrEnum):
    MASK = "mask"
    HASH = "hash"
    PLACEHOLDER = "placeholder"
    ENCRYPT = "encrypt"


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str
    findings: tuple[Finding, ...]


def normalise(pii_type: PiiType, value: str) -> str:
    """The form under which two spellings of one value count as equal."""
    if pii_type is PiiType.EMAIL:
        return value.casefold()
    if pii_type in (PiiType.PHONE, PiiType.SSN, PiiType.CREDIT_CARD):
        return "".join(ch for ch in value if ch.isdigit() or ch == "+")
    if pii_type is PiiType.IBAN:
        return value.replace(" ", "").upper()
    if pii_type is PiiType.IP_ADDRESS:
        return value.lower()
    return value


def redact(
    text: str | bytes,
    *,
    mode: RedactionMode | str,
    findings: Sequence[Finding] | None = None,
    key: bytes | None = None,
    encrypt: Callable[[str], str] | None = None,
    keep_length: bool = True,
    mask_char: str = "*",
    regions: Iterable[str] = DEFAULT_REGIONS,
    types: Iterable[PiiType | str] | None = None,
) -> RedactionResult:
    """Replace each finding in ``text`` (scanned here unless ``findings`` are given).

    - mask: ``mask_char`` over the value's length, or a fixed ``****`` when not ``keep_length``;
    - hash: ``<EMAIL:16 hex of HMAC-SHA256(key, normalised value)>``, ``key`` at least 16 bytes;
    - placeholder: ``<EMAIL_1>``, equal values numbered the same within this text;
    - encrypt: ``<EMAIL:enc:…>`` around ``encrypt(value)`` (the caller supplies the cipher).

    Returned findings keep their spans in the original text.
    """
    source = ensure_text(text)
    chosen = _check_options(mode, key, encrypt, mask_char)
    found = tuple(findings) if findings is not None else tuple(scan(source, regions=regions, types=types))
    ordered = sorted(found, key=lambda f: f.start)
    numbering: dict[tuple[PiiType, str], int] = {}
    counters: dict[PiiType, int] = {}
    parts: list[str] = []
    cursor = 0
    for finding in ordered:
        if finding.start < cursor or finding.end > len(source):
            raise ScanOptionsError("findings overlap or fall outside the text")
        value = source[finding.start : finding.end]
        parts.append(source[cursor : finding.start])
        if chosen is RedactionMode.MASK:
            parts.append(mask_char * len(value) if keep_length else "****")
        elif chosen is RedactionMode.HASH:
            assert key is not None
            digest = hmac.new(key, normalise(finding.type, value).encode(), hashlib.sha256).hexdigest()
            parts.append(f"<{finding.type}:{digest[:HASH_HEX_CHARS]}>")
        elif chosen is RedactionMode.PLACEHOLDER:
            ident = (finding.type, normalise(finding.type, value))
            if ident not in numbering:
                counters[finding.type] = counters.get(finding.type, 0) + 1
                numbering[ident] = counters[finding.type]
            parts.append(f"<{finding.type}_{numbering[ident]}>")
        else:
            assert encrypt is not None
            parts.append(f"<{finding.type}:enc:{encrypt(value)}>")
        cursor = finding.end
    parts.append(source[cursor:])
    return RedactionResult("".join(parts), tuple(ordered))


def _check_options(
    mode: RedactionMode | str, key: bytes | None, encrypt: Callable[[str], str] | None, mask_char: str
) -> RedactionMode:
    try:
        chosen = RedactionMode(mode)
    except ValueError as exc:
        raise ScanOptionsError(f"unknown redaction mode {mode!r}") from exc
    if chosen is RedactionMode.HASH and (key is None or len(key) < MIN_HASH_KEY_BYTES):
        raise ScanOptionsError(f"hash redaction needs a key of at least {MIN_HASH_KEY_BYTES} bytes")
    if chosen is RedactionMode.ENCRYPT and encrypt is None:
        raise ScanOptionsError("encrypt redaction needs an encrypt callable")
    if chosen is RedactionMode.MASK and len(mask_char) != 1:
        raise ScanOptionsError("mask_char must be one character")
    return chosen
