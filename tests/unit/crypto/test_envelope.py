"""The v1 ciphertext format: round trip, layout, context binding, and refusal of every edit."""

from __future__ import annotations

import os
import uuid

import pytest

from compliance.crypto.context import EncryptionContext
from compliance.crypto.envelope import (
    MAX_PLAINTEXT_BYTES,
    NONCE_BYTES,
    OVERHEAD_BYTES,
    TEXT_PREFIX,
    decrypt_value,
    encrypt_value,
    from_text,
    key_id_of,
    to_text,
)
from compliance.crypto.errors import DecryptionError, UnsupportedCiphertextError
from compliance.errors import DomainError, PayloadTooLargeError

KEY = os.urandom(32)
KEY_ID = uuid.UUID("0b5d1f5e-6a2c-4c1e-9d7a-5b3f2e1d0c9b")
ORG = uuid.UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
SUBJECT = uuid.UUID("1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b")
CONTEXT = EncryptionContext(ORG, "usage_records", "prompt_text", SUBJECT)
VALUE = b"Contact me at jane@example.com"


def test_a_value_round_trips_and_the_layout_is_as_documented() -> None:
    # Given a value sealed under a data key
    ciphertext = encrypt_value(KEY, KEY_ID, VALUE, CONTEXT)

    # Then it is version | key id | nonce | ciphertext | tag, and it opens in its context
    assert ciphertext[0] == 1
    assert ciphertext[1:17] == KEY_ID.bytes
    assert len(ciphertext) == len(VALUE) + OVERHEAD_BYTES == len(VALUE) + 45
    assert key_id_of(ciphertext) == KEY_ID
    assert decrypt_value(KEY, ciphertext, CONTEXT) == VALUE
    # And the text form round trips through strict base64url
    text = to_text(ciphertext)
    assert text.startswith(TEXT_PREFIX)
    assert "=" not in text
    assert from_text(text) == ciphertext


def test_nonces_are_random_per_encryption() -> None:
    # When the same value is sealed twice
    first, second = (encrypt_value(KEY, KEY_ID, VALUE, CONTEXT) for _ in range(2))

    # Then the nonces (and so the ciphertexts) differ
    assert first[17 : 17 + NONCE_BYTES] != second[17 : 17 + NONCE_BYTES]
    assert first != second


def test_the_empty_value_round_trips() -> None:
    assert decrypt_value(KEY, encrypt_value(KEY, KEY_ID, b"", CONTEXT), CONTEXT) == b""


def test_every_single_byte_flip_fails() -> None:
    # Given a ciphertext
    ciphertext = encrypt_value(KEY, KEY_ID, VALUE, CONTEXT)

    # When any bit pattern of any byte changes, Then decryption raises a typed error
    for position in range(len(ciphertext)):
        for mask in (0x01, 0x80, 0xFF):
            mutated = bytearray(ciphertext)
            mutated[position] ^= mask
            expected = UnsupportedCiphertextError if position == 0 else DecryptionError
            with pytest.raises(expected):
                decrypt_value(KEY, bytes(mutated), CONTEXT)


def test_every_truncation_and_extension_fails() -> None:
    ciphertext = encrypt_value(KEY, KEY_ID, VALUE, CONTEXT)
    # Given every prefix of the ciphertext (including empty), Then none decrypts
    for length in range(len(ciphertext)):
        with pytest.raises(DecryptionError):
            decrypt_value(KEY, ciphertext[:length], CONTEXT)
    # And neither does the ciphertext with a byte appended
    with pytest.raises(DecryptionError):
        decrypt_value(KEY, ciphertext + b"\x00", CONTEXT)


@pytest.mark.parametrize(
    "other",
    [
        EncryptionContext(uuid.uuid4(), "usage_records", "prompt_text", SUBJECT),
        EncryptionContext(ORG, "usage_records_copy", "prompt_text", SUBJECT),
        EncryptionContext(ORG, "usage_records", "completion_text", SUBJECT),
        EncryptionContext(ORG, "usage_records", "prompt_text", uuid.uuid4()),
        EncryptionContext(ORG, "usage_records", "prompt_text", None),
        # Boundary shifts between fields must not collide (length-prefixed encoding)
        EncryptionContext(ORG, "usage_recordsp", "rompt_text", SUBJECT),
    ],
    ids=["org", "table", "column", "subject", "no-subject", "shifted-names"],
)
def test_a_value_moved_to_another_context_fails(other: EncryptionContext) -> None:
    # Given a value sealed for one org/table/column/subject
    ciphertext = encrypt_value(KEY, KEY_ID, VALUE, CONTEXT)

    # When it is read in any other context, Then it does not decrypt
    with pytest.raises(DecryptionError):
        decrypt_value(KEY, ciphertext, other)


def test_another_key_fails() -> None:
    ciphertext = encrypt_value(KEY, KEY_ID, VALUE, CONTEXT)
    with pytest.raises(DecryptionError):
        decrypt_value(os.urandom(32), ciphertext, CONTEXT)


def test_context_encodings_are_distinct() -> None:
    # Given contexts that a naive concatenation would confuse
    contexts = [
        EncryptionContext(ORG, "ab", "c"),
        EncryptionContext(ORG, "a", "bc"),
        EncryptionContext(ORG, "a", "bc", SUBJECT),
        EncryptionContext(ORG, "a", "b" + "c"),
    ]
    # Then equal contexts encode equally and different ones differently
    assert len({c.encode() for c in contexts}) == 3


def test_every_edit_of_the_text_form_fails() -> None:
    # Given the text form of a ciphertext
    text = to_text(encrypt_value(KEY, KEY_ID, VALUE, CONTEXT))
    body_start = len(TEXT_PREFIX)

    # When any character of the base64url body is replaced by any other character,
    # Then it either fails to parse or fails to decrypt: never the original value or garbage
    for position in range(body_start, len(text)):
        for replacement in "A_-+/=.0 é":
            if replacement == text[position]:
                continue
            mutated = text[:position] + replacement + text[position + 1 :]
            with pytest.raises(DomainError):
                decrypt_value(KEY, from_text(mutated), CONTEXT)
    # And the unpadded text with padding appended is refused too
    with pytest.raises(DecryptionError):
        from_text(text + "=")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("plain value", DecryptionError),
        ("enc:v2:AAAA", UnsupportedCiphertextError),
        ("enc:v1:", DecryptionError),
        ("enc:v1:not*base64", DecryptionError),
        ("enc:v1:" + "A" * 100, DecryptionError),  # decodes, but version byte 0 under a v1 prefix
        ("enc:v1:\udcff", DecryptionError),
    ],
)
def test_malformed_text_raises_a_typed_error(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        key_id_of(from_text(text))


def test_an_unknown_version_byte_is_unsupported() -> None:
    ciphertext = bytearray(encrypt_value(KEY, KEY_ID, VALUE, CONTEXT))
    ciphertext[0] = 2
    with pytest.raises(UnsupportedCiphertextError):
        key_id_of(bytes(ciphertext))


def test_size_limits_give_clear_errors() -> None:
    # Plaintext above the limit is refused before any crypto
    with pytest.raises(PayloadTooLargeError):
        encrypt_value(KEY, KEY_ID, b"x" * (MAX_PLAINTEXT_BYTES + 1), CONTEXT)
    # And a 10 MB text is refused by length, not decoded
    with pytest.raises(DecryptionError):
        from_text(TEXT_PREFIX + "A" * 10_000_000)


def test_context_names_are_bounded() -> None:
    with pytest.raises(ValueError, match="1 to 63"):
        EncryptionContext(ORG, "", "prompt_text")
    with pytest.raises(ValueError, match="1 to 63"):
        EncryptionContext(ORG, "t" * 64, "prompt_text")
