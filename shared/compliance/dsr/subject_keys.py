"""The keyed subject key of a data subject request: finds a second open request for the same person
without storing the identifier the request named.

``HMAC-SHA256(secret, domain || org id || kind || normalised value)``: deterministic per
organisation, so the partial unique index on ``dsr_requests (org_id, subject_key, type)`` catches
duplicates; keyed with a server secret, so a database reader cannot test guessed identifiers
(an unkeyed hash of an e-mail address is reversible by dictionary).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from uuid import UUID

MIN_SECRET_BYTES: Final = 32
KEY_BYTES: Final = 32
_DOMAIN: Final = b"compliance/dsr-subject/v1\x00"


def normalise_email(email: str) -> str:
    """How an address is compared: stripped and lower-cased (the local part is case-insensitive in
    practice, whatever RFC 5321 allows)."""
    return email.strip().lower()


def subject_key(
    secret: bytes, org_id: UUID, *, subject_id: str | None = None, email: str | None = None
) -> bytes:
    """The 32-byte key of the subject named by the platform's ``subject_id`` or an ``email``
    (exactly one). The kind is part of the message: an id equal to some address is another key."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the subject key secret must be at least {MIN_SECRET_BYTES} bytes")
    if (subject_id is None) == (email is None):
        raise ValueError("give exactly one of subject_id and email")
    if subject_id is not None:
        kind, value = b"subject_id\x00", subject_id
    else:
        assert email is not None
        kind, value = b"email\x00", normalise_email(email)
    message = _DOMAIN + org_id.bytes + kind + value.encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).digest()
