"""Erasing a data subject (GDPR Art. 17): the catalog's plan, the key shred and the receipt, in
one tenant transaction, then a check that nothing of the subject is readable any more.

:func:`erase_subject` applies :func:`~compliance.dsr.erasure_plan.plan_erasure` step by step
(``usage_records.subject_id`` cleared, the ``subjects`` row deleted, ``data_keys`` kept as proof),
destroys the subject's data keys on the same connection (every sealed value of the subject, copies
and backups included, becomes unreadable), records the shred in the shred ledger and publishes
the ``subject.erased`` receipt, all before the commit. Fail closed, as
:func:`compliance.crypto.shredding.shred`: if the ledger refuses, nothing is erased; if the audit
trail refuses, nothing is erased now, and the ledger record (immutable) makes the next
``reapply_shreds`` destroy the keys, audited then; the rows stay until the erasure is retried.

:func:`verify_erased` runs after the commit, in a new transaction: no row of the subject is left
to delete or clear, no key of the subject unwraps, and the ciphertexts read before the erasure
fail with ``KeyShreddedError`` through a key cache of their own. Its result is part of the
returned receipt (the event, published before the commit, cannot hold it); a failed check raises
:class:`ErasureIncompleteError` (retrying the erasure is safe: it is idempotent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

from compliance.audit import emit
from compliance.audit.emit import RequestOrigin
from compliance.audit.events import AuditEventIn
from compliance.audit.sink import AuditSink
from compliance.catalog.model import Catalog
from compliance.crypto.context import EncryptionContext, KeyScope
from compliance.crypto.errors import KeyShreddedError
from compliance.crypto.fields import FieldEncryptor
from compliance.crypto.key_cache import DataKeyCache
from compliance.crypto.ledger import ShredLedger, ShredRecord
from compliance.crypto.session import FieldCrypto
from compliance.db.connection import Database
from compliance.db.data_keys import PgWrappedKeyStore, destroy_scope
from compliance.db.dsr_erasure import SealedValue, apply_step, lingering_rows, sample_sealed, subject_keys
from compliance.dsr.erasure_plan import ErasurePlan, erasure_receipt, plan_erasure
from compliance.errors import DomainError

if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_ACTOR", "ErasureIncompleteError", "erase_subject", "verify_erased"]

DEFAULT_ACTOR: Final = "system:dsr"
#: Ciphertexts per crypto-shredded column read before the erasure and tried after it: a sample
#: (the key check covers every value; these prove it on real ones), bounded in memory.
PROBES_PER_COLUMN: Final = 8


class ErasureIncompleteError(DomainError):
    """The erasure committed but the check afterwards found something of the subject readable."""

    status = 500
    title = "Erasure incomplete"


def erase_subject(
    db: Database,
    sink: AuditSink,
    ledger: ShredLedger,
    org_id: UUID,
    subject_id: UUID,
    *,
    catalog: Catalog,
    crypto: FieldCrypto,
    actor: str = DEFAULT_ACTOR,
    now: datetime,
    request_id: UUID,
    origin: RequestOrigin | None = None,
    within: Callable[[psycopg.Connection[Any], dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Erase ``subject_id`` of ``org_id`` and return the receipt (with its ``verification``).

    ``within(conn, receipt)`` runs in the erasure's transaction, after the receipt event: what the
    caller records there (the receipt on the request) commits with the erasure or not at all.

    Idempotent: erasing again deletes and clears nothing (the ``data_keys`` rows are retained,
    so they are counted again), destroys no key, and is recorded and audited again."""
    plan = plan_erasure(catalog)
    with db.tenant(org_id) as conn:
        sealed: list[SealedValue] = []
        for step in plan.steps:
            sealed += sample_sealed(conn, step, org_id, subject_id, limit=PROBES_PER_COLUMN)
        affected = {step.table: apply_step(conn, step, org_id, subject_id) for step in plan.steps}
        destroyed = destroy_scope(conn, KeyScope(org_id, subject_id), now)
        receipt = erasure_receipt(
            plan,
            request_id=request_id,
            affected_rows=affected,
            shredded_key_ids=destroyed.key_ids,
            erased_at=now,
        )
        ledger.record(ShredRecord(org_id, subject_id, destroyed.key_ids, now))
        event = _event(plan, receipt, org_id, subject_id, destroyed.key_ids, actor, now, origin)
        emit.publish(sink, [event])
        if within is not None:
            within(conn, receipt)
    # After the commit: evicting earlier could let a reader re-cache the key.
    crypto.cache.evict_scope(KeyScope(org_id, subject_id))
    verification = verify_erased(db, crypto, org_id, subject_id, catalog, sealed=sealed)
    receipt = {**receipt, "verification": verification}
    if not verification["verified"]:
        raise ErasureIncompleteError(
            f"the erasure of request {request_id} left data of the subject readable: "
            f"{verification['lingering_rows']} rows, {verification['live_keys']} live keys, "
            f"{verification['probes_readable']} readable values"
        )
    return receipt


def verify_erased(
    db: Database,
    crypto: FieldCrypto,
    org_id: UUID,
    subject_id: UUID,
    catalog: Catalog,
    *,
    sealed: Sequence[SealedValue] = (),
) -> dict[str, Any]:
    """What of the subject is left: rows still to delete or clear per table (retained tables
    counted apart), live keys, and whether each of ``sealed`` fails with ``KeyShreddedError``.

    The values are decrypted with a key cache of their own (the process's may have held the key)
    and discarded at once; nothing read is returned or logged. Read-only: the store is built
    without a sink and only asked for existing keys, never to create one."""
    plan = plan_erasure(catalog)
    lingering: dict[str, int] = {}
    retained: dict[str, int] = {}
    unreadable = readable = 0
    with db.tenant(org_id) as conn:
        for step in plan.steps:
            count = lingering_rows(conn, step, org_id, subject_id)
            (retained if step.action == "retain" else lingering)[step.table] = count
        keys = subject_keys(conn, org_id, subject_id)
        store = PgWrappedKeyStore(conn, kms_key_id=crypto.kms_key_id)
        encryptor = FieldEncryptor(crypto.provider, store, DataKeyCache())
        for value in sealed:
            context = EncryptionContext(org_id, value.table, value.column, subject_id)
            try:
                encryptor.decrypt(value.text, context)
            except KeyShreddedError:
                unreadable += 1
            except DomainError:  # not proven erased (e.g. KMS unreachable): counted against it
                readable += 1
            else:
                readable += 1
    # No key may unwrap, and the scope must be closed (a destroyed row or tombstone exists).
    verified = not any(lingering.values()) and keys.live == 0 and keys.total > 0 and readable == 0
    return {
        "verified": verified,
        "lingering_rows": lingering,
        "retained_rows": retained,
        "live_keys": keys.live,
        "destroyed_keys": keys.total - keys.live,
        "probes_unreadable": unreadable,
        "probes_readable": readable,
    }


def _event(
    plan: ErasurePlan,
    receipt: dict[str, Any],
    org_id: UUID,
    subject_id: UUID,
    key_ids: Sequence[UUID],
    actor: str,
    now: datetime,
    origin: RequestOrigin | None,
) -> AuditEventIn:
    """The ``subject.erased`` event of ``receipt``: per table its columns grouped by catalog
    strategy (the event's details nest at most 4 levels, the receipt's column map is deeper)."""
    tables: list[dict[str, Any]] = []
    for step, item in zip(plan.steps, receipt["tables"], strict=True):
        summary: dict[str, Any] = {"table": step.table, "action": step.action, "rows": item["rows"]}
        for column in step.columns:
            summary.setdefault(column.strategy, []).append(column.column)
        if step.legal_bases:
            summary["legal_bases"] = list(step.legal_bases)
        tables.append(summary)
    return emit.subject_erased(
        actor=actor,
        org_id=org_id,
        subject_id=subject_id,
        request_id=UUID(receipt["request_id"]),
        tables=tables,
        rows_total=receipt["rows_total"],
        key_ids=key_ids,
        retained=receipt["retained"],
        occurred_at=now,
        origin=origin,
    )
