"""What erasing one data subject does, table by table, derived from the data catalog; and its receipt.

Pure (no database): :func:`plan_erasure` reads a :class:`~compliance.catalog.Catalog` and returns
an :class:`ErasurePlan`; the erasure step executes it in one transaction and hands the counts to
:func:`erasure_receipt`.

Rules
-----
* Only tables with a ``subject_link`` have rows of the subject (:attr:`ErasurePlan.steps`).
* A linked table's rows are **deleted** unless a column must outlive the row's subject: a column
  with erasure ``anonymize`` (the row stays, the value is cleared) or ``retain_legal_basis``
  (the row stays, the value is kept). Then the rows are **updated**, or **retained** when nothing
  in them changes.
* In a row that stays, each column gets its own strategy: ``anonymize`` is set to NULL;
  ``crypto_shred`` is left as ciphertext, made unreadable by destroying the subject's data key;
  ``retain_legal_basis`` is kept with its basis; ``delete`` (which means "goes with the row") is
  set to NULL when the column is personal, and kept when it is not (figures such as tokens and
  cost, anonymous once the row's link is cleared).
* In a deleted row every column goes; its ``crypto_shred`` columns are also listed, because the
  key shred is what reaches their copies in backups.
* Order (foreign keys): a table whose ``subject_link`` is its own ``id`` holds the subject rows
  themselves (``subjects``); every other linked table's link refers to that id. Referencing
  tables come first (by name), the subject tables last, so ``usage_records.subject_id`` is
  cleared before the ``subjects`` row it references is deleted. The catalog records no other
  foreign keys: links between two referencing tables are not ordered.
* Tables without a ``subject_link`` hold no row of the subject. Those with personal columns kept
  under ``retain_legal_basis`` (``audit_events``: pseudonymous ids of the subject may appear in
  events) are listed as **retained** with their basis; the others as **not linked**.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from uuid import UUID

from compliance.catalog.model import Catalog, CatalogEntry

__all__ = [
    "RECEIPT_FORMAT",
    "ColumnErasure",
    "ErasurePlan",
    "ErasureReceiptError",
    "RetainedTable",
    "TableErasure",
    "erasure_receipt",
    "plan_erasure",
]

RECEIPT_FORMAT: Final = "compliance-erasure-receipt/v1"
#: The column of the subject table that is the subject's id (its subject_link points at itself).
SUBJECT_ID_COLUMN: Final = "id"

TableAction = Literal["delete", "update", "retain"]
#: What happens to one column: goes with its row, set to NULL, unreadable by the key shred,
#: kept under a legal basis, or kept because it is not personal.
ColumnEffect = Literal["delete_row", "set_null", "key_shred", "retain", "keep"]
_EFFECT_ORDER: Final[tuple[ColumnEffect, ...]] = ("delete_row", "set_null", "key_shred", "retain", "keep")
_EFFECT_WORDS: Final[dict[str, str]] = {
    "set_null": "anonymize (set to NULL)",
    "key_shred": "crypto_shred (unreadable once the subject's data key is destroyed)",
    "retain": "retain",
}


class ErasureReceiptError(ValueError):
    """The counts handed to the receipt do not match the plan."""


@dataclass(frozen=True)
class ColumnErasure:
    column: str
    strategy: str  # the catalog's erasure
    effect: ColumnEffect
    personal: bool
    encrypted: bool
    legal_basis: str | None = None


@dataclass(frozen=True)
class TableErasure:
    """One linked table: which rows (``subject_link`` = the subject's id) and what happens to them."""

    table: str
    subject_link: str
    action: TableAction
    columns: tuple[ColumnErasure, ...]

    @property
    def is_subject_table(self) -> bool:
        return self.subject_link == SUBJECT_ID_COLUMN

    def with_effect(self, effect: ColumnEffect) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.effect == effect)

    @property
    def set_null(self) -> tuple[str, ...]:
        return self.with_effect("set_null")

    @property
    def shredded(self) -> tuple[str, ...]:
        """Encrypted columns made unreadable by the key shred (in deleted rows too)."""
        return tuple(c.column for c in self.columns if c.strategy == "crypto_shred")

    @property
    def retained(self) -> tuple[str, ...]:
        return self.with_effect("retain")

    @property
    def legal_bases(self) -> tuple[str, ...]:
        return tuple(sorted({c.legal_basis for c in self.columns if c.legal_basis and c.effect == "retain"}))

    def describe(self) -> Iterator[str]:
        where = f"{self.table} (rows where {self.subject_link} = the subject)"
        if self.action == "delete":
            yield f"{where}: delete rows; columns: {', '.join(c.column for c in self.columns)}"
        else:
            yield f"{where}: {'keep rows, update' if self.action == 'update' else 'retain rows'}"
        groups: list[tuple[str, tuple[str, ...]]] = [
            ("set_null", self.set_null),
            ("key_shred", self.shredded),
            ("retain", self.retained),
        ]
        for effect, columns in groups:
            if columns:
                yield f"{self.table}: {_EFFECT_WORDS[effect]}: {', '.join(columns)}"
        for basis in self.legal_bases:
            yield f"{self.table}: legal basis: {basis}"


@dataclass(frozen=True)
class RetainedTable:
    """A table without a subject link whose personal columns are kept under a legal basis."""

    table: str
    columns: tuple[str, ...]
    legal_bases: tuple[str, ...]

    def describe(self) -> Iterator[str]:
        yield (
            f"{self.table}: retain (no subject link; may name the subject by pseudonymous id): "
            + ", ".join(self.columns)
        )
        for basis in self.legal_bases:
            yield f"{self.table}: legal basis: {basis}"


@dataclass(frozen=True)
class ErasurePlan:
    steps: tuple[TableErasure, ...]  # in execution order
    retained: tuple[RetainedTable, ...]
    not_linked: tuple[str, ...]  # tables the subject does not appear in

    def step(self, table: str) -> TableErasure:
        for step in self.steps:
            if step.table == table:
                return step
        raise KeyError(table)

    def describe(self) -> Iterator[str]:
        """The human-readable receipt lines, in execution order."""
        for number, step in enumerate(self.steps, 1):
            for index, line in enumerate(step.describe()):
                yield f"{number}. {line}" if index == 0 else f"   {line}"
        for retained in self.retained:
            yield from retained.describe()
        if self.not_linked:
            yield "not linked to a subject (nothing to erase): " + ", ".join(self.not_linked)


def plan_erasure(catalog: Catalog) -> ErasurePlan:
    by_table: dict[str, list[CatalogEntry]] = {}
    for entry in catalog.entries:
        by_table.setdefault(entry.table_name, []).append(entry)
    steps: list[TableErasure] = []
    retained: list[RetainedTable] = []
    not_linked: list[str] = []
    for table, entries in sorted(by_table.items()):
        link = entries[0].subject_link
        if link is not None:
            steps.append(_table_step(table, link, entries))
            continue
        kept = [e for e in entries if e.personal and e.erasure == "retain_legal_basis"]
        if kept:
            bases = tuple(sorted({e.legal_basis for e in kept if e.legal_basis}))
            retained.append(RetainedTable(table, tuple(e.column_name for e in kept), bases))
        else:
            not_linked.append(table)
    # Referencing tables first, then the subject tables they reference; stable by name within each.
    steps.sort(key=lambda step: (step.is_subject_table, step.table))
    return ErasurePlan(steps=tuple(steps), retained=tuple(retained), not_linked=tuple(not_linked))


def _table_step(table: str, link: str, entries: list[CatalogEntry]) -> TableErasure:
    rows_stay = any(e.erasure in ("anonymize", "retain_legal_basis") for e in entries)
    columns = tuple(_column(entry, rows_stay) for entry in sorted(entries, key=lambda e: e.column_name))
    action: TableAction = "delete"
    if rows_stay:
        action = "update" if any(c.effect == "set_null" for c in columns) else "retain"
    return TableErasure(table=table, subject_link=link, action=action, columns=columns)


def _column(entry: CatalogEntry, rows_stay: bool) -> ColumnErasure:
    effect: ColumnEffect
    if not rows_stay:
        effect = "delete_row"
    elif entry.erasure == "anonymize" or (entry.erasure == "delete" and entry.personal):
        effect = "set_null"
    elif entry.erasure == "crypto_shred":
        effect = "key_shred"
    elif entry.erasure == "retain_legal_basis":
        effect = "retain"
    else:
        effect = "keep"
    return ColumnErasure(
        column=entry.column_name,
        strategy=entry.erasure,
        effect=effect,
        personal=entry.personal,
        encrypted=entry.encrypted,
        legal_basis=entry.legal_basis if effect == "retain" else None,
    )


def erasure_receipt(
    plan: ErasurePlan,
    *,
    request_id: UUID,
    affected_rows: Mapping[str, int],
    shredded_key_ids: Sequence[UUID],
    erased_at: datetime,
) -> dict[str, Any]:
    """The erasure receipt as JSON-able data: ids, counts, strategies and bases, never a value.

    ``affected_rows`` has the rows deleted, updated or retained per linked table: exactly the
    plan's tables (:class:`ErasureReceiptError` otherwise, so a skipped table cannot go unnoticed).
    """
    planned = {step.table for step in plan.steps}
    if set(affected_rows) != planned:
        missing, unknown = sorted(planned - set(affected_rows)), sorted(set(affected_rows) - planned)
        raise ErasureReceiptError(
            f"row counts must cover the plan's tables (missing {missing}, unknown {unknown})"
        )
    if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in affected_rows.values()):
        raise ErasureReceiptError("row counts must be non-negative integers")
    if erased_at.tzinfo is None:
        raise ErasureReceiptError("erased_at must be timezone-aware")
    tables = []
    for step in plan.steps:
        item: dict[str, Any] = {
            "table": step.table,
            "subject_link": step.subject_link,
            "action": step.action,
            "rows": affected_rows[step.table],
            "columns": {
                effect: list(names) for effect in _EFFECT_ORDER if (names := step.with_effect(effect))
            },
            "strategies": {c.column: c.strategy for c in step.columns},
        }
        if step.shredded:
            item["crypto_shredded"] = list(step.shredded)
        if step.legal_bases:
            item["legal_bases"] = list(step.legal_bases)
        tables.append(item)
    return {
        "format": RECEIPT_FORMAT,
        "request_id": str(request_id),
        "erased_at": erased_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tables": tables,
        "rows_total": sum(affected_rows.values()),
        "keys_shredded": sorted(str(key_id) for key_id in set(shredded_key_ids)),
        "retained": [
            {"table": r.table, "columns": list(r.columns), "legal_bases": list(r.legal_bases)}
            for r in plan.retained
        ],
        "not_linked": list(plan.not_linked),
    }
