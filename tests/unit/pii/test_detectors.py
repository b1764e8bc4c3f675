"""Each detector on its own: values it must confirm, look-alikes it must refuse, exact spans."""

from __future__ import annotations

import pytest

from compliance.pii import Finding, PiiType, scan
from compliance.pii.detectors import card_issuer, iban_checksum_ok, luhn_ok, ssn_is_valid
from compliance.pii.findings import resolve_overlaps


def _found(text: str, pii_type: PiiType) -> list[str]:
    return [text[f.start : f.end] for f in scan(text, types=[pii_type])]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe@example.org now", ["jane.doe@example.org"]),
        ("<first+tag@sub.mail.co.uk>", ["first+tag@sub.mail.co.uk"]),
        ("end of sentence: bob@x-y.io.", ["bob@x-y.io"]),
        ("mailto:O'Neil@Example.COM", ["O'Neil@Example.COM"]),
        ("two: a@b.de,c.d@e.fr", ["a@b.de", "c.d@e.fr"]),
        ("npm i lodash@4.17.21", []),
        ("git clone git@github.com:acme/api.git", []),
        ("decorator @dataclass and user@localhost", []),
        ("bad..dots@example.com", []),
        ("trailing.@example.com", []),
        ("x@-bad.com", []),
    ],
)
def test_email(text: str, expected: list[str]) -> None:
    assert _found(text, PiiType.EMAIL) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call (415) 555-2671 today", ["(415) 555-2671"]),
        ("call +44 20 7946 0958 today", ["+44 20 7946 0958"]),
        ("mobile 0151 23456789 please", ["0151 23456789"]),  # German mobile, national format
        ("Tél : 01 42 68 53 00", ["01 42 68 53 00"]),
        ("whatsapp +91 98765 43210", ["+91 98765 43210"]),
        ("my number is 4155552671", ["4155552671"]),
        ("order 4155552671 shipped", []),  # bare digits without a phone word
        ("Order number: 415-555-2671", []),  # negative context
        ("on 2024-01-15 at noon", []),
        ("host 192.168.1.100", []),
        ("call 555-0000", []),  # too short, invalid
        ("Chrome/94.0.6411.021 Safari", []),  # version string
        ("phone budget USD 053 386 369", []),  # amount, not a number to call
        ("Le total est de 16 498 629,59 EUR", []),  # decimal comma
        ("call me, GPS 23.640759, 16.896358", []),  # decimals
        ("WhatsApp = +4915123841723;", ["+4915123841723"]),  # also a Luhn-valid 13-digit "Visa"
    ],
)
def test_phone(text: str, expected: list[str]) -> None:
    assert _found(text, PiiType.PHONE) == expected


def test_phone_validity_depends_on_the_regions() -> None:
    # Given a US-style placeholder: area code 123 does not exist in the US (but the digits are a valid
    # Indian number, so the default regions accept it)
    text = "call (123) 456-7890"
    assert scan(text, types=[PiiType.PHONE], regions=["US"]) == []
    assert _found(text, PiiType.PHONE) == ["(123) 456-7890"]


def test_phone_regions_are_explicit() -> None:
    # Given a French number in national format
    text = "appelez le 01 42 68 53 00"
    # Then it is found with FR among the default regions, not with US only
    assert _found(text, PiiType.PHONE) == ["01 42 68 53 00"]
    assert scan(text, types=[PiiType.PHONE], regions=["US"]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN 123-45-6788", ["123-45-6788"]),
        ("ssn: 123 45 6788", ["123 45 6788"]),
        ("social security number 123456788", ["123456788"]),
        ("id 123456788", []),  # nine bare digits without context
        ("000-12-3456 666-12-3456 900-12-3456", []),  # area rules
        ("123-00-4567 123-45-0000", []),  # group and serial rules
        ("078-05-1120", []),  # the Woolworth wallet card
        ("zip 12345-6789", []),
        ("phone 555-123-4567", []),
    ],
)
def test_ssn(text: str, expected: list[str]) -> None:
    assert _found(text, PiiType.SSN) == expected


def test_ssn_rules() -> None:
    assert ssn_is_valid("123", "45", "6789") is False  # blocklisted advertising sample
    assert ssn_is_valid("899", "99", "9999")
    assert not ssn_is_valid("000", "45", "6789")
    assert not ssn_is_valid("666", "45", "6789")
    assert not ssn_is_valid("950", "45", "6789")


@pytest.mark.parametrize(
    ("number", "issuer"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
        ("30569309025904", "diners"),
    ],
)
def test_card_issuers_and_luhn(number: str, issuer: str) -> None:
    assert luhn_ok(number)
    assert card_issuer(number) == issuer
    assert _found(f"card {number} ok", PiiType.CREDIT_CARD) == [number]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111.", ["4111 1111 1111 1111"]),
        ("card 4111-1111-1111-1111", ["4111-1111-1111-1111"]),
        ("amex 3782 822463 10005", ["3782 822463 10005"]),
        ("card 4111111111111112", []),  # Luhn fails
        ("card 9111111111111111", []),  # no issuer starts with 9 (and Luhn fails)
        ("card 1234567812345670", []),  # Luhn passes, no issuer range
        ("mixed 4111 1111-1111 1111", []),  # inconsistent separators
        ("odd groups 41 111111 11111111", []),
        ("USPS 9400 1000 0000 0000 0000 00", []),  # 22 digits: no card inside a longer run
    ],
)
def test_card(text: str, expected: list[str]) -> None:
    assert _found(text, PiiType.CREDIT_CARD) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IBAN DE89 3704 0044 0532 0130 00 EUR", ["DE89 3704 0044 0532 0130 00"]),
        ("IBAN GB29NWBK60161331926819.", ["GB29NWBK60161331926819"]),
        ("IBAN DE89 3704 0044 0532 0130 01", []),  # checksum fails
        ("IBAN DE89 3704 0044 0532 0130", []),  # too short for DE
        ("code ZZ89 3704 0044 0532 0130 00", []),  # unknown country
    ],
)
def test_iban(text: str, expected: list[str]) -> None:
    assert _found(text, PiiType.IBAN) == expected


def test_iban_checksum() -> None:
    assert iban_checksum_ok("GB29NWBK60161331926819")
    assert not iban_checksum_ok("GB28NWBK60161331926819")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from 203.0.113.7 at noon", ["203.0.113.7"]),
        ("peer 2001:db8:85a3::8a2e:370:7334.", ["2001:db8:85a3::8a2e:370:7334"]),
        ("link fe80::1ff:fe23:4567:890a", ["fe80::1ff:fe23:4567:890a"]),
        ("version 1.2.3", []),
        ("build 10.0.0.1.2", []),
        ("host 256.1.1.1", []),
        ("leading zero 01.02.03.04", []),
        ("slice arr[1::2] and a::b", []),
        ("time 12:30:45 and mac 00:1A:2B:3C:4D:5E", []),
        ("release v1.2.3.4", []),
        # "ver" inside a word is not a version prefix
        ("Server 10.0.0.12 refused", ["10.0.0.12"]),
        ("ver. 10.0.0.12", []),
    ],
)
def test_ip(text: str, expected: list[str]) -> None:
    assert _found(text, PiiType.IP_ADDRESS) == expected


@pytest.mark.parametrize(
    ("text", "expected", "validation"),
    [
        ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
        ("key=ASIA0123456789ABCDEF;", "ASIA0123456789ABCDEF", "aws_access_key_id"),
        ("sk-proj-abc123DEF456ghi789JKL012mno", "sk-proj-abc123DEF456ghi789JKL012mno", "openai_key"),
        ("sk-ant-api03-abc123DEF456ghi789JKL0", "sk-ant-api03-abc123DEF456ghi789JKL0", "anthropic_key"),
        (
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "github_token",
        ),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghij",
            "github_pat_11ABCDEFG0123456789_abcdefghij",
            "github_pat",
        ),
        ("glpat-abcdef0123456789ABCD", "glpat-abcdef0123456789ABCD", "gitlab_token"),
        ("xoxb-1234567890-abcdefABCDEF", "xoxb-1234567890-abcdefABCDEF", "slack_token"),
        ("AKIAWEYNUZSKSTRXOOHY", "AKIAWEYNUZSKSTRXOOHY", "aws_access_key_id"),  # no digit by chance
        (
            "gho_HnEUvixwGJLoNrQGiGbABQMlcIsrhXOTCXxH",
            "gho_HnEUvixwGJLoNrQGiGbABQMlcIsrhXOTCXxH",
            "github_token",
        ),
    ],
)
def test_secret_tokens(text: str, expected: str, validation: str) -> None:
    findings = scan(f"token: {text} end", types=[PiiType.SECRET])
    assert [(f"token: {text} end"[f.start : f.end], f.validation) for f in findings] == [
        (expected, validation)
    ]


@pytest.mark.parametrize(
    "text",
    [
        "use sk-learn and task-management-for-the-whole-team",
        "sk-this-is-a-very-long-kebab-case-identifier",  # no digits: a name, not a key
        "AKIA0123",  # too short
        "XAKIAIOSFODNN7EXAMPLE",  # inside a longer token
        "laughghp_abcdefghijklmnopqrstuvwxyz0123456789",
    ],
)
def test_secret_lookalikes(text: str) -> None:
    assert scan(text, types=[PiiType.SECRET]) == []


def test_private_key_block_complete_and_truncated() -> None:
    block = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    text = f"here:\n{block}\nthanks"
    assert _found(text, PiiType.SECRET) == [block]
    truncated = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBn\n"
    assert _found(f"oops {truncated}\n\nmore text", PiiType.SECRET) == [truncated.rstrip()]


def test_findings_carry_confidence_and_validation() -> None:
    text = "card 4111 1111 1111 1111, IBAN GB29NWBK60161331926819, ip 8.8.8.8, call +44 20 7946 0958"
    by_type = {f.type: f for f in scan(text)}
    assert by_type[PiiType.CREDIT_CARD].validation == "luhn"
    assert by_type[PiiType.IBAN].validation == "mod97"
    assert by_type[PiiType.IP_ADDRESS].validation == "ipv4"
    assert by_type[PiiType.PHONE].validation == "libphonenumber"
    assert all(0.0 < f.confidence <= 1.0 for f in by_type.values())


def test_overlaps_keep_higher_confidence_then_longer_span() -> None:
    # Given overlapping candidates
    low_long = Finding(PiiType.PHONE, 0, 20, 0.7, "libphonenumber")
    high_short = Finding(PiiType.CREDIT_CARD, 5, 15, 0.95, "luhn")
    same_conf_long = Finding(PiiType.SSN, 30, 45, 0.8, "ssa_area_group_serial")
    same_conf_short = Finding(PiiType.PHONE, 32, 40, 0.8, "libphonenumber")
    apart = Finding(PiiType.EMAIL, 50, 60, 0.5, "rfc5321_syntax")
    # When resolved
    kept = resolve_overlaps([low_long, same_conf_short, apart, high_short, same_conf_long])
    # Then the winners remain, in text order
    assert kept == [high_short, same_conf_long, apart]


def test_card_digits_are_not_reported_as_a_phone_too() -> None:
    text = "card 4111 1111 1111 1111"
    assert [f.type for f in scan(text)] == [PiiType.CREDIT_CARD]


@pytest.mark.parametrize(
    "text",
    [
        "during 4155552671 iterations",  # "ring" inside a word is not a phone word
        "Martin 123456788 rows",  # "tin" inside a name is not a taxpayer id
    ],
)
def test_context_words_match_whole_words_only(text: str) -> None:
    assert scan(text, types=[PiiType.PHONE, PiiType.SSN]) == []
