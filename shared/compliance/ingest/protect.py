"""What the processor does to a record's personal data before it is stored.

0. Restriction (GDPR Art. 18): a restricted subject's records keep only their billing figures.
   Consent: a record's prompt and completion text is kept only when its subject has an active
   ``prompt_logging`` consent (compliance.consent); otherwise only the usage figures are stored.
   A record without a subject has nobody who could have agreed: its text is never kept.
1. The organisation's PII mode (:class:`~compliance.models.settings.PiiSettings`) on prompt and
   completion text: ``encrypt`` keeps the text as sent (nothing scanned), ``redact`` replaces
   every finding by a type placeholder (``<EMAIL_1>``), ``reject`` keeps neither the record nor
   its text and reports it (request id and finding counts by type, never a value).
2. Field encryption of every column the data catalog marks ``encrypted``, under the data key of
   the record's subject (the org's key when it has none), bound to (org, table, column, subject).

The scanner (and phonenumbers' metadata behind it) is imported only by organisations whose mode
needs it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from compliance.crypto.context import EncryptionContext, KeyScope
from compliance.crypto.envelope import is_encrypted_text
from compliance.crypto.errors import DecryptionError, KeyShreddedError, UnsupportedCiphertextError
from compliance.db.usage import usage_row
from compliance.models.settings import PiiMode, PiiSettings
from compliance.models.usage import UsageRecordIn

if TYPE_CHECKING:
    from compliance.crypto.fields import FieldEncryptor

USAGE_TABLE = "usage_records"
SUBJECTS_TABLE = "subjects"
# The columns of usage_records this writer can seal (the catalog decides which of them it does).
USAGE_SEALABLE = ("prompt_text", "completion_text", "client_ip")
SUBJECT_EMAIL = "email"


@dataclass
class Screened:
    """The records to store (texts possibly redacted) and the refused ones with their findings."""

    kept: list[ScreenedRecord] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    rejected_findings: Counter[str] = field(default_factory=Counter)
    redacted_findings: Counter[str] = field(default_factory=Counter)


class ScreenedRecord(NamedTuple):
    record: UsageRecordIn
    prompt_text: str | None
    completion_text: str | None


def without_unconsented_text(
    records: Sequence[UsageRecordIn], consented: Collection[str]
) -> tuple[list[UsageRecordIn], int]:
    """The records with the text of subjects outside ``consented`` removed, and how many lost it."""
    kept: list[UsageRecordIn] = []
    dropped = 0
    for record in records:
        has_text = record.prompt_text is not None or record.completion_text is not None
        if has_text and (record.subject_id is None or record.subject_id not in consented):
            record = record.model_copy(update={"prompt_text": None, "completion_text": None})
            dropped += 1
        kept.append(record)
    return kept, dropped


# What a restricted subject's record keeps: what billing needs (the figures, the model, the subject link).
_RESTRICTED_DROPS = {"prompt_text": None, "completion_text": None, "client_ip": None, "subject_email": None}


def without_restricted_data(
    records: Sequence[UsageRecordIn], restricted: Collection[str]
) -> tuple[list[UsageRecordIn], int]:
    """The records with everything but the billing figures removed for subjects under a restriction of
    processing (GDPR Art. 18: text, client IP and address are not stored, the address not updated),
    and how many records that touched."""
    if not restricted:
        return list(records), 0
    kept: list[UsageRecordIn] = []
    touched = 0
    for record in records:
        if record.subject_id is not None and record.subject_id in restricted:
            record = record.model_copy(update=_RESTRICTED_DROPS)
            touched += 1
        kept.append(record)
    return kept, touched


def screen(records: Sequence[UsageRecordIn], settings: PiiSettings) -> Screened:
    """Apply the org's PII mode to the text of ``records`` (order kept)."""
    result = Screened()
    if settings.mode is PiiMode.ENCRYPT:
        result.kept = [ScreenedRecord(r, r.prompt_text, r.completion_text) for r in records]
        return result
    from compliance.pii.redaction import RedactionMode, redact
    from compliance.pii.scanner import scan

    for record in records:
        texts: list[str | None] = []
        counts: Counter[str] = Counter()
        for text in (record.prompt_text, record.completion_text):
            if not text:
                texts.append(text)
                continue
            findings = scan(text, regions=settings.regions)
            counts.update(str(f.type) for f in findings)
            if findings and settings.mode is PiiMode.REDACT:
                text = redact(text, mode=RedactionMode.PLACEHOLDER, findings=findings).text
            texts.append(text)
        if counts and settings.mode is PiiMode.REJECT:
            result.rejected.append(record.request_id)
            result.rejected_findings.update(counts)
            continue
        result.redacted_findings.update(counts)
        result.kept.append(ScreenedRecord(record, texts[0], texts[1]))
    return result


def seal_usage_rows(
    encryptor: FieldEncryptor,
    org_id: UUID,
    kept: Sequence[ScreenedRecord],
    subjects: Mapping[str, UUID],
    encrypted: Collection[str],
) -> list[dict[str, Any]]:
    """The rows to insert: values of ``encrypted`` columns sealed, the rest as validated.
    ``subjects`` maps the platform's subject ids to their pseudonymous uuids."""
    rows: list[dict[str, Any]] = []
    for record, prompt, completion in kept:
        subject = subjects[record.subject_id] if record.subject_id is not None else None
        values: dict[str, str | None] = {
            "prompt_text": prompt,
            "completion_text": completion,
            "client_ip": None if record.client_ip is None else str(record.client_ip),
        }
        for column, value in values.items():
            if value is not None and column in encrypted:
                values[column] = encryptor.encrypt(
                    value, EncryptionContext(org_id, USAGE_TABLE, column, subject)
                )
        rows.append(
            usage_row(
                record,
                subject,
                prompt_text=values["prompt_text"],
                completion_text=values["completion_text"],
                client_ip=values["client_ip"],
            )
        )
    return rows


def latest_subject_emails(kept: Sequence[ScreenedRecord], subjects: Mapping[str, UUID]) -> dict[UUID, str]:
    """Per subject uuid, the e-mail address of its latest record (by ``occurred_at``, then request
    id), as sent."""
    latest: dict[str, UsageRecordIn] = {}
    for screened in kept:
        record = screened.record
        if record.subject_email is None or record.subject_id is None:
            continue
        known = latest.get(record.subject_id)
        if known is None or (record.occurred_at, record.request_id) > (known.occurred_at, known.request_id):
            latest[record.subject_id] = record
    return {subjects[external_id]: str(record.subject_email) for external_id, record in latest.items()}


def sealing_scopes(
    org_id: UUID,
    kept: Sequence[ScreenedRecord],
    subjects: Mapping[str, UUID],
    encrypted_usage: Collection[str],
    emails: Mapping[UUID, str],
    encrypted_subjects: Collection[str],
) -> set[KeyScope]:
    """The key scopes :func:`seal_usage_rows` and :func:`seal_subject_emails` will seal under
    (for :meth:`FieldEncryptor.prepare`)."""
    scopes: set[KeyScope] = set()
    for record, prompt, completion in kept:
        values = {"prompt_text": prompt, "completion_text": completion, "client_ip": record.client_ip}
        if any(value is not None and column in encrypted_usage for column, value in values.items()):
            subject = subjects[record.subject_id] if record.subject_id is not None else None
            scopes.add(KeyScope(org_id, subject))
    if SUBJECT_EMAIL in encrypted_subjects:
        scopes.update(KeyScope(org_id, subject) for subject in emails)
    return scopes


def seal_subject_emails(
    encryptor: FieldEncryptor,
    org_id: UUID,
    emails: Mapping[UUID, str],
    stored: Mapping[UUID, str | None],
    encrypted: Collection[str],
    *,
    rewrite: Collection[UUID] = (),
) -> dict[UUID, str]:
    """The addresses to write: those of ``emails`` that differ from the ``stored`` ones, sealed
    when the catalog says so. An unchanged address is not rewritten (a fresh ciphertext would
    differ on every message, and rewriting locks the subject's row against every concurrent slice
    naming it), unless the subject is in ``rewrite`` (its look-up key is missing)."""
    sealed = SUBJECT_EMAIL in encrypted
    changed: dict[UUID, str] = {}
    for subject, email in emails.items():
        context = EncryptionContext(org_id, SUBJECTS_TABLE, SUBJECT_EMAIL, subject)
        if subject not in rewrite and _same_address(
            encryptor, stored.get(subject), email, context, sealed=sealed
        ):
            continue
        changed[subject] = encryptor.encrypt(email, context) if sealed else email
    return changed


def _same_address(
    encryptor: FieldEncryptor, stored: str | None, email: str, context: EncryptionContext, *, sealed: bool
) -> bool:
    if stored is None:
        return False
    if not sealed or not is_encrypted_text(stored):
        return stored == email
    try:
        return encryptor.decrypt(stored, context) == email
    except (DecryptionError, UnsupportedCiphertextError, KeyShreddedError):
        return False  # unreadable: write the address (sealing under a shredded key raises there)
