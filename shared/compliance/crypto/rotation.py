"""Scheduled key maintenance: re-wrap data keys under the KMS key's newest material, and re-apply
recorded shreds to a database restored from a backup.

Re-wrap (:func:`rewrap_all`): KMS rotates the field key's material yearly, but a data key stays
wrapped under the material that wrapped it. Per organisation, live keys whose wrapped form is
older than ``cutoff`` (or wrapped under another KMS key than the configured one) are re-wrapped
with KMS ``ReEncrypt`` (same encryption context both sides; the plaintext data key never leaves
KMS) in batches of ``batch_size`` keys by key id, one transaction per batch: the keys are locked,
re-wrapped, updated (``wrapped_key``, ``kms_key_id``, ``rewrapped_at``) and a ``key.rewrapped``
event (ids and count) is published before the commit. A KMS failure fails the organisation
(:class:`KeyRewrapError`; the batch rolls back, earlier batches stay done), the others go on.
Data keys and ciphertexts do not change: no cache or value is affected.

Re-apply (:func:`reapply_shreds`): every scope the shred ledger names that the database holds
live (a live key, or no destroyed row at all) is destroyed again, audited as ``key.shredded``
with ``reapplied: true``. In a database that was never restored, it finds nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.audit import emit
from compliance.aws.clients import error_code
from compliance.crypto.context import KeyScope
from compliance.crypto.data_keys import kms_encryption_context
from compliance.crypto.errors import KeyServiceUnavailableError
from compliance.db import key_rotation
from compliance.db.data_keys import destroy_scope
from compliance.errors import DomainError
from compliance.observability import logger, metrics

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

    from compliance.audit.sink import AuditSink
    from compliance.crypto.ledger import ShredLedger
    from compliance.db.connection import Database

__all__ = [
    "KEY_JOB_ACTOR",
    "KeyJobResult",
    "KeyRewrapError",
    "KmsRewrapper",
    "OrgRewrap",
    "ReapplyResult",
    "reapply_shreds",
    "rewrap_all",
    "rewrap_org",
    "run_key_job",
]

KEY_JOB_ACTOR = "system:key-rotation"
DEFAULT_BATCH_SIZE = 100
REAPPLY_CHUNK = 1000  # subjects of one org checked and destroyed per transaction
REWRAP_FAILED = "KeyRewrapFailed"
REAPPLY_FAILED = "ShredReapplyFailed"


class KeyRewrapError(KeyServiceUnavailableError):
    """KMS did not re-wrap a data key (outage, throttling, access denied, refused ciphertext)."""

    title = "Data key re-wrap failed"


class KmsRewrapper:
    """KMS ``ReEncrypt`` of wrapped data keys onto ``kms_key_id`` (its current key material)."""

    def __init__(self, client: KMSClient, kms_key_id: str) -> None:
        self._client = client
        self.kms_key_id = kms_key_id

    def __repr__(self) -> str:
        return f"KmsRewrapper(kms_key_id={self.kms_key_id!r})"

    def rewrap(self, wrapped: bytes, *, source_kms_key_id: str, scope: KeyScope, key_id: UUID) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        context = kms_encryption_context(scope, key_id)
        try:
            response = self._client.re_encrypt(
                CiphertextBlob=wrapped,
                SourceKeyId=source_kms_key_id,  # only the key that wrapped it may unwrap it
                SourceEncryptionContext=context,
                DestinationKeyId=self.kms_key_id,
                DestinationEncryptionContext=context,
            )
        except (ClientError, BotoCoreError) as exc:
            raise KeyRewrapError(f"KMS could not re-wrap a data key ({error_code(exc)})") from exc
        return response["CiphertextBlob"]


@dataclass(frozen=True)
class OrgRewrap:
    """One organisation's re-wrap: keys re-wrapped (also before a failure) and why it failed."""

    org_id: UUID
    keys: int
    failed: str | None = None


@dataclass(frozen=True)
class ReapplyResult:
    scopes_listed: int = 0
    scopes_reapplied: int = 0
    keys_destroyed: int = 0
    orgs_absent: int = 0
    failed_orgs: tuple[UUID, ...] = ()
    ledger_error: str | None = None


@dataclass(frozen=True)
class KeyJobResult:
    reapply: ReapplyResult
    rewrap: list[OrgRewrap] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts, and the organisations that need attention (ids only)."""
        return {
            "organisations": len(self.rewrap),
            "keys_rewrapped": sum(o.keys for o in self.rewrap),
            "rewrap_failed_orgs": [str(o.org_id) for o in self.rewrap if o.failed],
            "shreds_listed": self.reapply.scopes_listed,
            "shreds_reapplied": self.reapply.scopes_reapplied,
            "reapply_failed_orgs": [str(o) for o in self.reapply.failed_orgs],
            "ledger_error": self.reapply.ledger_error,
        }


def run_key_job(
    db: Database,
    rewrapper: KmsRewrapper,
    ledger: ShredLedger,
    sink: AuditSink,
    *,
    now: datetime,
    max_age: timedelta,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> KeyJobResult:
    """The daily job: re-apply recorded shreds first (a restored database must not re-wrap, or
    serve, a key that was shredded), then re-wrap keys whose wrapped form is older than ``max_age``."""
    reapplied = reapply_shreds(db, ledger, sink, now=now)
    rewrapped = rewrap_all(db, rewrapper, sink, now=now, cutoff=now - max_age, batch_size=batch_size)
    return KeyJobResult(reapplied, rewrapped)


# ------------------------------------------------------------------------------ re-wrap


def rewrap_all(
    db: Database,
    rewrapper: KmsRewrapper,
    sink: AuditSink,
    *,
    now: datetime,
    cutoff: datetime,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[OrgRewrap]:
    """Re-wrap every organisation's due keys; one organisation's failure does not stop the others."""
    with db.unscoped() as conn:
        orgs = key_rotation.all_org_ids(conn)
    return [
        rewrap_org(db, org_id, rewrapper, sink, now=now, cutoff=cutoff, batch_size=batch_size)
        for org_id in orgs
    ]


def rewrap_org(
    db: Database,
    org_id: UUID,
    rewrapper: KmsRewrapper,
    sink: AuditSink,
    *,
    now: datetime,
    cutoff: datetime,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> OrgRewrap:
    """Re-wrap the org's due keys batch by batch (never raises: failures are the outcome)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    done = 0
    after: UUID | None = None
    try:
        while True:
            with db.tenant(org_id) as conn:
                keys = key_rotation.keys_to_rewrap(
                    conn,
                    org_id,
                    kms_key_id=rewrapper.kms_key_id,
                    cutoff=cutoff,
                    after=after,
                    limit=batch_size,
                )
                for key in keys:
                    wrapped = rewrapper.rewrap(
                        key.wrapped,
                        source_kms_key_id=key.kms_key_id,
                        scope=KeyScope(org_id, key.subject_id),
                        key_id=key.key_id,
                    )
                    key_rotation.store_rewrapped(conn, org_id, key.key_id, wrapped, rewrapper.kms_key_id, now)
                if keys:
                    event = emit.key_rewrapped(
                        actor=KEY_JOB_ACTOR,
                        org_id=org_id,
                        key_ids=[key.key_id for key in keys],
                        kms_key_id=rewrapper.kms_key_id,
                        occurred_at=now,
                    )
                    emit.publish(sink, [event])
            done += len(keys)
            if len(keys) < batch_size:
                break
            after = keys[-1].key_id
    except Exception as exc:  # one organisation must not stop the run
        detail = exc.detail if isinstance(exc, DomainError) else "unexpected error"
        logger.error(
            "data key re-wrap failed",
            extra={
                "org_id": str(org_id),
                "error_type": type(exc).__name__,
                "detail": detail,
                "keys_done": done,
            },
        )
        metrics.add_metric(name=REWRAP_FAILED, unit="Count", value=1)
        return OrgRewrap(org_id, done, failed=type(exc).__name__)
    if done:
        metrics.add_metric(name="DataKeysRewrapped", unit="Count", value=done)
        logger.info("data keys re-wrapped", extra={"org_id": str(org_id), "keys": done})
    return OrgRewrap(org_id, done)


# ------------------------------------------------------------------------------ re-apply shreds


def reapply_shreds(
    db: Database, ledger: ShredLedger, sink: AuditSink, *, now: datetime, actor: str = KEY_JOB_ACTOR
) -> ReapplyResult:
    """Destroy again every scope the ledger names that is live in the database (never raises)."""
    by_org: dict[UUID, set[UUID]] = defaultdict(set)
    try:
        listed = 0
        for scope in ledger.scopes():
            listed += 1
            by_org[scope.org_id].add(scope.subject_id)
        with db.unscoped() as conn:
            present = set(key_rotation.all_org_ids(conn))
    except Exception as exc:
        logger.error("shred ledger could not be read", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name=REAPPLY_FAILED, unit="Count", value=1)
        return ReapplyResult(ledger_error=type(exc).__name__)
    reapplied = destroyed = 0
    failed: list[UUID] = []
    for org_id in sorted(by_org):
        if org_id not in present:  # restored from before the org existed: nothing of it to erase
            continue
        try:
            scopes, keys = _reapply_org(db, org_id, sorted(by_org[org_id]), sink, now=now, actor=actor)
        except Exception as exc:
            detail = exc.detail if isinstance(exc, DomainError) else "unexpected error"
            logger.error(
                "shred re-apply failed",
                extra={"org_id": str(org_id), "error_type": type(exc).__name__, "detail": detail},
            )
            metrics.add_metric(name=REAPPLY_FAILED, unit="Count", value=1)
            failed.append(org_id)
            continue
        reapplied += scopes
        destroyed += keys
    if reapplied:
        logger.warning("recorded shreds re-applied", extra={"scopes": reapplied, "keys": destroyed})
        metrics.add_metric(name="ShredsReapplied", unit="Count", value=reapplied)
    return ReapplyResult(
        scopes_listed=listed,
        scopes_reapplied=reapplied,
        keys_destroyed=destroyed,
        orgs_absent=len(set(by_org) - present),
        failed_orgs=tuple(failed),
    )


def _reapply_org(
    db: Database, org_id: UUID, subjects: list[UUID], sink: AuditSink, *, now: datetime, actor: str
) -> tuple[int, int]:
    scopes = keys = 0
    for start in range(0, len(subjects), REAPPLY_CHUNK):
        with db.tenant(org_id) as conn:
            events = []
            for subject_id in key_rotation.unclosed_scopes(
                conn, org_id, subjects[start : start + REAPPLY_CHUNK]
            ):
                destroyed = destroy_scope(conn, KeyScope(org_id, subject_id), now)
                events.append(
                    emit.key_shred_reapplied(
                        actor=actor,
                        org_id=org_id,
                        subject_id=subject_id,
                        key_ids=destroyed.key_ids,
                        occurred_at=now,
                    )
                )
                keys += len(destroyed.key_ids)
            if events:
                emit.publish(sink, events)
        scopes += len(events)
    return scopes, keys
