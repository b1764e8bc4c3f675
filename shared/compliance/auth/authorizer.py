"""API-key authentication for the API Gateway REQUEST authorizer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from compliance.api.identity import principal_context
from compliance.auth.keys import parse_api_key, verify_secret
from compliance.db import api_keys as api_keys_repo
from compliance.db.connection import Database
from compliance.errors import UnauthenticatedError
from compliance.models.auth import Principal, Role
from compliance.observability import logger, metrics

BEARER = "bearer "
# API Gateway turns exactly this error message into a 401.
UNAUTHORIZED = "Unauthorized"
MAX_HEADER_CHARS = 512


class UnauthorizedError(Exception):
    def __init__(self) -> None:
        super().__init__(UNAUTHORIZED)


def bearer_token(authorization: str | None) -> str:
    if not authorization or len(authorization) > MAX_HEADER_CHARS:
        raise UnauthenticatedError("missing or oversized Authorization header")
    if authorization[: len(BEARER)].lower() != BEARER:
        raise UnauthenticatedError("Authorization must use the Bearer scheme")
    return authorization[len(BEARER) :].strip()


def authenticate(db: Database, authorization: str | None, *, now: datetime) -> Principal:
    """Resolve a bearer API key to its principal, or raise UnauthenticatedError (one reason per failure)."""
    prefix, secret = parse_api_key(bearer_token(authorization))
    with db.unscoped() as conn:
        stored = api_keys_repo.find_key_for_auth(conn, prefix)
    if stored is None or not verify_secret(secret, stored.secret_hash):
        raise UnauthenticatedError("unknown API key")
    if stored.revoked_at is not None:
        raise UnauthenticatedError("revoked API key")
    if stored.expires_at is not None and stored.expires_at <= now:
        raise UnauthenticatedError("expired API key")
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


def authorize_request(event: dict[str, Any], *, db: Database, now: datetime) -> dict[str, Any]:
    """The authorizer's whole job: a policy for a good key, the 401 error for anything else."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        principal = authenticate(db, headers.get("authorization"), now=now)
    except UnauthenticatedError as exc:
        metrics.add_metric(name="AuthenticationFailed", unit="Count", value=1)
        # The reason goes to the log (no key material); the caller only learns "Unauthorized".
        identity = (event.get("requestContext") or {}).get("identity") or {}
        logger.info(
            "authentication failed", extra={"reason": exc.detail, "source_ip": identity.get("sourceIp")}
        )
        raise UnauthorizedError() from None
    logger.append_keys(org_id=str(principal.org_id), key_id=str(principal.key_id))
    return allow_policy(principal, event["methodArn"])
