"""Typed errors of the PII scanner; the API maps them to problem+json through their bases."""

from __future__ import annotations

from compliance.errors import PayloadTooLargeError, ValidationFailedError


class ScanInputTooLargeError(PayloadTooLargeError):
    """The text is longer than the scanner accepts in one call."""


class NonUtf8InputError(ValidationFailedError):
    """Bytes were given that are not valid UTF-8."""


class BinaryInputError(ValidationFailedError):
    """The input looks like binary data, not text."""


class ScanOptionsError(ValidationFailedError):
    """Unknown entity type, unknown phone region or unusable redaction options."""


class ScanBatchTooLargeError(PayloadTooLargeError):
    """The texts of one request add up to more than the API scans in one call."""
