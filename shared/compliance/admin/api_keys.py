"""API-key lifecycle: create (shown once), list, read, revoke — always within the caller's organisation.

Creation and revocation publish their audit event inside the database transaction, before it
commits: if the audit trail refuses the event (AuditUnavailableError), the transaction rolls back
and the key is neither created nor revoked. The event is never lost for a change that happened;
the converse (an event for a change whose commit then fails) is possible and harmless: the
``api.request`` event of the same call records the failure.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from compliance.audit import emit
from compliance.audit.emit import RequestOrigin
from compliance.audit.sink import AuditSink
from compliance.auth.keys import generate_api_key
from compliance.db import api_keys as api_keys_repo
from compliance.db.connection import Database
from compliance.errors import NotFoundError, ValidationFailedError
from compliance.models.auth import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, Principal


def create_api_key(
    db: Database,
    principal: Principal,
    request: ApiKeyCreate,
    *,
    now: datetime,
    sink: AuditSink,
    origin: RequestOrigin,
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
        # Inside the transaction: a refused event rolls the new key back (fail closed).
        event = emit.api_key_created(
            principal=principal,
            key_id=stored.id,
            roles=stored.roles,
            expires_at=stored.expires_at,
            origin=origin,
            occurred_at=now,
        )
        emit.publish(sink, [event])
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


def revoke_api_key(
    db: Database, principal: Principal, key_id: UUID, *, now: datetime, sink: AuditSink, origin: RequestOrigin
) -> ApiKeyOut:
    with db.tenant(principal.org_id) as conn:
        key = api_keys_repo.revoke_api_key(conn, key_id, now)
        if key is None:
            raise NotFoundError("no such API key")
        # Only the revocation that changes the key is an api_key.revoked event (revoking again keeps
        # the first time, and its api.request event records the call). Inside the transaction: a
        # refused event rolls the revocation back (fail closed).
        if key.revoked_at == now:
            event = emit.api_key_revoked(principal=principal, key_id=key.id, origin=origin, occurred_at=now)
            emit.publish(sink, [event])
    return key
