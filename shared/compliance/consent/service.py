"""Recording and revoking consent, and reading a subject's history, within the caller's organisation.

Each change publishes its audit event (``consent.granted`` / ``consent.revoked``) inside the
transaction that makes it: if the audit trail refuses, nothing changes. The ingest processor reads
the same table per slice (``with_active_consent``): a revocation applies to every record processed
after it commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from compliance.audit import emit
from compliance.audit.emit import RequestOrigin
from compliance.audit.sink import AuditSink
from compliance.db.connection import Database
from compliance.errors import ConflictError, NotFoundError, ValidationFailedError
from compliance.models.auth import Principal
from compliance.models.consent import ConsentCreate, ConsentHistory, ConsentOut

# A grant may be dated slightly ahead of this clock (the platform's clock skew), not into the future.
MAX_CLOCK_SKEW_S = 300


class ConsentNotFoundError(NotFoundError):
    """The organisation has no consent record with this id."""


class SubjectNotFoundError(NotFoundError):
    """The organisation has no subject with this id."""


def record_consent(
    db: Database,
    principal: Principal,
    request: ConsentCreate,
    *,
    now: datetime,
    sink: AuditSink,
    origin: RequestOrigin,
) -> ConsentOut:
    from compliance.db import consents as consents_repo
    from compliance.db import usage as usage_repo

    if request.granted_at is not None and (request.granted_at - now).total_seconds() > MAX_CLOCK_SKEW_S:
        raise ValidationFailedError("granted_at is in the future")
    if request.expires_at is not None and request.expires_at <= (request.granted_at or now):
        raise ValidationFailedError("expires_at must be after the grant")
    with db.tenant(principal.org_id) as conn:
        subject = usage_repo.ensure_subjects(conn, principal.org_id, [request.subject_id])[request.subject_id]
        stored = consents_repo.insert_consent(
            conn,
            principal.org_id,
            subject,
            {
                "purpose": request.purpose.value,
                "legal_basis": request.legal_basis.value,
                "notice_version": request.notice_version,
                "source": request.source,
                "granted_at": request.granted_at,
                "expires_at": request.expires_at,
            },
        )
        _publish(sink, emit.CONSENT_GRANTED, principal, subject, stored, now, origin)
        current = consents_repo.get_consent(conn, principal.org_id, stored["consent_id"])
    assert current is not None
    return ConsentOut.model_validate(current)


def revoke_consent(
    db: Database,
    principal: Principal,
    consent_id: UUID,
    *,
    now: datetime,
    sink: AuditSink,
    origin: RequestOrigin,
) -> ConsentOut:
    """Revoke one record (409 if it was revoked before); the subject's other records stay as they are."""
    from compliance.db import consents as consents_repo

    with db.tenant(principal.org_id) as conn:
        record = consents_repo.get_consent(conn, principal.org_id, consent_id)
        if record is None:
            raise ConsentNotFoundError("no consent record with this id")
        if not consents_repo.revoke_consent(conn, principal.org_id, consent_id, now):
            raise ConflictError("this consent record was revoked already")
        subject = _subject_uuid(conn, principal.org_id, consent_id)
        _publish(sink, emit.CONSENT_REVOKED, principal, subject, record, now, origin)
        current = consents_repo.get_consent(conn, principal.org_id, consent_id)
    assert current is not None
    return ConsentOut.model_validate(current)


def consent_history(db: Database, principal: Principal, subject_id: str) -> ConsentHistory:
    from compliance.db import consents as consents_repo
    from compliance.db import usage as usage_repo

    with db.tenant(principal.org_id) as conn:
        rows = consents_repo.consent_history(conn, principal.org_id, subject_id)
        if not rows and not usage_repo.subject_exists(conn, principal.org_id, subject_id):
            raise SubjectNotFoundError("no subject with this id")
    return ConsentHistory(subject_id=subject_id, items=[ConsentOut.model_validate(r) for r in rows])


def _subject_uuid(conn: Any, org_id: UUID, consent_id: UUID) -> UUID:
    from compliance.db import consents as consents_repo

    subject = consents_repo.subject_of(conn, org_id, consent_id)
    assert subject is not None
    return subject


def _publish(
    sink: AuditSink,
    event_type: str,
    principal: Principal,
    subject: UUID,
    record: dict[str, Any],
    now: datetime,
    origin: RequestOrigin,
) -> None:
    event = emit.consent_changed(
        event_type=event_type,
        principal=principal,
        consent_id=record["consent_id"],
        subject_id=subject,
        purpose=str(record["purpose"]),
        legal_basis=str(record["legal_basis"]),
        notice_version=str(record["notice_version"]),
        occurred_at=now,
        origin=origin,
    )
    emit.publish(sink, [event])
