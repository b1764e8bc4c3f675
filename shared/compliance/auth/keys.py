"""API keys: ``cpk_<prefix>_<secret>``.

The prefix (12 lowercase letters/digits, about 62 bits) is stored in clear and unique: it
finds the key before the organisation is known. The secret (32 random bytes, base64url,
43 characters) is stored only as its SHA-256. A fast hash is enough here, unlike for
passwords: the secret is 256 uniformly random bits, so there is nothing to guess or
brute-force from a leaked hash, and slow KDFs (bcrypt/argon2) would only add latency to
every authorised request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass, field

from compliance.errors import UnauthenticatedError

KEY_SCHEME = "cpk"
PREFIX_LENGTH = 12
SECRET_BYTES = 32
SECRET_LENGTH = 43  # len(base64url(32 bytes)) without padding
KEY_LENGTH = len(KEY_SCHEME) + 1 + PREFIX_LENGTH + 1 + SECRET_LENGTH
MAX_PRESENTED_LENGTH = 256  # anything longer is rejected before any parsing

_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_CHARS = frozenset(_PREFIX_ALPHABET)
_SECRET_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
_MALFORMED = "malformed API key"


@dataclass(frozen=True)
class GeneratedKey:
    """A new key: ``plaintext`` is shown to its owner once; only prefix and hash are stored."""

    plaintext: str = field(repr=False)
    prefix: str
    secret_hash: bytes = field(repr=False)


def generate_api_key() -> GeneratedKey:
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return GeneratedKey(
        plaintext=f"{KEY_SCHEME}_{prefix}_{secret}", prefix=prefix, secret_hash=hash_secret(secret)
    )


def parse_api_key(raw: str) -> tuple[str, str]:
    """Split a presented key into (prefix, secret); ``UnauthenticatedError`` if malformed.

    Linear, allocation-bounded checks only (no regex): the input is attacker-controlled.
    """
    if not isinstance(raw, str) or len(raw) > MAX_PRESENTED_LENGTH or len(raw) != KEY_LENGTH:
        raise UnauthenticatedError(_MALFORMED)
    scheme, _, rest = raw.partition("_")
    prefix, separator, secret = rest.partition("_")  # the secret itself may contain "_"
    if (
        scheme != KEY_SCHEME
        or not separator
        or len(prefix) != PREFIX_LENGTH
        or len(secret) != SECRET_LENGTH
        or not _PREFIX_CHARS.issuperset(prefix)
        or not _SECRET_CHARS.issuperset(secret)
    ):
        raise UnauthenticatedError(_MALFORMED)
    return prefix, secret


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def verify_secret(secret: str, secret_hash: bytes) -> bool:
    """Constant-time comparison of the secret's hash with the stored one."""
    try:
        candidate = hash_secret(secret)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(candidate, bytes(secret_hash))
