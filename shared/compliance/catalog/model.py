"""The data catalog's models: the file's shape (:class:`CatalogFile`) and the resolved entries.

The file declares, per table, defaults for ``retention``, ``erasure`` and ``legal_basis`` that
its columns inherit unless they set their own (``legal_basis`` travels with ``erasure``: a
column that sets its own erasure gives its own basis). :meth:`Catalog.from_mapping` validates
the shape with pydantic, then the rules that span fields, and reports every problem at once,
each prefixed with the ``table.column`` it concerns (:class:`CatalogError`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from compliance.errors import DomainError

__all__ = [
    "CATEGORIES",
    "ERASURES",
    "SENSITIVITIES",
    "Catalog",
    "CatalogEntry",
    "CatalogError",
    "CatalogFile",
    "ColumnSpec",
    "RetentionPolicy",
    "TableSpec",
    "is_iso_duration",
]

Category = Literal["identifier", "contact", "usage", "cost", "content", "security", "audit"]
Sensitivity = Literal["public", "internal", "confidential", "restricted"]
Erasure = Literal["delete", "anonymize", "crypto_shred", "retain_legal_basis"]
CATEGORIES: tuple[str, ...] = get_args(Category)
SENSITIVITIES: tuple[str, ...] = get_args(Sensitivity)
ERASURES: tuple[str, ...] = get_args(Erasure)

# Unquoted PostgreSQL identifiers as the migrations write them (lowercase, at most 63 bytes).
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
PolicyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
# A retention is an ISO 8601 duration or a policy name; the union is checked after parsing.
Retention = Annotated[str, StringConstraints(min_length=1, max_length=64)]
LegalBasis = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=500)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]

# An ISO 8601 duration (PnYnMnWnDTnHnMnS): at least one field, T only before a time field.
_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(?:[.,]\d+)?S)?)?$")
NO_SUBJECT = "none"


class CatalogError(DomainError):
    """The catalog file is malformed or breaks a rule; ``problems`` lists each (``table.column: ...``)."""

    status = 500
    title = "Invalid data catalog"

    def __init__(self, problems: list[str], source: str = "catalog") -> None:
        super().__init__(f"{source}: " + "; ".join(problems), problems=problems)
        self.problems = problems


def is_iso_duration(value: str) -> bool:
    return _DURATION.match(value) is not None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RetentionPolicy(_Strict):
    """A named retention: what ends it, and its fixed length when it has one."""

    description: Text
    duration: Retention | None = None


class ColumnSpec(_Strict):
    category: Category
    personal: bool
    sensitivity: Sensitivity
    #: Stored as field-level ciphertext (compliance.crypto) under the data key of the row's
    #: subject (its table's subject_link), or the org's key when the row has no subject.
    encrypted: bool = False
    retention: Retention | None = None
    erasure: Erasure | None = None
    legal_basis: LegalBasis | None = None


class TableSpec(_Strict):
    #: The column holding the ``subjects.id`` a row belongs to, or ``"none"``.
    subject_link: Identifier
    retention: Retention | None = None
    erasure: Erasure | None = None
    legal_basis: LegalBasis | None = None
    columns: dict[Identifier, ColumnSpec] = Field(min_length=1, max_length=300)


class CatalogFile(_Strict):
    """The TOML document as written (before defaults are resolved)."""

    version: Literal[1]
    retention_policies: dict[PolicyName, RetentionPolicy] = Field(default_factory=dict, max_length=50)
    tables: dict[Identifier, TableSpec] = Field(min_length=1, max_length=300)


class CatalogEntry(_Strict):
    """One column of the schema, as stored in ``data_catalog``."""

    table_name: Identifier
    column_name: Identifier
    category: Category
    personal: bool
    sensitivity: Sensitivity
    retention: Retention
    erasure: Erasure
    legal_basis: LegalBasis | None
    subject_link: Identifier | None
    encrypted: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.table_name}.{self.column_name}"


class Catalog(BaseModel):
    """The resolved catalog: one complete entry per column, ordered by table then column."""

    model_config = ConfigDict(frozen=True)

    entries: tuple[CatalogEntry, ...]
    retention_policies: dict[str, RetentionPolicy]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "catalog") -> Catalog:
        """Validate a parsed catalog document; :class:`CatalogError` lists every problem."""
        try:
            document = CatalogFile.model_validate(data)
        except ValidationError as exc:
            raise CatalogError([_describe(error) for error in exc.errors()], source) from None
        entries, problems = _resolve(document)
        if problems:
            raise CatalogError(problems, source)
        return cls(entries=tuple(entries), retention_policies=dict(document.retention_policies))

    def tables(self) -> list[str]:
        return sorted({entry.table_name for entry in self.entries})

    def columns(self) -> set[tuple[str, str]]:
        return {(entry.table_name, entry.column_name) for entry in self.entries}

    def entry(self, table: str, column: str) -> CatalogEntry | None:
        return next((e for e in self.entries if (e.table_name, e.column_name) == (table, column)), None)

    def encrypted_columns(self, table: str | None = None) -> list[CatalogEntry]:
        return [e for e in self.entries if e.encrypted and table in (None, e.table_name)]

    def personal_data(self, table: str | None = None) -> list[CatalogEntry]:
        return [e for e in self.entries if e.personal and table in (None, e.table_name)]


def _resolve(document: CatalogFile) -> tuple[list[CatalogEntry], list[str]]:
    entries: list[CatalogEntry] = []
    problems = [
        f"retention_policies.{name}: duration {policy.duration!r} is not an ISO 8601 duration"
        for name, policy in sorted(document.retention_policies.items())
        if policy.duration is not None and not is_iso_duration(policy.duration)
    ]
    for table_name, table in sorted(document.tables.items()):
        link = None if table.subject_link == NO_SUBJECT else table.subject_link
        if link is not None and link not in table.columns:
            problems.append(f"{table_name}: subject_link {link!r} is not a column of the table")
        if table.legal_basis is not None and table.erasure != "retain_legal_basis":
            problems.append(f"{table_name}: legal_basis is only for erasure = 'retain_legal_basis'")
        for column_name, column in sorted(table.columns.items()):
            where = f"{table_name}.{column_name}"
            erasure = column.erasure or table.erasure
            inherited = table.legal_basis if column.erasure is None else None
            legal_basis = column.legal_basis or inherited
            retention = column.retention or table.retention
            found = list(_column_problems(document, column, erasure, legal_basis, retention))
            problems.extend(f"{where}: {problem}" for problem in found)
            if not found and erasure is not None and retention is not None:
                entries.append(
                    CatalogEntry(
                        table_name=table_name,
                        column_name=column_name,
                        category=column.category,
                        personal=column.personal,
                        sensitivity=column.sensitivity,
                        retention=retention,
                        erasure=erasure,
                        legal_basis=legal_basis,
                        subject_link=link,
                        encrypted=column.encrypted,
                    )
                )
    return entries, problems


def _column_problems(
    document: CatalogFile,
    column: ColumnSpec,
    erasure: str | None,
    legal_basis: str | None,
    retention: str | None,
) -> Iterable[str]:
    if retention is None:
        yield "no retention (set it on the column or its table)"
    elif not is_iso_duration(retention) and retention not in document.retention_policies:
        yield f"retention {retention!r} is neither an ISO 8601 duration nor a retention policy"
    if erasure is None:
        yield "no erasure strategy (set it on the column or its table)"
    elif erasure == "retain_legal_basis" and legal_basis is None:
        yield "erasure 'retain_legal_basis' needs a legal_basis"
    elif erasure != "retain_legal_basis" and legal_basis is not None:
        yield f"legal_basis is only for erasure = 'retain_legal_basis', not {erasure!r}"
    if erasure in ("crypto_shred", "anonymize") and not column.personal:
        yield f"erasure {erasure!r} is for personal data, and the column is not personal"
    if column.personal and column.sensitivity == "public":
        yield "personal data cannot be 'public'"
    # Destroying a key erases only what it sealed: a crypto-shredded column must be encrypted.
    if erasure == "crypto_shred" and not column.encrypted:
        yield "erasure 'crypto_shred' needs encrypted = true"
    if column.encrypted and column.sensitivity in ("public", "internal"):
        yield "an encrypted column is 'confidential' or 'restricted'"


def _describe(error: Mapping[str, Any]) -> str:
    """``table.column: field: message`` from a pydantic error location."""
    loc = [str(part) for part in error["loc"]]
    if len(loc) >= 4 and loc[0] == "tables" and loc[2] == "columns":
        where, rest = f"{loc[1]}.{loc[3]}", loc[4:]
    elif len(loc) >= 2 and loc[0] == "tables":
        where, rest = loc[1], loc[2:]
    else:
        where, rest = "catalog", loc
    field = f"{'.'.join(rest)}: " if rest else ""
    return f"{where}: {field}{error['msg']}"
