"""The processor side of ingest: write one queued slice exactly once, its personal data protected.

In one tenant transaction: read the org's PII settings, keep only the billing figures of subjects under
a restriction of processing, drop the text of records whose subject has
no active ``prompt_logging`` consent (read in the same transaction: a revocation committed before
applies), screen the remaining texts (redact or reject per the org's mode), create the slice's
subjects, create missing data keys (in one global order, so concurrent slices cannot deadlock),
seal every column the catalog marks encrypted under the subject's data key (new keys stored and
audited in the same transaction), write the records and the subjects' changed e-mail addresses.
Refused records are audited (``usage.records_rejected``) before the commit: if the audit trail is
down, nothing is written and the message is retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.audit import emit
from compliance.audit.events import AuditEventIn
from compliance.db import catalog as catalog_repo
from compliance.db import consents as consent_repo
from compliance.db import organisations as org_repo
from compliance.db import subjects as subject_repo
from compliance.db import usage as usage_repo
from compliance.dsr.subject_keys import subject_key
from compliance.ingest.protect import (
    SUBJECTS_TABLE,
    USAGE_TABLE,
    latest_subject_emails,
    screen,
    seal_subject_emails,
    seal_usage_rows,
    sealing_scopes,
    without_restricted_data,
    without_unconsented_text,
)
from compliance.models.consent import ConsentPurpose
from compliance.models.settings import PII_SETTINGS_KEY, PiiSettings
from compliance.models.usage import UsageMessage
from compliance.observability import logger, metrics

if TYPE_CHECKING:
    import psycopg

    from compliance.audit.sink import AuditSink
    from compliance.crypto.session import FieldCrypto
    from compliance.db.connection import Database

ENCRYPTION_ACTOR = "system:ingest"
# Namespace of the deterministic ids of usage.records_rejected events (one per queued slice).
_REJECTION_EVENTS = UUID("6f1f3a52-1b0e-4c5e-9a57-3d0c2b7e4a10")

_encrypted_columns: dict[str, frozenset[str]] | None = None


def encrypted_columns(conn: psycopg.Connection[Any]) -> Mapping[str, frozenset[str]]:
    """The catalog's encrypted columns, read once per process (the catalog changes with a deploy,
    which starts new processes). An empty catalog (not loaded yet) is read again next time."""
    global _encrypted_columns
    if _encrypted_columns is not None:
        return _encrypted_columns
    found = catalog_repo.encrypted_columns(conn)
    if found:
        _encrypted_columns = found
    return found


def store_usage_message(
    message: UsageMessage,
    *,
    db: Database,
    crypto: FieldCrypto,
    sink: AuditSink,
    email_key_secret: bytes | None = None,
) -> int:
    """Write one queued slice in one transaction; returns how many records were new. A record
    already stored is skipped, never duplicated; a redelivered slice changes nothing. With
    ``email_key_secret`` (the DSR secret) each written address gets its look-up key
    (compliance.dsr.subject_keys), and a stored address without one is written again once."""
    org_id = message.org_id
    with crypto.tenant(db, org_id, sink=sink, actor=ENCRYPTION_ACTOR) as (conn, encryptor):
        settings = PiiSettings.model_validate(org_repo.get_setting(conn, org_id, PII_SETTINGS_KEY) or {})
        restricted = subject_repo.restricted_external_ids(
            conn, org_id, {r.subject_id for r in message.records if r.subject_id}
        )
        records, restricted_records = without_restricted_data(message.records, restricted)
        with_text = {r.subject_id for r in records if r.subject_id and (r.prompt_text or r.completion_text)}
        consented = consent_repo.with_active_consent(conn, org_id, with_text, ConsentPurpose.PROMPT_LOGGING)
        records, unconsented = without_unconsented_text(records, consented)
        screened = screen(records, settings)
        encrypted = encrypted_columns(conn)
        subjects = usage_repo.ensure_subjects(
            conn, org_id, (s.record.subject_id for s in screened.kept if s.record.subject_id is not None)
        )
        usage_columns = encrypted.get(USAGE_TABLE, frozenset())
        subject_columns = encrypted.get(SUBJECTS_TABLE, frozenset())
        latest = latest_subject_emails(screened.kept, subjects)
        contacts = usage_repo.stored_contacts(conn, org_id, latest)
        stored = {subject: contact.email for subject, contact in contacts.items()}
        unkeyed = {s for s, contact in contacts.items() if not contact.keyed} if email_key_secret else set()
        encryptor.prepare(
            sealing_scopes(org_id, screened.kept, subjects, usage_columns, latest, subject_columns)
        )
        rows = seal_usage_rows(encryptor, org_id, screened.kept, subjects, usage_columns)
        emails = seal_subject_emails(encryptor, org_id, latest, stored, subject_columns, rewrite=unkeyed)
        keys = (
            {s: subject_key(email_key_secret, org_id, email=latest[s]) for s in emails}
            if email_key_secret
            else None
        )
        inserted = usage_repo.write_usage(
            conn, org_id, message.batch_id, message.received_at, rows, emails, keys
        )
        if screened.rejected:
            emit.publish(sink, [_rejection_event(message, screened.rejected, screened.rejected_findings)])
    _record_metrics(message, inserted, screened.rejected, sum(screened.redacted_findings.values()))
    if unconsented:
        metrics.add_metric(name="UsageTextDroppedNoConsent", unit="Count", value=unconsented)
    if restricted_records:
        metrics.add_metric(name="UsageRecordsRestricted", unit="Count", value=restricted_records)
    return inserted


def _rejection_event(
    message: UsageMessage, request_ids: list[str], findings: Mapping[str, int]
) -> AuditEventIn:
    # The same slice always yields the same event id: a redelivery is deduplicated by the trail.
    event_id = uuid.uuid5(_REJECTION_EVENTS, f"{message.org_id}:{message.batch_id}:{','.join(request_ids)}")
    return emit.usage_records_rejected(
        event_id=event_id,
        org_id=message.org_id,
        batch_id=message.batch_id,
        request_ids=request_ids,
        finding_counts=findings,
        occurred_at=message.received_at,
    )


def _record_metrics(message: UsageMessage, inserted: int, rejected: list[str], redactions: int) -> None:
    metrics.add_metric(name="UsageRecordsStored", unit="Count", value=inserted)
    duplicates = len(message.records) - inserted - len(rejected)
    if duplicates:
        metrics.add_metric(name="UsageRecordsDuplicate", unit="Count", value=duplicates)
    if rejected:
        metrics.add_metric(name="UsageRecordsRejectedPii", unit="Count", value=len(rejected))
        logger.info(
            "usage records rejected for personal data",
            extra={"batch_id": str(message.batch_id), "records": len(rejected)},
        )
    if redactions:
        metrics.add_metric(name="PiiRedactions", unit="Count", value=redactions)
