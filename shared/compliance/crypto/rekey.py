"""Re-keying an organisation: new data keys for every scope, every encrypted value re-encrypted.

Used when a data key may be exposed, or to move values off keys that sealed very many values
(``compliance keys rekey``). Resumable: the run's position lives in ``key_rekey_runs`` and moves
in the same transaction as the batch of rows it covers, so a crash or ``--resume`` continues
exactly after the last committed batch.

1. Start (one transaction): retire the org's current keys (``current = false``: they stay
   readable) and record the run, ``key.rekey_started``. From now on, a writer without the old key
   in its cache gets a new key for its scope.
2. Walk: every table with encrypted catalog columns, in name order, by primary key, ``batch_size``
   rows per transaction (rows locked): each value not under its scope's current key is decrypted
   and sealed again under the current key (a new one, ``key.created``); legacy plaintext (written
   before field encryption) is encrypted. Values of shredded subjects stay as they are (erased
   already); legacy plaintext of a shredded subject is cleared (NULL), which is what its shred meant.
   Values that do not authenticate are left and counted (``values_skipped``; no value is logged).
3. Catch-up: once ``started_at + cache_max_age_s`` has passed (no process's key cache still holds
   a retired key for sealing), the same pass over rows received since ``started_at -
   cache_max_age_s`` (tables without a receive time are walked again whole), then
   ``key.rekey_completed`` with the counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.audit import emit
from compliance.crypto.context import EncryptionContext, KeyScope
from compliance.crypto.envelope import from_text, is_encrypted_text, key_id_of
from compliance.crypto.errors import DecryptionError, KeyShreddedError, UnsupportedCiphertextError
from compliance.crypto.fields import FieldEncryptor
from compliance.crypto.key_cache import DataKeyCache
from compliance.db import key_rotation
from compliance.db.data_keys import PgWrappedKeyStore
from compliance.errors import ConflictError, NotFoundError, ValidationFailedError
from compliance.observability import logger

if TYPE_CHECKING:
    import psycopg

    from compliance.audit.sink import AuditSink
    from compliance.catalog.model import Catalog
    from compliance.crypto.data_keys import DataKeyProvider
    from compliance.db.connection import Database
    from compliance.db.key_rotation import RekeyRun, TableRow

__all__ = ["REKEY_ACTOR", "EncryptedTable", "RekeyResult", "encrypted_tables", "rekey", "start_rekey"]

REKEY_ACTOR = "system:key-rekey"
DEFAULT_BATCH_SIZE = 500
# The column that says when a row arrived, for the catch-up pass (absent: the table is walked whole).
RECEIVED_AT = {"usage_records": "received_at"}


@dataclass(frozen=True)
class EncryptedTable:
    name: str
    subject_link: str | None
    columns: tuple[str, ...]
    received_at: str | None


def encrypted_tables(catalog: Catalog) -> list[EncryptedTable]:
    """The tables with encrypted columns (``encrypted = true`` in the catalog), by name."""
    columns: dict[str, list[str]] = {}
    links: dict[str, str | None] = {}
    for entry in catalog.encrypted_columns():
        columns.setdefault(entry.table_name, []).append(entry.column_name)
        links[entry.table_name] = entry.subject_link
    return [
        EncryptedTable(name, links[name], tuple(sorted(cols)), RECEIVED_AT.get(name))
        for name, cols in sorted(columns.items())
    ]


@dataclass(frozen=True)
class RekeyResult:
    run_id: UUID
    org_id: UUID
    rows: int
    values_rekeyed: int
    values_skipped: int
    values_erased: int
    finished: bool
    # When the catch-up may begin (not finished, and not waited for): resume after this.
    resume_after: datetime | None = None


def start_rekey(
    db: Database,
    org_id: UUID,
    sink: AuditSink,
    tables: Sequence[EncryptedTable],
    *,
    cache_max_age_s: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    actor: str = REKEY_ACTOR,
) -> UUID:
    """Retire the org's current keys and record a new run; ``ConflictError`` while one is open."""
    if not 1 <= batch_size <= 100_000:
        raise ValidationFailedError("batch_size must be between 1 and 100000")
    with db.tenant(org_id) as conn:
        if key_rotation.open_run(conn, org_id) is not None:
            raise ConflictError("a re-key run of this organisation is unfinished: resume it")
        retired = key_rotation.retire_current_keys(conn, org_id)
        run = key_rotation.start_run(
            conn,
            org_id,
            cache_max_age_s=cache_max_age_s,
            batch_size=batch_size,
            keys_retired=retired,
            first_table=tables[0].name if tables else None,
        )
        event = emit.key_rekey_started(
            actor=actor, org_id=org_id, run_id=run.run_id, keys_retired=retired, occurred_at=run.started_at
        )
        emit.publish(sink, [event])
    logger.info(
        "re-key run started", extra={"org_id": str(org_id), "run_id": str(run.run_id), "retired": retired}
    )
    return run.run_id


def rekey(
    db: Database,
    org_id: UUID,
    run_id: UUID,
    sink: AuditSink,
    provider: DataKeyProvider,
    tables: Sequence[EncryptedTable],
    *,
    kms_key_id: str,
    cache: DataKeyCache | None = None,
    wait: Callable[[float], None] | None = time.sleep,
    actor: str = REKEY_ACTOR,
    on_batch: Callable[[RekeyRun], None] | None = None,
) -> RekeyResult:
    """Run (or resume) ``run_id`` to its end. Before the catch-up, ``wait`` sleeps until it is due;
    with ``wait=None`` the call returns unfinished instead, with ``resume_after``."""
    cache = cache if cache is not None else DataKeyCache()
    by_name = {table.name: table for table in tables}
    while True:
        store: PgWrappedKeyStore | None = None
        try:
            with db.tenant(org_id) as conn:
                run = key_rotation.lock_run(conn, run_id)
                if run is None or run.org_id != org_id:
                    raise NotFoundError("no such re-key run for this organisation")
                if run.phase == "done":
                    return _result(run, finished=True)
                due = run.started_at + timedelta(seconds=run.cache_max_age_s)
                # The catch-up waits until no process's cache can still seal with a retired key.
                pending = (run, due) if run.phase == "catch_up" and run.now < due else None
                if pending is None:
                    store = PgWrappedKeyStore(conn, kms_key_id=kms_key_id, sink=sink, actor=actor)
                    encryptor = FieldEncryptor(provider, store, cache)
                    run = _batch(conn, run, by_name, tables, encryptor, store, sink, actor)
        except BaseException:
            # Keys created in a rolled-back batch were never stored: never seal with them again.
            for scope, _ in store.created if store is not None else ():
                cache.evict_scope(scope)
            raise
        if pending is not None:
            waiting_run, due = pending
            if wait is None:
                return _result(waiting_run, finished=False, resume_after=due)
            seconds = (due - waiting_run.now).total_seconds()
            logger.info("re-key catch-up waits for key caches to expire", extra={"seconds": round(seconds)})
            wait(seconds)
            continue
        if on_batch is not None:
            on_batch(run)
        if run.phase == "done":
            return _result(run, finished=True)


def _result(run: RekeyRun, *, finished: bool, resume_after: datetime | None = None) -> RekeyResult:
    return RekeyResult(
        run.run_id,
        run.org_id,
        run.rows_done,
        run.values_rekeyed,
        run.values_skipped,
        run.values_erased,
        finished,
        resume_after,
    )


def _batch(
    conn: psycopg.Connection[Any],
    run: RekeyRun,
    by_name: dict[str, EncryptedTable],
    tables: Sequence[EncryptedTable],
    encryptor: FieldEncryptor,
    store: PgWrappedKeyStore,
    sink: AuditSink,
    actor: str,
) -> RekeyRun:
    """One batch of the current table (or the move to the next table / phase); returns the run
    as advanced (in this transaction)."""
    counts = _Counts()
    if run.cursor_table is None:  # catch-up of an org with no encrypted tables
        rows: list[TableRow] = []
        table = None
    else:
        table = by_name.get(run.cursor_table)
        if table is None:
            raise ValidationFailedError(f"the run walks table {run.cursor_table}, no longer encrypted")
        key = key_rotation.primary_key(conn, table.name)
        catch_up = run.phase == "catch_up" and table.received_at is not None
        rows = key_rotation.rows_after(
            conn,
            table.name,
            run.org_id,
            key=key,
            subject_link=table.subject_link,
            columns=table.columns,
            after=run.cursor_key,
            limit=run.batch_size,
            since_column=table.received_at if catch_up else None,
            since=run.started_at - timedelta(seconds=run.cache_max_age_s) if catch_up else None,
        )
        current: dict[KeyScope, UUID | None] = {}
        updates: dict[tuple[str, ...], list[tuple[Sequence[str], Sequence[str | None]]]] = {}
        for row in rows:
            changes = _reencrypt_row(run.org_id, table, row, encryptor, store, current, counts)
            if changes:  # grouped by the set of columns changed: one statement per group
                updates.setdefault(tuple(changes), []).append((row.key, tuple(changes.values())))
        for columns, group in updates.items():
            key_rotation.update_rows(conn, table.name, run.org_id, key=key, columns=columns, rows=group)
    phase, cursor_table, cursor_key = run.phase, run.cursor_table, None if not rows else rows[-1].key
    if len(rows) < run.batch_size:  # this table is done: the next one, or the next phase
        names = [t.name for t in tables]
        following = names[names.index(table.name) + 1 :] if table is not None else []
        if following:
            cursor_table = following[0]
        elif phase == "walk":
            phase, cursor_table = "catch_up", names[0] if names else None
        else:
            phase = "done"
        cursor_key = None
    key_rotation.advance_run(
        conn,
        run.run_id,
        phase="catch_up" if phase == "done" else phase,
        cursor_table=cursor_table,
        cursor_key=cursor_key,
        rows=len(rows),
        rekeyed=counts.rekeyed,
        skipped=counts.skipped,
        erased=counts.erased,
    )
    advanced = run._replace(
        phase=phase,
        cursor_table=cursor_table,
        cursor_key=cursor_key,
        rows_done=run.rows_done + len(rows),
        values_rekeyed=run.values_rekeyed + counts.rekeyed,
        values_skipped=run.values_skipped + counts.skipped,
        values_erased=run.values_erased + counts.erased,
    )
    if phase == "done":
        finished_at = key_rotation.finish_run(conn, run.run_id)
        event = emit.key_rekey_completed(
            actor=actor,
            org_id=run.org_id,
            run_id=run.run_id,
            rows=advanced.rows_done,
            values_rekeyed=advanced.values_rekeyed,
            values_skipped=advanced.values_skipped,
            occurred_at=finished_at,
        )
        emit.publish(sink, [event])
        advanced = advanced._replace(finished_at=finished_at)
        logger.info(
            "re-key run completed",
            extra={"run_id": str(run.run_id), "rows": advanced.rows_done, "rekeyed": advanced.values_rekeyed},
        )
    return advanced


@dataclass
class _Counts:
    rekeyed: int = 0
    skipped: int = 0
    erased: int = 0


def _reencrypt_row(
    org_id: UUID,
    table: EncryptedTable,
    row: TableRow,
    encryptor: FieldEncryptor,
    store: PgWrappedKeyStore,
    current: dict[KeyScope, UUID | None],
    counts: _Counts,
) -> dict[str, str | None]:
    """The row's columns to change (column -> new value), counted in ``counts``."""
    scope = KeyScope(org_id, row.subject_id)
    changes: dict[str, str | None] = {}
    for column, value in row.values.items():
        if value is None:
            continue
        context = EncryptionContext(org_id, table.name, column, row.subject_id)
        try:
            if is_encrypted_text(value):
                if scope not in current:
                    stored = store.current(scope)  # KeyShreddedError for a shredded scope
                    current[scope] = None if stored is None else stored.key_id
                if key_id_of(from_text(value)) == current[scope]:
                    continue  # sealed under the scope's new key already
                plaintext = encryptor.decrypt(value, context)
            else:
                plaintext = value  # legacy plaintext, from before field encryption
            sealed = encryptor.encrypt(plaintext, context)
        except KeyShreddedError:
            if not is_encrypted_text(value):
                changes[column] = None
                counts.erased += 1
            else:
                counts.skipped += 1  # erased already: the ciphertext stays unreadable
            continue
        except (DecryptionError, UnsupportedCiphertextError) as exc:
            counts.skipped += 1
            logger.warning(
                "re-key left a value that does not decrypt",
                extra={"table": table.name, "column": column, "error_type": type(exc).__name__},
            )
            continue
        current[scope] = key_id_of(from_text(sealed))
        changes[column] = sealed
        counts.rekeyed += 1
    return changes
