"""Bad input: size limit, encodings, binary data, options, and bounded time on pathological strings.

The time bounds are generous for a slow two-core machine; catastrophic backtracking would take
minutes, not seconds, on these inputs.
"""

from __future__ import annotations

import time

import pytest

from compliance.errors import PayloadTooLargeError, ValidationFailedError
from compliance.pii import (
    MAX_SCAN_CHARS,
    BinaryInputError,
    NonUtf8InputError,
    PiiType,
    ScanInputTooLargeError,
    scan,
)

ONE_MB = 1_000_000
PATHOLOGICAL_BOUND_S = 2.0


def _timed_scan(text: str) -> float:
    started = time.perf_counter()
    scan(text)
    return time.perf_counter() - started


def test_ten_megabytes_is_refused_quickly_with_a_typed_error() -> None:
    # Given 10 MB of text and the same as bytes
    text = "a" * (10 * ONE_MB)
    for payload in (text, text.encode()):
        started = time.perf_counter()
        # When scanned, Then a PayloadTooLargeError (HTTP 413) comes back before any scanning
        with pytest.raises(ScanInputTooLargeError) as info:
            scan(payload)
        assert time.perf_counter() - started < 0.5
        assert isinstance(info.value, PayloadTooLargeError)
        assert info.value.extra["limit"] == MAX_SCAN_CHARS


def test_text_at_the_limit_is_scanned() -> None:
    text = ("x" * (MAX_SCAN_CHARS - 20)) + " a@example.org"
    assert [f.type for f in scan(text)] == [PiiType.EMAIL]


def test_bytes_must_be_utf8() -> None:
    assert [f.type for f in scan("Grüße an jörg@example.de".encode())] == [PiiType.EMAIL]
    with pytest.raises(NonUtf8InputError) as info:
        scan(b"caf\xe9 a@example.org")  # Latin-1, not UTF-8
    assert isinstance(info.value, ValidationFailedError)


def test_spans_count_characters_not_bytes() -> None:
    text = "Ünïcödé → a@example.org"
    (finding,) = scan(text.encode())
    assert text[finding.start : finding.end] == "a@example.org"


@pytest.mark.parametrize(
    "payload",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "text with a NUL\x00 inside",
        "".join(chr(i % 32) for i in range(1, 4000) if i % 32 not in (9, 10, 13)),
    ],
)
def test_binary_looking_input_is_refused(payload: str | bytes) -> None:
    with pytest.raises((BinaryInputError, NonUtf8InputError)) as info:
        scan(payload)
    assert isinstance(info.value, ValidationFailedError)


def test_unknown_types_and_regions_are_refused() -> None:
    with pytest.raises(ValidationFailedError):
        scan("x", types=["PASSPORT"])
    with pytest.raises(ValidationFailedError):
        scan("x", regions=["XX"])
    with pytest.raises(ValidationFailedError):
        scan("x", regions="US")
    with pytest.raises(ValidationFailedError):
        scan("x", regions=[])


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("1 MB of digits", "7" * ONE_MB),
        ("100k @", "@" * 100_000),
        ("1 MB of dots", "." * ONE_MB),
        ("1 MB of dashes", "-" * ONE_MB),
        ("1 MB of spaces", " " * ONE_MB),
        ("digits and spaces", "1 " * (ONE_MB // 2)),
        ("digits and dashes", "12-" * (ONE_MB // 3)),
        ("dotted digits", "1." * (ONE_MB // 2)),
        ("email-ish run", "a@" * (ONE_MB // 2)),
        ("local part without at", "a." * (ONE_MB // 2)),
        ("domain labels", "x@" + "a." * (ONE_MB // 2 - 1)),
        ("colons and hex", "a:" * (ONE_MB // 2)),
        ("secret prefixes", "sk-" * (ONE_MB // 3)),
        ("pem headers", "-----BEGIN PRIVATE KEY-----" * (ONE_MB // 30)),
        ("iban-ish", "DE89 " * (ONE_MB // 5)),
    ],
)
def test_pathological_strings_return_in_bounded_time(name: str, text: str) -> None:
    # Given 1 MB of a shape that makes backtracking regexes explode
    # When scanned, Then it returns well within the bound
    assert _timed_scan(text) < PATHOLOGICAL_BOUND_S, name


def test_many_phone_shaped_candidates_stay_bounded() -> None:
    # Given 1 MB of distinct phone-shaped groups (each one would cost libphonenumber calls)
    text = "\n".join(f"call ({200 + i % 700}) 555-{i % 10000:04d}" for i in range(ONE_MB // 26))
    assert len(text) <= MAX_SCAN_CHARS
    # When scanned
    started = time.perf_counter()
    findings = scan(text, types=[PiiType.PHONE])
    elapsed = time.perf_counter() - started
    # Then the validation budget bounds the time, and numbers past it are still reported, flagged
    assert elapsed < 10
    validations = {f.validation for f in findings}
    assert validations == {"libphonenumber", "phone_shape_unverified"}
    assert findings[0].validation == "libphonenumber"
    assert findings[-1].validation == "phone_shape_unverified"
