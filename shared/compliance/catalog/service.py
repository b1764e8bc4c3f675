"""Reading the data catalog for the API: every entry, or the personal-data columns of a table.

The catalog describes the schema, not an organisation's data: it is read without a tenant scope
(``data_catalog`` has no row-level security; the application role may only SELECT it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compliance.db import catalog as catalog_repo
from compliance.errors import NotFoundError
from compliance.models.catalog import CatalogOut, PersonalDataOut

if TYPE_CHECKING:
    from compliance.db.connection import Database


class UnknownTableError(NotFoundError):
    """The catalog has no entry for this table."""


def read_catalog(db: Database) -> CatalogOut:
    with db.unscoped() as conn:
        return CatalogOut(items=catalog_repo.list_entries(conn))


def read_personal_data(db: Database, table: str | None = None) -> PersonalDataOut:
    """Personal-data columns (of ``table`` if given); :class:`UnknownTableError` for a table the
    catalog does not know, so a typo is not mistaken for "holds no personal data"."""
    with db.unscoped() as conn:
        items = catalog_repo.personal_data(conn, table)
        # Only an empty answer needs telling apart: a known table without personal columns.
        if (
            table is not None
            and not items
            and all(e.table_name != table for e in catalog_repo.list_entries(conn))
        ):
            raise UnknownTableError("the catalog has no such table")
    return PersonalDataOut(table=table, items=items)
