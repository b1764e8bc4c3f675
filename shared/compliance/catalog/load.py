"""Reading the catalog file (TOML) that ships next to the migrations."""

from __future__ import annotations

import tomllib
from pathlib import Path

from compliance.catalog.model import Catalog, CatalogError

__all__ = ["CATALOG_FILE_NAME", "catalog_path", "load_catalog", "parse_catalog"]

CATALOG_FILE_NAME = "catalog.toml"
# Far above the real file (~20 kB): a bound on what a mistaken path can make us parse.
_MAX_BYTES = 1_000_000


def catalog_path(migrations_dir: Path | str) -> Path:
    """Where the catalog sits: in the migrations directory, so the domain layer ships both."""
    return Path(migrations_dir) / CATALOG_FILE_NAME


def load_catalog(path: Path | str) -> Catalog:
    """Read and validate the catalog file; :class:`CatalogError` if missing, malformed or invalid."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError([f"cannot be read ({exc.strerror or type(exc).__name__})"], path.name) from exc
    if len(raw) > _MAX_BYTES:
        raise CatalogError([f"larger than {_MAX_BYTES} bytes"], path.name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError(["not UTF-8"], path.name) from None
    return parse_catalog(text, path.name)


def parse_catalog(text: str, source: str = CATALOG_FILE_NAME) -> Catalog:
    """Validate catalog TOML text. A key written twice (a duplicate column) is a TOML error,
    reported with its line quoted, since tomllib names only the position."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError([_decode_problem(exc, text)], source) from None
    return Catalog.from_mapping(data, source)


def _decode_problem(exc: tomllib.TOMLDecodeError, text: str) -> str:
    message = str(exc)
    # "Cannot overwrite a value (at line 12, column 30)": quote line 12.
    marker = "(at line "
    if marker in message:
        number = message.split(marker, 1)[1].split(",", 1)[0]
        if number.isdigit():
            lines = text.splitlines()
            index = int(number) - 1
            if 0 <= index < len(lines):
                line = lines[index].strip()
                shown = line if len(line) <= 120 else line[:117] + "..."
                # The section header above the line names the table of a duplicate column.
                headers = (h.strip() for h in reversed(lines[:index]) if h.lstrip().startswith("["))
                section = next(headers, "")
                within = f" in {section}" if section else ""
                return f"invalid TOML{within}: {message}: {shown}"
    return f"invalid TOML: {message}"
