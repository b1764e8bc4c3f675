"""API-key lifecycle: create (shown once), list, read, revoke — always within the caller's organisation."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from compliance.auth.keys import generate_api_key
from compliance.db import api_keys as api_keys_repo
from compliance.db.connection import Database
from compliance.errors import NotFoundError, ValidationFailedError
from compliance.models.auth import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, Principal
from compliance.observability import logger


def create_api_key(
    db: Database, principal: Principal, request: ApiKeyCreate, *, now: datetime
) -> ApiKeyCreated:
    if request.expires_at is not None and request.expires_at <= now:
        raise ValidationFailedError("expires_at must be in the future")
    generated = generate_api_key()
    with db.tenant(principal.org_id) as conn:
        stored = api_keys_repo.insert_api_key(
            conn,
            org_id=principal.org_id,
            name=request.name,
            prefix=generated.prefix,
            secret_hash=generated.secret_hash,
            roles=sorted(set(request.roles)),
            expires_at=request.expires_at,
        )
    logger.info(
        "api key created",
        extra={
            "key_id": str(stored.id),
            "by_key_id": str(principal.key_id),
            "roles": [r.value for r in stored.roles],
        },
    )
    return ApiKeyCreated(**stored.model_dump(), key=generated.plaintext)


def list_api_keys(db: Database, principal: Principal) -> list[ApiKeyOut]:
    with db.tenant(principal.org_id) as conn:
        return api_keys_repo.list_api_keys(conn)


def get_api_key(db: Database, principal: Principal, key_id: UUID) -> ApiKeyOut:
    with db.tenant(principal.org_id) as conn:
        key = api_keys_repo.get_api_key(conn, key_id)
    if key is None:
        # Another organisation's key is indistinguishable from a missing one (RLS hides it).
        raise NotFoundError("no such API key")
    return key


def revoke_api_key(db: Database, principal: Principal, key_id: UUID, *, now: datetime) -> ApiKeyOut:
    with db.tenant(principal.org_id) as conn:
        key = api_keys_repo.revoke_api_key(conn, key_id, now)
    if key is None:
        raise NotFoundError("no such API key")
    logger.info("api key revoked", extra={"key_id": str(key_id), "by_key_id": str(principal.key_id)})
    return key
