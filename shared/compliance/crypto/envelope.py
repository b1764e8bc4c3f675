"""The ciphertext format of an encrypted field (version 1), specified in docs/crypto-format.md.

Bytes form::

    version (1 byte, 0x01) | key id (16 bytes, the data key's uuid) | nonce (12 bytes, random)
    | AES-256-GCM ciphertext (as long as the plaintext) | GCM tag (16 bytes)

Associated data: ``version | key id | EncryptionContext.encode()``, so a value copied into
another org, table, column or subject's row fails to authenticate, as does any edited header.

Text form (for ``text`` columns): ``enc:v1:`` + unpadded base64url of the bytes form; decoding is
strict (one text per byte string), so no edit of the text decodes to the same ciphertext.

``cryptography`` is imported on first use, not at module import (cold start).
"""

from __future__ import annotations

import binascii
import functools
import os
from typing import TYPE_CHECKING
from uuid import UUID

from compliance.crypto.errors import DecryptionError, UnsupportedCiphertextError
from compliance.errors import PayloadTooLargeError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from compliance.crypto.context import EncryptionContext

VERSION_1 = 1
KEY_BYTES = 32  # AES-256
KEY_ID_BYTES = 16
NONCE_BYTES = 12  # 96 bits: GCM's native nonce size
TAG_BYTES = 16
HEADER_BYTES = 1 + KEY_ID_BYTES
PREFIX_BYTES = HEADER_BYTES + NONCE_BYTES
OVERHEAD_BYTES = PREFIX_BYTES + TAG_BYTES  # 45 bytes on top of the plaintext
MAX_PLAINTEXT_BYTES = 1024 * 1024  # prompts are at most 100,000 characters (<= 400 kB of UTF-8)
MAX_CIPHERTEXT_BYTES = MAX_PLAINTEXT_BYTES + OVERHEAD_BYTES
TEXT_PREFIX = "enc:v1:"
_TEXT_PREFIX_ANY = "enc:"
_MAX_TEXT_CHARS = len(TEXT_PREFIX) + (MAX_CIPHERTEXT_BYTES * 4 + 2) // 3
# base64url <-> standard alphabet; "+" and "/" map to bytes no alphabet has, so they never decode
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_+/", b"+/\x00\x00")


@functools.cache
def _aead() -> tuple[type[AESGCM], type[Exception]]:
    # Imported on first use (cold start), then looked up once: an import statement per field
    # costs more than the AES-GCM operation itself.
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM, InvalidTag


def cipher_for(key: bytes | bytearray) -> AESGCM:
    """An AES-256-GCM cipher for a 32-byte data key, reused for many values and threads
    (cryptography keeps its own copy of the key, in OpenSSL memory cleansed when freed)."""
    if len(key) != KEY_BYTES:
        raise ValueError("data keys are 32 bytes (AES-256)")
    return _aead()[0](key)


def encrypt_value(
    key: bytes | bytearray, key_id: UUID, plaintext: bytes, context: EncryptionContext
) -> bytes:
    """The v1 ciphertext of ``plaintext`` under the data key ``key`` (32 bytes) named ``key_id``."""
    return seal(cipher_for(key), key_id, plaintext, context)


def seal(cipher: AESGCM, key_id: UUID, plaintext: bytes, context: EncryptionContext) -> bytes:
    """:func:`encrypt_value` with a cipher from :func:`cipher_for`."""
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise PayloadTooLargeError(f"an encrypted field holds at most {MAX_PLAINTEXT_BYTES} bytes")
    header = bytes((VERSION_1,)) + key_id.bytes
    nonce = os.urandom(NONCE_BYTES)
    return header + nonce + cipher.encrypt(nonce, plaintext, header + context.encode())


def key_id_of(ciphertext: bytes) -> UUID:
    """The data key id a ciphertext names, after checking its version and length."""
    check_layout(ciphertext)
    return UUID(bytes=ciphertext[1:HEADER_BYTES])


def decrypt_value(key: bytes | bytearray, ciphertext: bytes, context: EncryptionContext) -> bytes:
    """The plaintext of a v1 ciphertext, or :class:`DecryptionError` if anything differs from what
    was encrypted (key, context, any byte); never partial or unauthenticated output."""
    return unseal(cipher_for(key), ciphertext, context)


def unseal(cipher: AESGCM, ciphertext: bytes, context: EncryptionContext) -> bytes:
    """:func:`decrypt_value` with a cipher from :func:`cipher_for`."""
    check_layout(ciphertext)
    header = ciphertext[:HEADER_BYTES]
    nonce = ciphertext[HEADER_BYTES:PREFIX_BYTES]
    try:
        return cipher.decrypt(nonce, ciphertext[PREFIX_BYTES:], header + context.encode())
    except _aead()[1]:
        # Deliberately vague: the cause (context, key, tampering) cannot be told apart.
        raise DecryptionError(
            "the value does not authenticate in this context (moved, tampered or truncated)"
        ) from None


def check_layout(ciphertext: bytes) -> None:
    """Version and length checks, before any key lookup."""
    if not ciphertext:
        raise DecryptionError("empty ciphertext")
    if ciphertext[0] != VERSION_1:
        raise UnsupportedCiphertextError(f"ciphertext format version {ciphertext[0]} is not supported")
    if len(ciphertext) < OVERHEAD_BYTES:
        raise DecryptionError("truncated ciphertext")
    if len(ciphertext) > MAX_CIPHERTEXT_BYTES:
        raise DecryptionError("ciphertext longer than this format allows")


def to_text(ciphertext: bytes) -> str:
    """The text form: ``enc:v1:`` + unpadded base64url."""
    encoded = binascii.b2a_base64(ciphertext, newline=False).translate(_TO_URLSAFE).rstrip(b"=")
    return TEXT_PREFIX + encoded.decode("ascii")


def is_encrypted_text(value: str) -> bool:
    return value.startswith(_TEXT_PREFIX_ANY)


def from_text(text: str) -> bytes:
    """The bytes form of a text ciphertext; strict, canonical base64url only."""
    if not text.startswith(_TEXT_PREFIX_ANY):
        raise DecryptionError("not an encrypted value")
    if not text.startswith(TEXT_PREFIX):
        version = text[len(_TEXT_PREFIX_ANY) :].split(":", 1)[0][:16]
        raise UnsupportedCiphertextError(f"ciphertext text version {version!r} is not supported")
    if len(text) > _MAX_TEXT_CHARS:
        raise DecryptionError("ciphertext longer than this format allows")
    body = text[len(TEXT_PREFIX) :]
    try:
        raw = body.encode("ascii")
        data = binascii.a2b_base64(raw.translate(_FROM_URLSAFE) + b"=" * (-len(raw) % 4))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise DecryptionError("malformed ciphertext text") from None
    # a2b_base64 skips foreign characters and ignores unused trailing bits: re-encoding rejects
    # every text but the one this module writes for these bytes (and "+", "/", "=" inside).
    if binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=") != raw:
        raise DecryptionError("malformed ciphertext text")
    if data and data[0] != VERSION_1:
        raise DecryptionError("ciphertext version does not match its text prefix")
    return data
