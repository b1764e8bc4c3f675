"""Collect one data subject's data for access and portability (GDPR Art. 15 and 20), driven by the
data catalog, into a :class:`~compliance.dsr.export_format.SubjectExport`.

What is collected
-----------------
* Every table whose catalog entries have a ``subject_link``: the rows linked to the subject.
  Of each row: every catalogued **personal** column, and the non-personal columns that describe
  the row (usage and cost figures, times): Art. 15(1) covers the personal data and information
  about its processing, and figures linked to the subject are personal data while the link
  exists (Recital 26). Left out: ``org_id`` (the controller's own id, the same on every row) and
  non-personal ``security`` columns (wrapped key material, KMS key ids, key flags): they describe
  the platform's controls, not the subject, and key material must never leave.
* The subject's audit events (``resource`` or ``actor`` = ``subject:<uuid>``), category ``audit``.
  ``ip_address`` and ``user_agent`` are shown only on events the subject performed: on the others
  they are the acting person's (a DPO's, a service's), and Art. 15(4) protects third parties.

Shape: rows are grouped by catalog category; one source row gives one export row per category it
has values in, with columns named ``table.column`` (unambiguous when one category draws on several
tables) and the row's record key (primary key but ``org_id``) repeated in each, so a subject can
join a prompt (``content``) to its cost (``cost``).

Encrypted columns are decrypted in their row's context (org, table, column, subject). Once the
subject's keys are shredded, each such value becomes :func:`erased_marker` (an object: a real
value of an encrypted column is always text, so the two cannot be confused). A value without the
ciphertext prefix is legacy plaintext from before the column was encrypted and is shown as it is.
Another decryption failure (tampered or misplaced ciphertext) fails the collection: an export
must not silently leave data out. Nothing here logs a value.

An unknown subject gives an export with no rows (``no_data_held`` in its manifest), not an error.

:func:`collect_subject_data` holds everything in memory (fine for a few thousand rows);
:func:`spool_subject_data` streams the same rows into a :class:`SpooledExport` (temporary files),
for a subject of any size: what the export step uses.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from uuid import UUID

from compliance.catalog.model import Catalog, CatalogEntry
from compliance.crypto.context import EncryptionContext
from compliance.crypto.envelope import is_encrypted_text
from compliance.crypto.errors import KeyShreddedError
from compliance.db import dsr_collect
from compliance.db.dsr_collect import DEFAULT_BATCH_SIZE, TENANT_COLUMN
from compliance.dsr.export_format import DEFAULT_SPOOL_BYTES, ExportCategory, SpooledExport, SubjectExport

if TYPE_CHECKING:
    import psycopg

    from compliance.crypto.fields import FieldEncryptor
    from compliance.crypto.session import FieldCrypto
    from compliance.db.connection import Database

__all__ = [
    "AUDIT_CATEGORY",
    "NO_SUBJECT_REF",
    "SubjectLookup",
    "TablePlan",
    "collect_subject_data",
    "erased_marker",
    "is_exported",
    "iter_subject_data",
    "json_value",
    "plan_tables",
    "spool_subject_data",
]

#: A subject is looked up by its pseudonymous id (a UUID) or the platform's external id (a str):
#: the type says which, so an external id that happens to look like a uuid is still an external id.
SubjectLookup: TypeAlias = UUID | str
#: The export's subject when there is none (never the external id: it may be an e-mail address).
NO_SUBJECT_REF: Final = "unknown"
AUDIT_CATEGORY: Final = "audit"
_EXCLUDED_CATEGORY: Final = "security"
_THIRD_PARTY_AUDIT_COLUMNS: Final = frozenset({"ip_address", "user_agent"})

Row: TypeAlias = dict[str, Any]


def erased_marker() -> dict[str, str]:
    """What an encrypted value of a shredded subject is exported as."""
    return {"erased": "crypto_shred"}


def is_exported(entry: CatalogEntry) -> bool:
    """Whether a column of a subject-linked row goes into the export (module docstring)."""
    if entry.personal:
        return True
    return entry.category != _EXCLUDED_CATEGORY and entry.column_name != TENANT_COLUMN


@dataclass(frozen=True)
class TablePlan:
    """What is read of one linked table and how its rows split into categories."""

    table: str
    key: tuple[str, ...]
    categories: tuple[tuple[str, tuple[str, ...]], ...]  # (category, columns but the key), sorted
    encrypted: frozenset[str]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key + tuple(column for _, columns in self.categories for column in columns)


def plan_tables(entries: Iterable[CatalogEntry], keys: Mapping[str, Sequence[str]]) -> list[TablePlan]:
    """The plan of every linked table (by name), given each one's record key."""
    by_table: dict[str, list[CatalogEntry]] = {}
    for entry in entries:
        if entry.subject_link is not None:
            by_table.setdefault(entry.table_name, []).append(entry)
    plans = []
    for table, table_entries in sorted(by_table.items()):
        key = tuple(keys[table])
        categories: dict[str, list[str]] = {}
        for entry in sorted(table_entries, key=lambda e: e.column_name):
            if entry.column_name not in key and is_exported(entry):
                categories.setdefault(entry.category, []).append(entry.column_name)
        plans.append(
            TablePlan(
                table=table,
                key=key,
                categories=tuple((name, tuple(columns)) for name, columns in sorted(categories.items())),
                encrypted=frozenset(e.column_name for e in table_entries if e.encrypted),
            )
        )
    return plans


def json_value(value: Any) -> Any:
    """A database value as a JSON value of the export: uuids and times as text (ISO 8601, UTC
    for timestamps with a zone), exact decimals (cost) as their text, bytes as base64."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | UUID | Decimal):
        return str(value) if not isinstance(value, date) else value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    raise TypeError(f"no export form for {type(value).__name__}")


class _Decrypter:
    """Decrypts one subject's values; remembers a shred so later values cost no key lookup."""

    def __init__(self, encryptor: FieldEncryptor, org_id: UUID, subject_id: UUID) -> None:
        self._encryptor = encryptor
        self._org_id = org_id
        self._subject_id = subject_id
        self.shredded = False

    def value(self, table: str, column: str, text: Any) -> Any:
        if not isinstance(text, str) or not is_encrypted_text(text):
            return text  # NULL, or legacy plaintext from before the column was encrypted
        if self.shredded:
            return erased_marker()
        context = EncryptionContext(self._org_id, table, column, self._subject_id)
        try:
            return self._encryptor.decrypt(text, context)
        except KeyShreddedError:
            # The scope's keys are destroyed as a whole: every value of the subject is erased.
            self.shredded = True
            return erased_marker()


def iter_subject_data(
    conn: psycopg.Connection[Any],
    encryptor: FieldEncryptor,
    org_id: UUID,
    subject_id: UUID,
    entries: Sequence[CatalogEntry],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[tuple[str, str, Row]]:
    """``(category, table, row)`` for everything held of the subject, table by table (by name),
    rows in record-key order, then the audit events in ``seq`` order. At most ``batch_size``
    source rows are read at a time: a streaming writer can consume this without holding it all."""
    decrypter = _Decrypter(encryptor, org_id, subject_id)
    linked = sorted({e.table_name for e in entries if e.subject_link is not None})
    keys = {table: dsr_collect.record_key(conn, table, entries) for table in linked}
    for plan in plan_tables(entries, keys):
        batches = dsr_collect.iter_linked_rows(
            conn,
            org_id,
            subject_id,
            table=plan.table,
            columns=plan.columns,
            order_by=plan.key,
            entries=entries,
            batch_size=batch_size,
        )
        for batch in batches:
            for source in batch:
                yield from _split(plan, source, decrypter)
    resource = dsr_collect.subject_resource(subject_id)
    for batch in dsr_collect.iter_subject_events(conn, org_id, subject_id, batch_size=batch_size):
        for event in batch:
            by_subject = event["actor"] == resource
            yield (
                AUDIT_CATEGORY,
                dsr_collect.AUDIT_TABLE,
                {
                    f"{dsr_collect.AUDIT_TABLE}.{column}": json_value(value)
                    for column, value in event.items()
                    if by_subject or column not in _THIRD_PARTY_AUDIT_COLUMNS
                },
            )


def _split(
    plan: TablePlan, source: Mapping[str, Any], decrypter: _Decrypter
) -> Iterator[tuple[str, str, Row]]:
    key = {f"{plan.table}.{column}": json_value(source[column]) for column in plan.key}
    for category, columns in plan.categories:
        values = {
            column: decrypter.value(plan.table, column, source[column])
            if column in plan.encrypted
            else source[column]
            for column in columns
        }
        if all(value is None for value in values.values()):
            continue  # nothing of this category in this row (e.g. no prompt text stored)
        yield category, plan.table, key | {f"{plan.table}.{c}": json_value(v) for c, v in values.items()}


def collect_subject_data(
    db: Database,
    crypto: FieldCrypto,
    org_id: UUID,
    subject: SubjectLookup,
    *,
    request_id: UUID,
    regulation: str,
    catalog: Catalog | Sequence[CatalogEntry] | None = None,
    generated_at: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> SubjectExport:
    """Everything held of ``subject`` in ``org_id``, in one tenant transaction (one read of the
    catalog, the subject and its rows). ``catalog`` defaults to the database's (``data_catalog``).

    The export's ``subject_ref`` is the subject's pseudonymous id (:data:`NO_SUBJECT_REF` when
    the org has no such subject: then no category has rows). Reads only: no key is created.
    """
    when = generated_at or datetime.now(UTC)
    rows: dict[str, list[Row]] = {}
    tables: dict[str, set[str]] = {}
    subject_ref = NO_SUBJECT_REF
    with crypto.tenant(db, org_id) as (conn, encryptor):
        entries = _entries(conn, catalog)
        subject_id = _find(conn, org_id, subject)
        if subject_id is not None:
            subject_ref = str(subject_id)
            for category, table, row in iter_subject_data(
                conn, encryptor, org_id, subject_id, entries, batch_size=batch_size
            ):
                rows.setdefault(category, []).append(row)
                tables.setdefault(category, set()).add(table)
    return SubjectExport(
        request_id=request_id,
        subject_ref=subject_ref,
        regulation=regulation,
        generated_at=when,
        categories={
            name: ExportCategory(tables=tuple(sorted(tables[name])), rows=category_rows)
            for name, category_rows in rows.items()
        },
    )


@contextmanager
def spool_subject_data(
    db: Database,
    crypto: FieldCrypto,
    org_id: UUID,
    subject: SubjectLookup | None,
    *,
    request_id: UUID,
    regulation: str,
    generated_at: datetime,
    catalog: Catalog | Sequence[CatalogEntry] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    spool_bytes: int = DEFAULT_SPOOL_BYTES,
    spool_dir: str | None = None,
) -> Iterator[SpooledExport]:
    """:func:`collect_subject_data` streamed: the same rows, in the same order, spooled to
    temporary files as they are read (memory stays bounded whatever the subject holds). One
    read-only tenant transaction, closed before the export is yielded: writing and uploading
    the files holds no database connection. ``subject`` None: nobody (no data held). The spools
    are deleted when the block ends.
    """
    export: SpooledExport | None = None
    try:
        # One snapshot for every table read, and the server refuses any write.
        with crypto.tenant(db, org_id, snapshot=True) as (conn, encryptor):
            entries = _entries(conn, catalog)
            subject_id = None if subject is None else _find(conn, org_id, subject)
            export = SpooledExport(
                request_id=request_id,
                subject_ref=NO_SUBJECT_REF if subject_id is None else str(subject_id),
                regulation=regulation,
                generated_at=generated_at,
                spool_bytes=spool_bytes,
                spool_dir=spool_dir,
            )
            if subject_id is not None:
                for category, table, row in iter_subject_data(
                    conn, encryptor, org_id, subject_id, entries, batch_size=batch_size
                ):
                    export.add(category, table, row)
    except BaseException:
        if export is not None:
            export.close()  # its spools: nothing of the subject left in /tmp
        raise
    with export:
        yield export


def _find(conn: psycopg.Connection[Any], org_id: UUID, subject: SubjectLookup) -> UUID | None:
    if isinstance(subject, UUID):
        return dsr_collect.find_subject(conn, org_id, subject_id=subject)
    return dsr_collect.find_subject(conn, org_id, external_id=subject)


def _entries(
    conn: psycopg.Connection[Any], catalog: Catalog | Sequence[CatalogEntry] | None
) -> tuple[CatalogEntry, ...]:
    if catalog is None:
        from compliance.db.catalog import list_entries

        return tuple(list_entries(conn))
    return tuple(catalog.entries if isinstance(catalog, Catalog) else catalog)
