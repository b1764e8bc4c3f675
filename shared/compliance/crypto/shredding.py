"""Crypto-shredding of a data subject: destroy the subject's data keys, audited, fail closed.

After :func:`shred` commits, every value encrypted for the subject (usage rows, copies, exports,
backups of those tables) fails to decrypt with :class:`~compliance.crypto.errors.KeyShreddedError`
(HTTP 410): the wrapped keys are overwritten with NULL, the rows stay as the record of what was
destroyed and when. Other processes may still hold an unwrapped key in their cache for at most
its ``max_age_seconds`` (docs/crypto-format.md); pass this process's cache to evict it here.

Backups: a backup of the ``data_keys`` table itself taken before the shred still holds the wrapped
keys. Each shred is therefore also written to the shred ledger (:mod:`compliance.crypto.ledger`,
S3 Object Lock, outside the database) before it commits, and
:func:`compliance.crypto.rotation.reapply_shreds` destroys those scopes again after a restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from compliance.audit import emit
from compliance.audit.emit import RequestOrigin
from compliance.audit.sink import AuditSink
from compliance.crypto.context import KeyScope
from compliance.crypto.key_cache import DataKeyCache
from compliance.crypto.ledger import ShredLedger, ShredRecord
from compliance.db.connection import Database
from compliance.db.data_keys import destroy_scope

__all__ = ["ShredReceipt", "shred"]


@dataclass(frozen=True, slots=True)
class ShredReceipt:
    """What a shred did: the keys it destroyed (none when the subject was shredded before)."""

    org_id: UUID
    subject_id: UUID
    key_ids: tuple[UUID, ...]
    destroyed_at: datetime

    @property
    def count(self) -> int:
        return len(self.key_ids)


def shred(
    db: Database,
    sink: AuditSink,
    org_id: UUID,
    subject_id: UUID,
    *,
    actor: str,
    now: datetime,
    ledger: ShredLedger,
    origin: RequestOrigin | None = None,
    cache: DataKeyCache | None = None,
) -> ShredReceipt:
    """Destroy every data key of (``org_id``, ``subject_id``) in one tenant transaction.

    Before the commit, the shred is recorded in ``ledger`` (ids and time), then the
    ``key.shredded`` event (key ids and count, resource ``subject:<uuid>``) is published. If the
    ledger refuses (ShredLedgerError), nothing is destroyed and nothing is audited. If the audit
    trail refuses (AuditUnavailableError), nothing is destroyed now, but the ledger record stays
    (it is immutable): the next ``reapply_shreds`` completes the requested shred, audited then.
    Idempotent: shredding again destroys no key and is recorded and audited again (count 0).
    A subject that never had a key is closed to new keys all the same.
    """
    scope = KeyScope(org_id, subject_id)
    with db.tenant(org_id) as conn:
        destroyed = destroy_scope(conn, scope, now)
        ledger.record(ShredRecord(org_id, subject_id, destroyed.key_ids, now))
        event = emit.key_shredded(
            actor=actor,
            org_id=org_id,
            subject_id=subject_id,
            key_ids=destroyed.key_ids,
            occurred_at=now,
            origin=origin,
        )
        emit.publish(sink, [event])
    if cache is not None:  # after the commit: evicting earlier could let a reader re-cache the key
        cache.evict_scope(scope)
    return ShredReceipt(org_id, subject_id, destroyed.key_ids, destroyed.destroyed_at)
