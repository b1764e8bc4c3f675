"""SQL of key rotation (migration 0007): re-wrapping data keys, re-key runs and their table walks,
and the scopes a shred ledger names that a restored database holds live again.

Everything runs on the caller's connection inside its ``Database.tenant(org_id)`` transaction
(row-level security scopes every table to that organisation). Driver errors leave as
``DataAccessError``. Table and column names come from the data catalog and the schema, and are
quoted as identifiers; values always travel as parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from compliance.db.connection import driver_errors
from compliance.errors import ConflictError, DataAccessError

# psycopg is imported inside the functions: handlers import this module at cold start.
if TYPE_CHECKING:
    import psycopg

__all__ = [
    "KeyToRewrap",
    "RekeyRun",
    "TableRow",
    "advance_run",
    "all_org_ids",
    "finish_run",
    "keys_to_rewrap",
    "lock_run",
    "open_run",
    "primary_key",
    "retire_current_keys",
    "rows_after",
    "start_run",
    "store_rewrapped",
    "unclosed_scopes",
    "update_rows",
]


def _rows(conn: psycopg.Connection[Any], query: Any, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query.encode() if isinstance(query, str) else query, params)
        return cur.fetchall() if cur.description is not None else []


def all_org_ids(conn: psycopg.Connection[Any]) -> list[UUID]:
    """Every organisation's id (migration 0006's SECURITY DEFINER function: RLS hides the rows)."""
    return [row[0] for row in _rows(conn, "SELECT org_id FROM compliance_org_ids()")]


# ------------------------------------------------------------------------------ re-wrap


class KeyToRewrap(NamedTuple):
    key_id: UUID
    subject_id: UUID | None
    wrapped: bytes
    kms_key_id: str


_KEYS_TO_REWRAP = """
    SELECT key_id, subject_id, wrapped_key, kms_key_id FROM data_keys
    WHERE org_id = %s AND destroyed_at IS NULL AND key_id > %s
      AND (kms_key_id <> %s OR coalesce(rewrapped_at, created_at) < %s)
    ORDER BY key_id LIMIT %s
    FOR UPDATE
"""
_STORE_REWRAPPED = """
    UPDATE data_keys SET wrapped_key = %s, kms_key_id = %s, rewrapped_at = %s
    WHERE org_id = %s AND key_id = %s AND destroyed_at IS NULL
"""
_MIN_UUID = UUID(int=0)


def keys_to_rewrap(
    conn: psycopg.Connection[Any],
    org_id: UUID,
    *,
    kms_key_id: str,
    cutoff: datetime,
    after: UUID | None,
    limit: int,
) -> list[KeyToRewrap]:
    """The next ``limit`` live keys (by key id, after ``after``) wrapped before ``cutoff`` or under
    another KMS key than ``kms_key_id``, locked until the transaction ends (a concurrent shred waits,
    or went first and its keys are no longer live)."""
    rows = _rows(conn, _KEYS_TO_REWRAP, (org_id, after or _MIN_UUID, kms_key_id, cutoff, limit))
    return [KeyToRewrap(row[0], row[1], bytes(row[2]), row[3]) for row in rows]


def store_rewrapped(
    conn: psycopg.Connection[Any], org_id: UUID, key_id: UUID, wrapped: bytes, kms_key_id: str, at: datetime
) -> None:
    from psycopg.rows import tuple_row

    with driver_errors(), conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(_STORE_REWRAPPED.encode(), (wrapped, kms_key_id, at, org_id, key_id))
        if cur.rowcount != 1:  # pragma: no cover - the row is locked by keys_to_rewrap
            raise DataAccessError("a data key to re-wrap is no longer live")


# ------------------------------------------------------------------------------ re-key runs


class RekeyRun(NamedTuple):
    run_id: UUID
    org_id: UUID
    started_at: datetime
    cache_max_age_s: int
    batch_size: int
    keys_retired: int
    phase: str
    cursor_table: str | None
    cursor_key: tuple[str, ...] | None
    rows_done: int
    values_rekeyed: int
    values_skipped: int
    values_erased: int
    finished_at: datetime | None
    now: datetime  # the database's clock when the row was read


_INSERT_RUN = """
    INSERT INTO key_rekey_runs (org_id, cache_max_age_s, batch_size, keys_retired, phase, cursor_table)
    VALUES (%s, %s, %s, %s, %s, %s)
    RETURNING run_id, org_id, started_at, cache_max_age_s, batch_size, keys_retired, phase, cursor_table,
        cursor_key, rows_done, values_rekeyed, values_skipped, values_erased, finished_at, now()
"""
_OPEN_RUN = """
    SELECT run_id, org_id, started_at, cache_max_age_s, batch_size, keys_retired, phase, cursor_table,
        cursor_key, rows_done, values_rekeyed, values_skipped, values_erased, finished_at, now()
    FROM key_rekey_runs WHERE org_id = %s AND finished_at IS NULL
"""
_LOCK_RUN = """
    SELECT run_id, org_id, started_at, cache_max_age_s, batch_size, keys_retired, phase, cursor_table,
        cursor_key, rows_done, values_rekeyed, values_skipped, values_erased, finished_at, now()
    FROM key_rekey_runs WHERE run_id = %s FOR UPDATE
"""


def _run(row: tuple[Any, ...] | None) -> RekeyRun | None:
    if row is None:
        return None
    values = list(row)
    values[8] = None if values[8] is None else tuple(values[8])
    return RekeyRun(*values)


def retire_current_keys(conn: psycopg.Connection[Any], org_id: UUID) -> int:
    """Make none of the org's keys current (they stay readable): the next value sealed for a scope
    takes a new key. Only keys created before this transaction exist to be retired."""
    return len(
        _rows(
            conn,
            "UPDATE data_keys SET current = false WHERE org_id = %s AND current RETURNING key_id",
            (org_id,),
        )
    )


def start_run(
    conn: psycopg.Connection[Any],
    org_id: UUID,
    *,
    cache_max_age_s: int,
    batch_size: int,
    keys_retired: int,
    first_table: str | None,
) -> RekeyRun:
    """A new run (its ``started_at`` is this transaction's start); ``ConflictError`` while another
    run of the org is unfinished."""
    import psycopg

    phase = "walk" if first_table is not None else "catch_up"
    try:
        rows = _rows(
            conn, _INSERT_RUN, (org_id, cache_max_age_s, batch_size, keys_retired, phase, first_table)
        )
    except DataAccessError as exc:
        if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
            raise ConflictError("a re-key run of this organisation is unfinished: resume it") from exc
        raise
    run = _run(rows[0])
    assert run is not None
    return run


def open_run(conn: psycopg.Connection[Any], org_id: UUID) -> RekeyRun | None:
    """The org's unfinished run, if any."""
    rows = _rows(conn, _OPEN_RUN, (org_id,))
    return _run(rows[0]) if rows else None


def lock_run(conn: psycopg.Connection[Any], run_id: UUID) -> RekeyRun | None:
    """The run, locked until the transaction ends: two processes resuming it take turns per batch."""
    rows = _rows(conn, _LOCK_RUN, (run_id,))
    return _run(rows[0]) if rows else None


def advance_run(
    conn: psycopg.Connection[Any],
    run_id: UUID,
    *,
    phase: str,
    cursor_table: str | None,
    cursor_key: Sequence[str] | None,
    rows: int,
    rekeyed: int,
    skipped: int,
    erased: int,
) -> None:
    """Move the cursor and add a batch's counts (in the batch's transaction)."""
    _rows(
        conn,
        "UPDATE key_rekey_runs SET phase = %s, cursor_table = %s, cursor_key = %s,"
        " rows_done = rows_done + %s, values_rekeyed = values_rekeyed + %s,"
        " values_skipped = values_skipped + %s, values_erased = values_erased + %s WHERE run_id = %s",
        (
            phase,
            cursor_table,
            None if cursor_key is None else list(cursor_key),
            rows,
            rekeyed,
            skipped,
            erased,
            run_id,
        ),
    )


def finish_run(conn: psycopg.Connection[Any], run_id: UUID) -> datetime:
    rows = _rows(
        conn,
        "UPDATE key_rekey_runs SET phase = 'done', cursor_table = NULL, cursor_key = NULL,"
        " finished_at = now() WHERE run_id = %s RETURNING finished_at",
        (run_id,),
    )
    return rows[0][0]  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ table walks


class Column(NamedTuple):
    name: str
    type: str  # format_type(): what a text cursor value is cast to


class TableRow(NamedTuple):
    key: tuple[str, ...]  # primary key values as text (org_id excluded), the cursor
    subject_id: UUID | None
    values: dict[str, str | None]


_PRIMARY_KEY = """
    SELECT a.attname, format_type(a.atttypid, a.atttypmod)
    FROM pg_index i
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
    WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
    ORDER BY array_position(i.indkey::int2[], a.attnum)
"""


def primary_key(conn: psycopg.Connection[Any], table: str) -> list[Column]:
    """The table's primary key columns but ``org_id`` (constant inside a tenant transaction)."""
    from psycopg import sql

    name = sql.Identifier("public", table).as_string(conn)
    columns = [Column(row[0], row[1]) for row in _rows(conn, _PRIMARY_KEY, (name,))]
    if not columns:
        raise DataAccessError(f"table {table} has no primary key to walk")
    return [column for column in columns if column.name != "org_id"]


def rows_after(
    conn: psycopg.Connection[Any],
    table: str,
    org_id: UUID,
    *,
    key: Sequence[Column],
    subject_link: str | None,
    columns: Sequence[str],
    after: Sequence[str] | None,
    limit: int,
    since_column: str | None = None,
    since: datetime | None = None,
) -> list[TableRow]:
    """The next ``limit`` rows of ``table`` by primary key after ``after`` (from the first when
    ``None``), optionally only those whose ``since_column`` >= ``since``, locked for update.
    ``org_id`` is named explicitly too: a connection as the tables' owner is not held by RLS."""
    from psycopg import sql

    # Qualified by the alias "t": the select list names the key columns twice (as text, as values).
    key_ids = [sql.Identifier("t", column.name) for column in key]
    key_list = sql.SQL(", ").join(key_ids)
    conditions: list[sql.Composable] = [sql.SQL("t.org_id = %s")]
    params: list[Any] = [org_id]
    if after is not None:
        casts = sql.SQL(", ").join(
            sql.SQL("%s::{}").format(sql.SQL(column.type)) for column in key
        )  # types from pg_catalog's format_type(), not user input
        conditions.append(sql.SQL("({}) > ({})").format(key_list, casts))
        params.extend(after)
    if since_column is not None:
        conditions.append(sql.SQL("{} >= %s").format(sql.Identifier("t", since_column)))
        params.append(since)
    link = sql.SQL("NULL::uuid") if subject_link is None else sql.Identifier("t", subject_link)
    # ORDER BY the text casts would sort differently from the key: order by the columns themselves.
    query = sql.SQL(
        "SELECT {keys}, {link}, {columns} FROM {table} AS t WHERE {where}"
        " ORDER BY {order} LIMIT %s FOR UPDATE"
    ).format(
        keys=sql.SQL(", ").join(sql.SQL("{}::text").format(k) for k in key_ids),
        link=link,
        columns=sql.SQL(", ").join(sql.Identifier("t", c) for c in columns),
        table=sql.Identifier("public", table),
        where=sql.SQL(" AND ").join(conditions),
        order=key_list,
    )
    params.append(limit)
    n = len(key)
    return [
        TableRow(tuple(row[:n]), row[n], dict(zip(columns, row[n + 1 :], strict=True)))
        for row in _rows(conn, query, params)
    ]


def update_rows(
    conn: psycopg.Connection[Any],
    table: str,
    org_id: UUID,
    *,
    key: Sequence[Column],
    columns: Sequence[str],
    rows: Sequence[tuple[Sequence[str], Sequence[str | None]]],
) -> None:
    """Set ``columns`` to new values on each row given as (primary key, values): one statement,
    executed for every row in one pipeline (a round trip per batch, not per row)."""
    from psycopg import sql

    if not rows:
        return
    query = sql.SQL("UPDATE {table} SET {sets} WHERE org_id = %s AND ({keys}) = ({casts})").format(
        table=sql.Identifier("public", table),
        sets=sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns),
        keys=sql.SQL(", ").join(sql.Identifier(column.name) for column in key),
        casts=sql.SQL(", ").join(sql.SQL("%s::{}").format(sql.SQL(column.type)) for column in key),
    )
    with driver_errors(), conn.cursor() as cur:
        cur.executemany(query, [[*values, org_id, *row_key] for row_key, values in rows])


# ------------------------------------------------------------------------------ shred ledger


_UNCLOSED = """
    SELECT s.subject_id FROM unnest(%s::uuid[]) AS s (subject_id)
    WHERE EXISTS (
        SELECT 1 FROM data_keys k
        WHERE k.org_id = %s AND k.subject_id = s.subject_id AND k.destroyed_at IS NULL
    ) OR NOT EXISTS (
        SELECT 1 FROM data_keys k
        WHERE k.org_id = %s AND k.subject_id = s.subject_id AND k.destroyed_at IS NOT NULL
    )
    ORDER BY s.subject_id
"""


def unclosed_scopes(conn: psycopg.Connection[Any], org_id: UUID, subject_ids: Sequence[UUID]) -> list[UUID]:
    """Those of ``subject_ids`` whose scope in ``org_id`` is not shredded: it holds a live key, or
    no destroyed row closes it (both happen in a database restored from before their shred)."""
    return [row[0] for row in _rows(conn, _UNCLOSED, (list(subject_ids), org_id, org_id))]
