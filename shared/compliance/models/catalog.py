"""Bodies of the data-catalog API (``GET /v1/catalog``, ``GET /v1/catalog/personal-data``)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict

from compliance.catalog.model import CatalogEntry

# A table name as the catalog stores it (unquoted PostgreSQL identifier, at most 63 bytes).
TABLE_NAME_PATTERN: Final = r"^[a-z_][a-z0-9_]{0,62}$"
TABLE_NAME_MAX_LENGTH: Final = 63


class CatalogOut(BaseModel):
    """Every column of the schema, by table then column."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    items: list[CatalogEntry]


class PersonalDataOut(BaseModel):
    """The personal-data columns, of one table when ``table`` is set, else of every table."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    table: str | None
    items: list[CatalogEntry]
