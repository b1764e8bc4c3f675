"""Typed errors of field encryption. None of them carries key material or plaintext."""

from __future__ import annotations

from compliance.errors import DomainError


class DecryptionError(DomainError):
    """The value does not authenticate: wrong context (moved to another org, table, column or
    subject), tampered, truncated, or not a ciphertext at all. Nothing is returned."""

    status = 500
    title = "Decryption failed"


class UnsupportedCiphertextError(DomainError):
    """The value names a ciphertext format version this code does not know."""

    status = 500
    title = "Unsupported ciphertext version"


class KeyShreddedError(DomainError):
    """The data key was destroyed (crypto-shredding): the value is erased for good."""

    status = 410
    title = "Data erased"


class KeyServiceUnavailableError(DomainError):
    """KMS failed or refused (outage, throttling, disabled key, access denied): retry later."""

    status = 503
    title = "Key service unavailable"
