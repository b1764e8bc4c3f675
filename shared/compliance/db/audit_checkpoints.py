"""Signed audit checkpoints in PostgreSQL (table ``audit_checkpoints``, migration 0003).

Everything but :func:`orgs_due` runs inside ``Database.tenant(org_id)``: row-level security
scopes the table to that organisation. :func:`orgs_due` works on an unscoped connection through
the SECURITY DEFINER function ``audit_checkpoint_due()``.

A stored row is checked as it is read: its ``head_hash`` must be the hash of the head it holds
(:class:`~compliance.errors.IntegrityError` otherwise). Its signature is not checked here: that
needs the public key, and is the verifier's job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import ValidationError

from compliance.audit.checkpoint import SignedCheckpoint, TreeHead, head_hash
from compliance.errors import IntegrityError, NotFoundError

# psycopg is imported inside the functions: handlers import this module at cold start.
if TYPE_CHECKING:
    import psycopg

__all__ = ["frontier", "get", "insert", "latest", "list_checkpoints", "orgs_due"]

_COLUMNS = """
    org_id, number, tree_size, root_hash, last_event_hash, issued_at, previous_head_hash,
    key_id, algorithm, head_hash, signature
"""
_SCOPE = "org_id = NULLIF(current_setting('app.org_id', true), '')::uuid"

_LATEST = f"SELECT {_COLUMNS} FROM audit_checkpoints WHERE {_SCOPE} ORDER BY number DESC LIMIT 1"  # noqa: S608
_GET = f"SELECT {_COLUMNS} FROM audit_checkpoints WHERE {_SCOPE} AND number = %s"  # noqa: S608
_LIST = f"""
    SELECT {_COLUMNS} FROM audit_checkpoints WHERE {_SCOPE} AND number > %s ORDER BY number LIMIT %s
"""  # noqa: S608
_FRONTIER = f"SELECT frontier FROM audit_checkpoints WHERE {_SCOPE} AND number = %s"  # noqa: S608
_INSERT = """
    INSERT INTO audit_checkpoints (
        org_id, number, tree_size, root_hash, last_event_hash, issued_at, previous_head_hash,
        key_id, algorithm, head_hash, signature, frontier
    ) VALUES (
        %(org_id)s, %(number)s, %(tree_size)s, %(root_hash)s, %(last_event_hash)s, %(issued_at)s,
        %(previous_head_hash)s, %(key_id)s, %(algorithm)s, %(head_hash)s, %(signature)s, %(frontier)s
    )
"""
_DUE = "SELECT org_id FROM audit_checkpoint_due()"


def latest(conn: psycopg.Connection[Any]) -> SignedCheckpoint | None:
    """The newest checkpoint of the organisation in scope, or ``None`` before the first."""
    rows = _fetch(conn, _LATEST, ())
    return _checkpoint(rows[0]) if rows else None


def get(conn: psycopg.Connection[Any], number: int) -> SignedCheckpoint | None:
    """Checkpoint ``number`` of the organisation in scope, or ``None``."""
    rows = _fetch(conn, _GET, (number,))
    return _checkpoint(rows[0]) if rows else None


def list_checkpoints(
    conn: psycopg.Connection[Any], *, after_number: int = 0, limit: int
) -> list[SignedCheckpoint]:
    """Up to ``limit`` checkpoints with ``number > after_number``, oldest first (keyset pages)."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    return [_checkpoint(row) for row in _fetch(conn, _LIST, (after_number, limit))]


def insert(conn: psycopg.Connection[Any], checkpoint: SignedCheckpoint, frontier: list[bytes]) -> None:
    """Store ``checkpoint`` with the frontier of its tree (see :mod:`compliance.audit.frontier`).

    The database refuses a number that does not follow the latest, a shrinking tree or a
    ``previous_head_hash`` that is not the latest head's: ``DataAccessError``.
    """
    import psycopg

    head = checkpoint.head
    if len(frontier) != head.tree_size.bit_count():
        raise ValueError("the frontier does not match the tree size")
    params = {
        **head.model_dump(),
        "issued_at": head.issued_at,
        "head_hash": head_hash(head),
        "signature": checkpoint.signature,
        "frontier": list(frontier),
    }
    try:
        conn.execute(_INSERT, params)
    except psycopg.Error as exc:
        raise _error(exc) from exc


def frontier(conn: psycopg.Connection[Any], number: int) -> list[bytes]:
    """The frontier stored with checkpoint ``number``. Raises ``NotFoundError`` if there is none."""
    rows = _fetch(conn, _FRONTIER, (number,))
    if not rows:
        raise NotFoundError(f"no audit checkpoint {number}")
    return [bytes(value) for value in rows[0]["frontier"]]


def orgs_due(conn: psycopg.Connection[Any]) -> list[UUID]:
    """Organisations whose chain head is past their latest checkpoint (works unscoped)."""
    return [row["org_id"] for row in _fetch(conn, _DUE, ())]


def _fetch(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    try:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()
    except psycopg.Error as exc:
        raise _error(exc) from exc


def _error(exc: psycopg.Error) -> Exception:
    from compliance.db.connection import data_access_error

    return data_access_error(exc)


def _checkpoint(row: dict[str, Any]) -> SignedCheckpoint:
    try:
        head = TreeHead.model_validate({name: row[name] for name in TreeHead.model_fields})
        checkpoint = SignedCheckpoint(head=head, signature=row["signature"])
    except ValidationError as exc:
        raise IntegrityError(f"stored audit checkpoint {row['number']} is malformed") from exc
    if head_hash(head) != row["head_hash"]:
        raise IntegrityError(f"stored audit checkpoint {row['number']} does not hash to its head_hash")
    return checkpoint
