"""The data catalog in PostgreSQL (table ``data_catalog``, migration 0004).

:func:`sync` runs as the owner (the deploy, after migrating): the application role may only
read. The table is not tenant data, so the read functions need no ``app.org_id`` scope.
:func:`schema_drift` compares a catalog with the live schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compliance.catalog.model import Catalog, CatalogEntry
from compliance.db.connection import data_access_error

# psycopg is imported inside the functions: handlers import this module at cold start.
if TYPE_CHECKING:
    import psycopg

__all__ = ["SchemaDrift", "encrypted_columns", "list_entries", "personal_data", "schema_drift", "sync"]

_COLUMNS = (
    "table_name, column_name, category, personal, sensitivity, retention, erasure, legal_basis,"
    " subject_link, encrypted"
)
_LIST = f"SELECT {_COLUMNS} FROM data_catalog ORDER BY table_name, column_name"  # noqa: S608
_PERSONAL = f"""
    SELECT {_COLUMNS} FROM data_catalog
    WHERE personal AND (%(table)s::text IS NULL OR table_name = %(table)s::text)
    ORDER BY table_name, column_name
"""  # noqa: S608
_INSERT = f"""
    INSERT INTO data_catalog ({_COLUMNS}) VALUES (
        %(table_name)s, %(column_name)s, %(category)s, %(personal)s, %(sensitivity)s,
        %(retention)s, %(erasure)s, %(legal_basis)s, %(subject_link)s, %(encrypted)s
    )
"""  # noqa: S608
# Base tables and their columns as the database has them (views and system schemas excluded).
_LIVE_COLUMNS = """
    SELECT c.table_name, c.column_name
    FROM information_schema.columns AS c
    JOIN information_schema.tables AS t USING (table_catalog, table_schema, table_name)
    WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
"""


@dataclass(frozen=True)
class SchemaDrift:
    """Columns of the live schema without a catalog entry, and entries naming no live column
    (both as ``table.column``, sorted)."""

    undocumented: list[str]
    unknown: list[str]

    def __bool__(self) -> bool:
        return bool(self.undocumented or self.unknown)


def sync(conn: psycopg.Connection[Any], catalog: Catalog) -> int:
    """Replace the rows of ``data_catalog`` with ``catalog``'s entries, in one transaction.

    Owner connection. Readers see the old rows or the new ones, never a mix; concurrent syncs
    (two deploys) queue on the table lock instead of colliding on the primary key. Returns the
    number of entries written.
    """
    import psycopg

    rows = [entry.model_dump() for entry in catalog.entries]
    try:
        with conn.transaction(), conn.cursor() as cur:
            # EXCLUSIVE blocks other writers, not readers (SELECT takes ACCESS SHARE).
            cur.execute("LOCK TABLE data_catalog IN EXCLUSIVE MODE")
            cur.execute("DELETE FROM data_catalog")
            cur.executemany(_INSERT, rows)
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc
    return len(rows)


def list_entries(conn: psycopg.Connection[Any]) -> list[CatalogEntry]:
    """Every entry, by table then column."""
    return _fetch(conn, _LIST, {})


def personal_data(conn: psycopg.Connection[Any], table: str | None = None) -> list[CatalogEntry]:
    """The entries of personal-data columns, of one table if ``table`` is given."""
    return _fetch(conn, _PERSONAL, {"table": table})


def encrypted_columns(conn: psycopg.Connection[Any]) -> dict[str, frozenset[str]]:
    """The columns the catalog marks encrypted, by table."""
    import psycopg
    from psycopg.rows import tuple_row

    try:
        with conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute(
                "SELECT table_name, column_name FROM data_catalog WHERE encrypted ORDER BY 1, 2"
            ).fetchall()
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    return {table: frozenset(columns) for table, columns in tables.items()}


def schema_drift(conn: psycopg.Connection[Any], catalog: Catalog) -> SchemaDrift:
    """How ``catalog`` and the live schema (schema ``public``, base tables) disagree."""
    import psycopg

    try:
        with conn.cursor() as cur:
            live = {(row[0], row[1]) for row in cur.execute(_LIVE_COLUMNS).fetchall()}
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc
    declared = catalog.columns()
    return SchemaDrift(
        undocumented=sorted(f"{t}.{c}" for t, c in live - declared),
        unknown=sorted(f"{t}.{c}" for t, c in declared - live),
    )


def _fetch(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> list[CatalogEntry]:
    import psycopg
    from psycopg.rows import dict_row

    try:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query, params).fetchall()
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc
    return [CatalogEntry.model_validate(row) for row in rows]
