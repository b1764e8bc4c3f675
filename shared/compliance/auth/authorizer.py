"""API-key authentication for the API Gateway REQUEST authorizer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from compliance.api.identity import principal_context
from compliance.auth.keys import parse_api_key, verify_secret
from compliance.db import api_keys as api_keys_repo
from compliance.db.api_keys import StoredKey
from compliance.db.connection import Database
from compliance.errors import AuditUnavailableError, UnauthenticatedError
from compliance.models.auth import Principal, Role
from compliance.observability import logger, metrics

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink

BEARER = "bearer "
# API Gateway turns exactly this error message into a 401.
UNAUTHORIZED = "Unauthorized"
MAX_HEADER_CHARS = 512


FailureReason = Literal[
    "missing", "oversized", "not_bearer", "malformed", "unknown", "wrong_secret", "revoked", "expired"
]


class UnauthorizedError(Exception):
    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED)


class KeyRefusedError(UnauthenticatedError):
    """A refused key, for the log and the audit trail: a fixed reason code, the prefix once the key
    parsed (its public part), and the stored key that prefix named, if any. Never the secret."""

    def __init__(
        self,
        reason: FailureReason,
        detail: str,
        *,
        prefix: str | None = None,
        stored: StoredKey | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason: FailureReason = reason
        self.prefix = prefix
        self.stored = stored


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise KeyRefusedError("missing", "missing Authorization header")
    if len(authorization) > MAX_HEADER_CHARS:
        raise KeyRefusedError("oversized", "oversized Authorization header")
    if authorization[: len(BEARER)].lower() != BEARER:
        raise KeyRefusedError("not_bearer", "Authorization must use the Bearer scheme")
    return authorization[len(BEARER) :].strip()


def authenticate(db: Database, authorization: str | None, *, now: datetime) -> Principal:
    """Resolve a bearer API key to its principal, or raise KeyRefusedError (one reason per failure)."""
    token = bearer_token(authorization)
    try:
        prefix, secret = parse_api_key(token)
    except UnauthenticatedError:
        raise KeyRefusedError("malformed", "malformed API key") from None
    with db.unscoped() as conn:
        stored = api_keys_repo.find_key_for_auth(conn, prefix)
    if stored is None:
        raise KeyRefusedError("unknown", "unknown API key", prefix=prefix)
    if not verify_secret(secret, stored.secret_hash):
        raise KeyRefusedError("wrong_secret", "wrong API key secret", prefix=prefix, stored=stored)
    if stored.revoked_at is not None:
        raise KeyRefusedError("revoked", "revoked API key", prefix=prefix, stored=stored)
    if stored.expires_at is not None and stored.expires_at <= now:
        raise KeyRefusedError("expired", "expired API key", prefix=prefix, stored=stored)
    return Principal(org_id=stored.org_id, key_id=stored.id, roles=frozenset(Role(r) for r in stored.roles))


def allow_policy(principal: Principal, method_arn: str) -> dict[str, Any]:
    """Allow every method of this stage: the result is cached per key, and routes check roles themselves."""
    arn_parts = method_arn.split(":", 5)
    api_id, stage = arn_parts[5].split("/")[:2]
    resource = ":".join(arn_parts[:5]) + f":{api_id}/{stage}/*/*"
    return {
        "principalId": str(principal.key_id),
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resource}],
        },
        "context": principal_context(principal),
    }


def record_failure(
    event: dict[str, Any], failure: KeyRefusedError, audit_sink: AuditSink, *, now: datetime
) -> None:
    """The ``auth.failure`` event: in the key's organisation when the prefix named a stored key
    (``auth_find_api_key`` returns its org with the row; telling it to that org's auditors leaks
    nothing to the caller), else in the system organisation."""
    stored = failure.stored
    # Imported on the first refused key: the audit event models cost ~50 ms of every cold start.
    from compliance.audit import emit

    audit_event = emit.auth_failure(
        reason=failure.reason,
        org_id=stored.org_id if stored else None,
        key_id=stored.id if stored else None,
        key_prefix=failure.prefix,
        method=str(event.get("httpMethod") or ""),
        route=event.get("resource"),
        origin=emit.RequestOrigin.from_event(event),
        occurred_at=now,
    )
    emit.publish(audit_sink, [audit_event])


def authorize_request(
    event: dict[str, Any], *, db: Database, audit_sink: Callable[[], AuditSink], now: datetime
) -> dict[str, Any]:
    """The authorizer's whole job: a policy for a good key, the 401 error for anything else.

    ``audit_sink`` is a provider: only a refused key needs the sink (and its AWS client), so a
    successful call never pays for building it.
    """
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        principal = authenticate(db, headers.get("authorization"), now=now)
    except KeyRefusedError as exc:
        metrics.add_metric(name="AuthenticationFailed", unit="Count", value=1)
        # The reason goes to the log (no key material, no IP address: that is personal data and
        # lives in the audit event); the caller only learns "Unauthorized".
        logger.info("authentication failed", extra={"reason": exc.reason})
        try:
            record_failure(event, exc, audit_sink(), now=now)
        except Exception as audit_exc:  # the key is refused whatever happened here (fail closed)
            if not isinstance(audit_exc, AuditUnavailableError):  # emit.publish counted those
                from compliance.audit.emit import AUDIT_PUBLISH_FAILED

                metrics.add_metric(name=AUDIT_PUBLISH_FAILED, unit="Count", value=1)
                logger.error("audit publish failed", extra={"error_type": type(audit_exc).__name__})
        raise UnauthorizedError() from None
    logger.append_keys(org_id=str(principal.org_id), key_id=str(principal.key_id))
    return allow_policy(principal, event["methodArn"])
