"""What the PII sweep reads (compliance.pii.sweep): which columns, and bounded samples of them.

:func:`org_ids` and :func:`sweep_columns` run on an unscoped connection (the organisation list
comes from the SECURITY DEFINER function ``compliance_org_ids()``, migration 0006; the catalog and
``pg_catalog`` are not tenant data). :func:`sample` runs inside ``Database.tenant(org_id)``: RLS
shows only that organisation's rows, and the query names the scope again in its WHERE clause.

Table and column names reach SQL only as :class:`psycopg.sql.Identifier`, and only names that the
catalog lists *and* the live schema has (the join in :data:`_COLUMNS`), checked once more against
the catalog's identifier pattern before composing: nothing is string-formatted into a statement.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from compliance.db.connection import data_access_error

# psycopg is imported inside the functions: handlers import this module at cold start.
if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

__all__ = ["SweepColumn", "org_ids", "sample", "set_statement_timeout", "sweep_columns"]

ValueKind = Literal["text", "json", "array"]

# Unquoted PostgreSQL identifiers as the migrations write them (the catalog's own rule).
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_ORG_IDS = "SELECT org_id FROM compliance_org_ids()"

# Catalogued columns that say they hold no personal data and are stored in clear, of a text-like
# type, in a public base table with row-level security and a uuid org_id column (tenant data),
# readable by the current role. The sample's time column: the first readable timestamp column in
# the caller's order of preference, else the table's first one, else none.
_COLUMNS = """
    SELECT dc.table_name, dc.column_name,
           CASE WHEN a.atttypid IN ('json'::regtype, 'jsonb'::regtype) THEN 'json'
                WHEN a.atttypid IN ('text[]'::regtype, 'varchar[]'::regtype, 'bpchar[]'::regtype)
                    THEN 'array'
                ELSE 'text' END AS kind,
           tc.attname::text AS time_column
    FROM public.data_catalog AS dc
    JOIN pg_catalog.pg_namespace AS n ON n.nspname = 'public'
    JOIN pg_catalog.pg_class AS c
        ON c.relnamespace = n.oid AND c.relname = dc.table_name AND c.relkind IN ('r', 'p')
    JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = c.oid AND a.attname = dc.column_name AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN LATERAL (
        SELECT t.attname
        FROM pg_catalog.pg_attribute AS t
        WHERE t.attrelid = c.oid AND t.attnum > 0 AND NOT t.attisdropped
          AND t.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype)
          AND pg_catalog.has_column_privilege(c.oid, t.attnum, 'SELECT')
        ORDER BY pg_catalog.array_position(%(time_preference)s::text[], t.attname::text) NULLS LAST,
                 t.attnum
        LIMIT 1
    ) AS tc ON true
    WHERE NOT dc.personal AND NOT dc.encrypted
      AND a.atttypid = ANY (ARRAY['text', 'varchar', 'bpchar', 'json', 'jsonb',
                                  'text[]', 'varchar[]', 'bpchar[]']::regtype[])
      AND c.relrowsecurity
      AND EXISTS (
          SELECT 1 FROM pg_catalog.pg_attribute AS o
          WHERE o.attrelid = c.oid AND o.attname = 'org_id' AND o.atttypid = 'uuid'::regtype
            AND NOT o.attisdropped
      )
      AND pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT')
    ORDER BY dc.table_name, dc.column_name
"""

# The most recent rows (by the time column when there is one), each value cut to %(chars)s
# characters, then only as many as fit %(max_bytes)s: the running byte total stops the sample in
# the database, so a column of large values never crosses the wire whole. The scope is named
# again (RLS already applies): a table whose policy were missing still yields only this org's rows.
_SAMPLE = """
    SELECT value FROM (
        SELECT value,
               sum(octet_length(value)) OVER ({window} ROWS UNBOUNDED PRECEDING)
                   - octet_length(value) AS before
        FROM (
            SELECT {value} AS value{sampled_at}
            FROM {table}
            WHERE org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
              AND {column} IS NOT NULL
            {order}
            LIMIT %(rows)s
        ) AS recent
    ) AS bounded
    WHERE before < %(max_bytes)s
"""


@dataclass(frozen=True)
class SweepColumn:
    """A column the sweep samples: catalogued as not personal, stored in clear, text-like."""

    table: str
    column: str
    kind: ValueKind
    time_column: str | None

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


def org_ids(conn: psycopg.Connection[Any]) -> list[UUID]:
    """Every organisation's id (SECURITY DEFINER: works without a tenant scope)."""
    import psycopg

    try:
        rows = conn.execute(_ORG_IDS).fetchall()
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc
    return [_first(row) for row in rows]


def sweep_columns(conn: psycopg.Connection[Any], time_preference: Sequence[str]) -> list[SweepColumn]:
    """The columns to sample, by table then column (see :data:`_COLUMNS`)."""
    import psycopg
    from psycopg.rows import dict_row

    try:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_COLUMNS, {"time_preference": list(time_preference)}).fetchall()
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc
    return [
        SweepColumn(
            table=_checked(row["table_name"]),
            column=_checked(row["column_name"]),
            kind=row["kind"],
            time_column=None if row["time_column"] is None else _checked(row["time_column"]),
        )
        for row in rows
    ]


def set_statement_timeout(conn: psycopg.Connection[Any], timeout_ms: int) -> None:
    """Bound every statement of the current transaction (transaction-local)."""
    import psycopg

    try:
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(int(timeout_ms)),))
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc


def sample(
    conn: psycopg.Connection[Any], column: SweepColumn, *, rows: int, value_chars: int, max_bytes: int
) -> list[str]:
    """Up to ``rows`` non-null values of ``column`` of the org in scope, most recent first, each
    cut to ``value_chars`` characters; stops at the value that reaches ``max_bytes`` (UTF-8) in
    total, so the caller may still have to trim that last one."""
    import psycopg

    if rows < 1 or value_chars < 1 or max_bytes < 1:
        return []
    try:
        rows_found = conn.execute(
            _sample_query(column), {"rows": rows, "chars": value_chars, "max_bytes": max_bytes}
        ).fetchall()
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc
    return [str(_first(row)) for row in rows_found]


def _sample_query(column: SweepColumn) -> sql.Composed:
    from psycopg import sql

    table = sql.Identifier(_checked(column.table))
    col = sql.Identifier(_checked(column.column))
    if column.kind == "array":
        value = sql.SQL("left(array_to_string({}, E'\\n'), %(chars)s)").format(col)
    else:  # text, varchar, char; json and jsonb in their text form
        value = sql.SQL("left({}::text, %(chars)s)").format(col)
    sampled_at: sql.Composable
    order: sql.Composable
    window: sql.Composable
    if column.time_column is None:
        sampled_at, order, window = sql.SQL(""), sql.SQL(""), sql.SQL("")
    else:
        # DESC without NULLS LAST: a backward scan of an (org_id, time) index serves it.
        time = sql.Identifier(_checked(column.time_column))
        sampled_at = sql.SQL(", {} AS sampled_at").format(time)
        order = sql.SQL("ORDER BY {} DESC").format(time)
        window = sql.SQL("ORDER BY sampled_at DESC")
    return sql.SQL(_SAMPLE).format(
        value=value, sampled_at=sampled_at, table=table, column=col, order=order, window=window
    )


def _checked(name: str) -> str:
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError("not a catalogued identifier")
    return name


def _first(row: Any) -> Any:
    """The first value of a tuple or dict row (pooled connections return dict rows)."""
    if isinstance(row, dict):
        return next(iter(row.values()))
    return row[0]
