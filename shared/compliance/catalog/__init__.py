"""The data catalog: for each column of the schema, what data it holds and how it is governed.

Declared in ``migrations/catalog.toml`` (category, personal or not, sensitivity, retention,
erasure strategy with its legal basis, the column linking a row to its data subject), validated
here, loaded into the ``data_catalog`` table after every migration (:mod:`compliance.db.catalog`).
"""

from compliance.catalog.load import CATALOG_FILE_NAME, catalog_path, load_catalog, parse_catalog
from compliance.catalog.model import Catalog, CatalogEntry, CatalogError

__all__ = [
    "CATALOG_FILE_NAME",
    "Catalog",
    "CatalogEntry",
    "CatalogError",
    "catalog_path",
    "load_catalog",
    "parse_catalog",
]
