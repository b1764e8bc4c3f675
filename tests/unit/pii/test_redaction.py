"""Redaction modes: mask, keyed hash, numbered placeholders, injected encryption."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from compliance.errors import ValidationFailedError
from compliance.pii import PiiType, RedactionMode, redact, scan

KEY = b"k" * 32
TEXT = "Mail JANE@example.org or jane@EXAMPLE.org, call +44 20 7946 0958, card 4111 1111 1111 1111."


def test_mask_keeps_length_by_default() -> None:
    result = redact(TEXT, mode=RedactionMode.MASK)
    assert len(result.text) == len(TEXT)
    assert "example" not in result.text and "4111" not in result.text and "7946" not in result.text
    assert result.text.startswith("Mail " + "*" * len("JANE@example.org") + " or ")
    assert [f.type for f in result.findings] == [
        PiiType.EMAIL, PiiType.EMAIL, PiiType.PHONE, PiiType.CREDIT_CARD,
    ]  # fmt: skip


def test_mask_fixed_width() -> None:
    result = redact("ip 8.8.8.8 end", mode="mask", keep_length=False)
    assert result.text == "ip **** end"


def test_hash_is_keyed_and_joins_equal_values() -> None:
    # Given two spellings of one email (emails compare case-insensitively)
    result = redact(TEXT, mode=RedactionMode.HASH, key=KEY)
    expected = hmac.new(KEY, b"jane@example.org", hashlib.sha256).hexdigest()[:16]
    # Then both become the same token, an HMAC under the caller's key
    assert result.text.count(f"<EMAIL:{expected}>") == 2
    # And another key gives other tokens (not a plain, guessable hash)
    other = redact(TEXT, mode=RedactionMode.HASH, key=b"o" * 32)
    assert f"<EMAIL:{expected}>" not in other.text


def test_hash_refuses_a_missing_or_short_key() -> None:
    with pytest.raises(ValidationFailedError):
        redact(TEXT, mode=RedactionMode.HASH)
    with pytest.raises(ValidationFailedError):
        redact(TEXT, mode=RedactionMode.HASH, key=b"short")


def test_placeholders_number_equal_values_the_same() -> None:
    text = "a@x.com, b@x.com, A@X.COM and 8.8.8.8"
    result = redact(text, mode=RedactionMode.PLACEHOLDER)
    assert result.text == "<EMAIL_1>, <EMAIL_2>, <EMAIL_1> and <IP_ADDRESS_1>"


def test_encrypt_uses_the_injected_callable() -> None:
    seen: list[str] = []

    def fake_encrypt(value: str) -> str:
        seen.append(value)
        return value[::-1]

    result = redact("write to a@x.com", mode=RedactionMode.ENCRYPT, encrypt=fake_encrypt)
    assert result.text == "write to <EMAIL:enc:moc.x@a>"
    assert seen == ["a@x.com"]


def test_encrypt_without_a_callable_is_refused() -> None:
    with pytest.raises(ValidationFailedError):
        redact(TEXT, mode=RedactionMode.ENCRYPT)


def test_given_findings_are_used_and_spans_refer_to_the_original_text() -> None:
    findings = scan(TEXT, types=[PiiType.CREDIT_CARD])
    result = redact(TEXT, mode=RedactionMode.PLACEHOLDER, findings=findings)
    assert result.text.endswith("card <CREDIT_CARD_1>.")
    assert "JANE@example.org" in result.text
    card = result.findings[0]
    assert TEXT[card.start : card.end] == "4111 1111 1111 1111"


def test_text_without_findings_is_unchanged() -> None:
    result = redact("nothing to see, version 1.2.3", mode=RedactionMode.MASK)
    assert result.text == "nothing to see, version 1.2.3"
    assert result.findings == ()


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValidationFailedError):
        redact(TEXT, mode="shred")
