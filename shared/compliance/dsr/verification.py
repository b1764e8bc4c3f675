"""One-time verification codes of data subject requests.

The code e-mailed to the subject is the only credential of ``POST /v1/dsr/{id}/verify``. It is
10 characters of Crockford base32 (50 bits from ``secrets``), shown as ``XXXXX-XXXXX``:

- 50 bits keep guessing hopeless even if the attempt counter were bypassed (concurrent calls
  racing the counter, many requests probed at once); 8 digits (26.6 bits) would rest entirely on
  the lockout.
- The alphabet has no I, L, O or U, and input is normalised (case, hyphens, spaces, I/L -> 1,
  O -> 0), so a code read from an e-mail and retyped still matches.

Only an HMAC-SHA256 of the code is stored, keyed with a server secret and bound to the request id
(a stored hash neither reveals the code to a database reader nor verifies another request). The
submitted code's HMAC is compared with ``hmac.compare_digest``.

The state is an immutable value; :func:`attempt` returns the next state and the outcome. The
caller persists the new state in the same transaction that reads the old one (``SELECT ... FOR
UPDATE``), so two concurrent attempts cannot both see the same counter.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from compliance.dsr.deadlines import as_utc
from compliance.errors import ConflictError, DomainError, ForbiddenError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
CODE_LENGTH = 10
MAX_ATTEMPTS = 5
MIN_KEY_BYTES = 32
_DOMAIN = b"compliance/dsr-verification/v1\x00"
# Crockford's decoding rules: read lookalikes as the digits they resemble.
_NORMALISE = str.maketrans({"I": "1", "L": "1", "O": "0"})


class VerificationPolicy(BaseModel):
    """Part of the DSR functions' settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl_days: int = Field(default=7, ge=1, le=30, description="After this the request closes as unverified.")
    max_attempts: int = Field(default=MAX_ATTEMPTS, ge=1, le=10)


class Outcome(StrEnum):
    VERIFIED = "verified"
    WRONG = "wrong"
    LOCKED = "locked"
    EXPIRED = "expired"
    ALREADY_VERIFIED = "already_verified"


@dataclass(frozen=True)
class VerificationState:
    """What the request row stores about its code. The code itself is never held; the hash is
    kept out of ``repr`` so that a logged state gives nothing to an offline guesser."""

    request_id: UUID
    code_hash: bytes = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    max_attempts: int = MAX_ATTEMPTS
    failed_attempts: int = 0
    verified_at: datetime | None = None

    @property
    def locked(self) -> bool:
        return self.failed_attempts >= self.max_attempts

    @property
    def attempts_left(self) -> int:
        return max(self.max_attempts - self.failed_attempts, 0)


@dataclass(frozen=True)
class IssuedCode:
    """A fresh code: ``code`` goes into the e-mail and nowhere else, ``state`` into the row."""

    code: str = field(repr=False)
    state: VerificationState


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    attempts_left: int


def generate_code() -> str:
    """10 random Crockford base32 characters (50 bits), undecorated."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def display(code: str) -> str:
    """The e-mailed form: two groups of five, easier to read and retype."""
    return f"{code[:5]}-{code[5:]}"


def normalise(submitted: str) -> str:
    """The canonical form of a typed code: upper case, no hyphens or whitespace, lookalikes read
    as digits. Anything else is left for the comparison to reject."""
    cleaned = "".join(ch for ch in submitted if ch != "-" and not ch.isspace())
    return cleaned.upper().translate(_NORMALISE)


def code_hash(key: bytes, request_id: UUID, code: str) -> bytes:
    """HMAC-SHA256 under the server key, bound to the request: what the row stores."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the verification key must be at least {MIN_KEY_BYTES} bytes")
    message = _DOMAIN + request_id.bytes + normalise(code).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()


def issue(
    request_id: UUID,
    key: bytes,
    now: datetime,
    policy: VerificationPolicy | None = None,
    code: str | None = None,
) -> IssuedCode:
    """A new code and its state. ``code`` is for tests only; production draws a random one. A
    re-sent code is a new issue: counter and expiry start again."""
    policy = policy or VerificationPolicy()
    now = as_utc(now)
    code = code or generate_code()
    state = VerificationState(
        request_id=request_id,
        code_hash=code_hash(key, request_id, code),
        issued_at=now,
        expires_at=now + timedelta(days=policy.ttl_days),
        max_attempts=policy.max_attempts,
    )
    return IssuedCode(code=code, state=state)


def is_expired(state: VerificationState, now: datetime) -> bool:
    return state.verified_at is None and now >= state.expires_at


def attempt(
    state: VerificationState, submitted: str, key: bytes, now: datetime
) -> tuple[VerificationState, AttemptResult]:
    """Check ``submitted`` against ``state``: the state to store next and what happened.

    Terminal states answer without looking at the code: verified (already), expired, locked. A
    right code after the lockout is refused like a wrong one. Only a wrong code changes the
    counter; the attempt that uses up the last try answers ``LOCKED``.
    """
    now = as_utc(now)
    if state.verified_at is not None:
        return state, AttemptResult(Outcome.ALREADY_VERIFIED, state.attempts_left)
    if is_expired(state, now):
        return state, AttemptResult(Outcome.EXPIRED, state.attempts_left)
    if state.locked:
        return state, AttemptResult(Outcome.LOCKED, 0)
    candidate = code_hash(key, state.request_id, submitted)
    if hmac.compare_digest(candidate, state.code_hash):
        verified = replace(state, verified_at=now)
        return verified, AttemptResult(Outcome.VERIFIED, verified.attempts_left)
    failed = replace(state, failed_attempts=state.failed_attempts + 1)
    outcome = Outcome.LOCKED if failed.locked else Outcome.WRONG
    return failed, AttemptResult(outcome, failed.attempts_left)


# ---------------------------------------------------------------------------- errors for the API


class WrongCodeError(ForbiddenError):
    title = "Wrong verification code"


class VerificationLockedError(ForbiddenError):
    title = "Verification locked"


class VerificationExpiredError(DomainError):
    status = 410
    title = "Verification expired"


class AlreadyVerifiedError(ConflictError):
    title = "Already verified"


def raise_for(result: AttemptResult) -> None:
    """Raise the typed error of a failed attempt (403 wrong or locked, 410 expired, 409 already
    verified); return for ``VERIFIED``. The details carry counts only."""
    match result.outcome:
        case Outcome.VERIFIED:
            return
        case Outcome.WRONG:
            raise WrongCodeError("the code is wrong", attempts_left=result.attempts_left)
        case Outcome.LOCKED:
            raise VerificationLockedError("too many wrong codes; the code is locked", attempts_left=0)
        case Outcome.EXPIRED:
            raise VerificationExpiredError("the code has expired; the request closes as unverified")
        case Outcome.ALREADY_VERIFIED:
            raise AlreadyVerifiedError("the request is already verified")
