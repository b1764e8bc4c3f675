"""API key generation, parsing and verification (compliance.auth.keys)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance.auth.keys import (
    KEY_LENGTH,
    PREFIX_LENGTH,
    generate_api_key,
    hash_secret,
    parse_api_key,
    verify_secret,
)
from compliance.errors import UnauthenticatedError

# The CHECK on api_keys.prefix in migrations/0001_core.up.sql.
DB_PREFIX_CHECK = re.compile(r"^[a-z0-9]{8,32}$")


def test_generated_key_has_the_documented_format() -> None:
    # Given / When a new key
    key = generate_api_key()

    # Then it reads cpk_<prefix>_<secret>, its prefix fits the database check, and only the hash is kept
    assert key.plaintext.startswith(f"cpk_{key.prefix}_")
    assert len(key.plaintext) == KEY_LENGTH
    assert len(key.prefix) == PREFIX_LENGTH
    assert DB_PREFIX_CHECK.match(key.prefix)
    assert len(key.secret_hash) == 32
    assert key.plaintext not in repr(key)


def test_generated_keys_differ() -> None:
    # Given / When many keys
    keys = [generate_api_key() for _ in range(200)]

    # Then no prefix or secret repeats
    assert len({k.prefix for k in keys}) == 200
    assert len({k.plaintext for k in keys}) == 200


def test_a_generated_key_parses_and_verifies() -> None:
    # Given a new key
    key = generate_api_key()

    # When it is parsed
    prefix, secret = parse_api_key(key.plaintext)

    # Then the prefix matches and the secret verifies against the stored hash
    assert prefix == key.prefix
    assert verify_secret(secret, key.secret_hash)


def test_a_secret_with_underscores_still_parses() -> None:
    # Given a key whose secret contains the separator (base64url may produce "_")
    secret = "_" * 10 + "a" * 33
    raw = f"cpk_abcdefghijkl_{secret}"

    # When / Then the secret is everything after the prefix
    assert parse_api_key(raw) == ("abcdefghijkl", secret)


def test_a_wrong_secret_does_not_verify() -> None:
    # Given a key and another key's secret
    key, other = generate_api_key(), generate_api_key()
    _, other_secret = parse_api_key(other.plaintext)

    # When / Then verification fails, also against a malformed stored hash
    assert not verify_secret(other_secret, key.secret_hash)
    assert not verify_secret(other_secret, b"short")
    assert not verify_secret("nön-ascii", key.secret_hash)


def test_hash_is_sha256_of_the_secret() -> None:
    assert hash_secret("abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "cpk",
        "cpk_",
        "cpk__",
        "xyz_abcdefghijkl_" + "a" * 43,  # wrong scheme
        "cpk_ABCDEFGHIJKL_" + "a" * 43,  # prefix not lowercase
        "cpk_abcdefghijk_" + "a" * 44,  # prefix too short
        "cpk_abcdefghijkl_" + "a" * 42,  # secret too short
        "cpk_abcdefghijkl_" + "a" * 42 + "=",  # padding is not base64url-unpadded
        "cpk_abcdefghijkl_" + "a" * 42 + " ",
        "cpk_abcdefghijkl-" + "a" * 43,  # no separator
        "cpk_abcdefghijkl_" + "a" * 43 + "\n",
        "cpk_abcdefghijkl_" + "é" * 43,
        "a" * 100_000,
    ],
)
def test_malformed_keys_are_rejected(raw: str) -> None:
    # Given a malformed key / When it is parsed / Then it is Unauthenticated
    with pytest.raises(UnauthenticatedError):
        parse_api_key(raw)


def test_non_string_input_is_rejected() -> None:
    with pytest.raises(UnauthenticatedError):
        parse_api_key(None)  # type: ignore[arg-type]


def test_huge_input_is_rejected_quickly() -> None:
    # Given a 10 MB header value
    raw = "cpk_" + "_" * 10_000_000

    # When it is parsed
    started = time.perf_counter()
    with pytest.raises(UnauthenticatedError):
        parse_api_key(raw)

    # Then the length bound rejects it without scanning it
    assert time.perf_counter() - started < 0.05


@given(st.text(max_size=300))
def test_parsing_arbitrary_text_only_ever_raises_unauthenticated(raw: str) -> None:
    try:
        prefix, secret = parse_api_key(raw)
    except UnauthenticatedError:
        return
    assert len(prefix) == PREFIX_LENGTH and raw.endswith(secret)
