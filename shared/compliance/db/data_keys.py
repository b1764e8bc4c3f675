"""Wrapped data keys in PostgreSQL (table ``data_keys``, migration 0005).

Everything runs on the caller's connection, inside its ``Database.tenant(org_id)`` transaction:
row-level security scopes the table to that organisation, and a key stored here commits (or
rolls back) with the values sealed under it. Driver errors leave as ``DataAccessError``.

Creating a key and shredding a scope take a transaction-level advisory lock on the scope, so a
shred and a concurrent first key of the same scope are ordered: either the key commits first and
the shred destroys it, or the shred commits first and the key is refused (``KeyShreddedError``).
Two concurrent first writers are resolved by ``INSERT ... ON CONFLICT`` on the one-current-key
index: one key wins, the other writer reads and returns it.

Audit: given a sink, :class:`PgWrappedKeyStore` publishes ``key.created`` inside the transaction
when its ``put`` stores a key; a refused event raises and the caller's transaction rolls back.

Caution with a shared :class:`~compliance.crypto.key_cache.DataKeyCache`: ``FieldEncryptor``
caches a new key as soon as ``put`` returns, before the transaction commits. If the transaction
then rolls back, evict the scopes of :attr:`PgWrappedKeyStore.created` from the cache, or the
process goes on sealing values under a key that was never stored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from compliance.audit import emit
from compliance.audit.emit import RequestOrigin
from compliance.audit.sink import AuditSink
from compliance.crypto.context import KeyScope
from compliance.crypto.data_keys import StoredDataKey
from compliance.crypto.errors import KeyShreddedError
from compliance.db.connection import driver_errors
from compliance.errors import DataAccessError

# psycopg is imported inside the functions: handlers import this module at cold start.
if TYPE_CHECKING:
    import psycopg

__all__ = ["DEFAULT_ACTOR", "PgWrappedKeyStore", "ShreddedKeys", "destroy_scope", "lock_scope"]

DEFAULT_ACTOR = "system:field-encryption"
_SHREDDED = "the data key of this subject was destroyed: the value is erased"

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
# The scope's current key, or a destroyed key of the scope first (then the scope is shredded).
_CURRENT = """
    SELECT key_id, wrapped_key, current FROM data_keys
    WHERE org_id = %s AND {subject} AND (current OR destroyed_at IS NOT NULL)
    ORDER BY current LIMIT 1
"""
_GET = """
    SELECT key_id, wrapped_key FROM data_keys
    WHERE org_id = %s AND {subject} AND (key_id = %s OR destroyed_at IS NOT NULL)
    ORDER BY destroyed_at IS NULL LIMIT 1
"""
_INSERT = """
    INSERT INTO data_keys (key_id, org_id, subject_id, wrapped_key, kms_key_id, current)
    SELECT %s, %s, %s, %s, %s, true
    WHERE NOT EXISTS (
        SELECT 1 FROM data_keys WHERE org_id = %s AND {subject} AND destroyed_at IS NOT NULL
    )
    ON CONFLICT (org_id, subject_id) WHERE current DO NOTHING
    RETURNING created_at
"""
_DESTROY = """
    UPDATE data_keys SET wrapped_key = NULL, destroyed_at = %s, current = false
    WHERE org_id = %s AND {subject} AND destroyed_at IS NULL
    RETURNING key_id
"""
_HAS_DESTROYED = (
    "SELECT 1 FROM data_keys WHERE org_id = %s AND {subject} AND destroyed_at IS NOT NULL LIMIT 1"
)
_TOMBSTONE = """
    INSERT INTO data_keys (key_id, org_id, subject_id, wrapped_key, kms_key_id, current, destroyed_at)
    VALUES (gen_random_uuid(), %s, %s, NULL, NULL, false, %s)
"""


class ShreddedKeys(NamedTuple):
    """What :func:`destroy_scope` did: the keys it destroyed now (empty when shredded before)."""

    key_ids: tuple[UUID, ...]
    destroyed_at: datetime


def _subject(scope: KeyScope) -> tuple[str, tuple[UUID, ...]]:
    """The subject condition and its parameters (``IS NULL`` keeps the scope index usable,
    which ``IS NOT DISTINCT FROM`` would not)."""
    if scope.subject_id is None:
        return "subject_id IS NULL", ()
    return "subject_id = %s", (scope.subject_id,)


def _fetchone(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    from psycopg.rows import tuple_row

    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query.encode(), params).fetchone()


def lock_scope(conn: psycopg.Connection[Any], scope: KeyScope) -> None:
    """Serialise key creation and shredding of ``scope`` until the transaction ends."""
    subject = "-" if scope.subject_id is None else str(scope.subject_id)
    with driver_errors():
        conn.execute(_LOCK, (f"data_keys:{scope.org_id}:{subject}",))


def destroy_scope(conn: psycopg.Connection[Any], scope: KeyScope, at: datetime) -> ShreddedKeys:
    """Crypto-shred ``scope``: clear every live key's wrapped form and mark it destroyed ``at``.

    A scope that never had a key gets a tombstone row (destroyed, no key material), so that it
    is closed to new keys like any shredded scope. Repeating it destroys nothing new."""
    from psycopg.rows import tuple_row

    condition, params = _subject(scope)
    lock_scope(conn, scope)
    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            _DESTROY.format(subject=condition).encode(), (at, scope.org_id, *params)
        ).fetchall()
        key_ids = tuple(sorted(row[0] for row in rows))
        if not key_ids:
            shredded_before = cur.execute(
                _HAS_DESTROYED.format(subject=condition).encode(), (scope.org_id, *params)
            ).fetchone()
            if shredded_before is None:
                cur.execute(_TOMBSTONE.encode(), (scope.org_id, scope.subject_id, at))
    return ShreddedKeys(key_ids, at)


class PgWrappedKeyStore:
    """:class:`~compliance.crypto.data_keys.WrappedKeyStore` on the table ``data_keys``, bound to
    one connection inside a ``Database.tenant(org)`` transaction (build one per transaction; the
    ``FieldEncryptor`` over it is as cheap, and shares the process's key cache).

    ``kms_key_id`` (``KmsDataKeys.kms_key_id``) is recorded with each key stored. With a
    ``sink``, every key stored publishes ``key.created`` (as ``actor``) before the transaction
    commits: a refused event fails the operation, and the transaction rolls back (fail closed).
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        *,
        kms_key_id: str,
        sink: AuditSink | None = None,
        actor: str = DEFAULT_ACTOR,
        origin: RequestOrigin | None = None,
    ) -> None:
        self._conn = conn
        self._kms_key_id = kms_key_id
        self._sink = sink
        self._actor = actor
        self._origin = origin
        self.created: list[tuple[KeyScope, UUID]] = []  # keys this store inserted (see module doc)

    def __repr__(self) -> str:
        return f"PgWrappedKeyStore(kms_key_id={self._kms_key_id!r}, audited={self._sink is not None})"

    def current(self, scope: KeyScope) -> StoredDataKey | None:
        condition, params = _subject(scope)
        with driver_errors():
            row = _fetchone(self._conn, _CURRENT.format(subject=condition), (scope.org_id, *params))
        if row is None:
            return None
        key_id, wrapped, current = row
        if not current:
            raise KeyShreddedError(_SHREDDED)
        return StoredDataKey(key_id, bytes(wrapped))

    def get(self, scope: KeyScope, key_id: UUID) -> bytes | None:
        condition, params = _subject(scope)
        with driver_errors():
            row = _fetchone(self._conn, _GET.format(subject=condition), (scope.org_id, *params, key_id))
        if row is None:
            return None
        if row[1] is None:  # this key or another key of the scope was destroyed
            raise KeyShreddedError(_SHREDDED)
        return bytes(row[1])

    def put(self, scope: KeyScope, key: StoredDataKey) -> StoredDataKey:
        condition, params = _subject(scope)
        lock_scope(self._conn, scope)
        with driver_errors():
            inserted = _fetchone(
                self._conn,
                _INSERT.format(subject=condition),
                (
                    key.key_id,
                    scope.org_id,
                    scope.subject_id,
                    key.wrapped,
                    self._kms_key_id,
                    scope.org_id,
                    *params,
                ),
            )
        if inserted is None:
            # Another writer's key is current (returned), or the scope is shredded (raises).
            winner = self.current(scope)
            if winner is None:  # pragma: no cover - the conflict or the shred is visible now
                raise DataAccessError("the data key was neither stored nor found")
            return winner
        self.created.append((scope, key.key_id))
        if self._sink is not None:
            event = emit.key_created(
                actor=self._actor,
                org_id=scope.org_id,
                subject_id=scope.subject_id,
                key_id=key.key_id,
                kms_key_id=self._kms_key_id,
                occurred_at=inserted[0],
                origin=self._origin,
            )
            emit.publish(self._sink, [event])
        return key

    def destroy(self, scope: KeyScope) -> None:
        """The protocol's shred, at the database's clock; :func:`compliance.crypto.shredding.shred`
        is the audited operation that callers use."""
        with driver_errors():
            row = _fetchone(self._conn, "SELECT now()", ())
        assert row is not None
        destroy_scope(self._conn, scope, row[0])


# The store satisfies the protocol (checked by mypy, costs nothing at run time).
if TYPE_CHECKING:
    from compliance.crypto.data_keys import WrappedKeyStore

    _check: Callable[..., WrappedKeyStore] = PgWrappedKeyStore
