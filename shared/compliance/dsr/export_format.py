"""The file formats of a data subject's export (access, portability): JSON, CSV (zip), XML.

Pure (no AWS, no database): the collector hands over the subject's data grouped by catalog
category (:class:`SubjectExport`), :func:`write_export` streams one format to a binary file-like
object and reports its size, SHA-256 and whether it is ``large``. The same input gives the same
bytes (keys, categories, tables and columns sorted; fixed zip timestamps and attributes).

Values are JSON values: ``str``, ``int``, finite ``float``, ``bool``, ``None``, lists and objects
with string keys (nested at most :data:`MAX_DEPTH` deep). Strings with lone surrogates are refused
(:class:`ExportDataError`; PostgreSQL text cannot hold them). Control characters are kept, and
escaped as each format needs. Categories are the catalog's (:data:`compliance.catalog.model.CATEGORIES`),
so file and element names never come from the data. A category without rows is left out.

Manifest (every format)
    ``format``, ``request_id``, ``subject`` (the pseudonymous subject id, never a name or e-mail),
    ``generated_at`` (``YYYY-MM-DDTHH:MM:SS.ffffffZ``), ``regulation``, ``rows`` (total),
    ``no_data_held`` and per category its ``tables``, ``columns`` and ``rows``.

``json``
    One document ``{"data": {category: [row, ...]}, "manifest": {...}}``, written compactly with
    sorted keys and UTF-8 (``json.dumps(..., sort_keys=True, ensure_ascii=False,
    separators=(",", ":"))``). ``manifest.data_sha256`` is the SHA-256 of ``data`` serialised
    that way, i.e. of the exact bytes of the ``data`` member in the file.

``csv``
    A zip: ``<category>.csv`` per category (RFC 4180, UTF-8, ``\\r\\n``; header = the category's
    columns sorted; one line per row) and ``manifest.json`` (with ``files``: the SHA-256 of each
    CSV file). A cell is read back by :func:`parse_csv_cell`: empty = ``null`` (also a column the
    row does not have); a cell that parses as JSON is that JSON value; anything else is the text
    itself. The writer therefore writes a string as its text only when that reads back as the same
    string and does not start with a spreadsheet formula trigger (``= + - @``, tab, CR);
    otherwise, and for every other value, it writes compact JSON (``"=1+1"``, ``"123"``, ``""``,
    ``42``, ``{"a":1}``). Nothing in a cell can then start a formula.

``xml``
    ``<subject-data-export format=...>`` with ``<manifest>`` then ``<category name=...>`` holding
    ``<row>`` elements of ``<field name="column" type="...">value</field>``; ``type`` is
    ``string``, ``integer``, ``number``, ``boolean``, ``null`` or ``json`` (objects and lists, as
    compact JSON text). Element names are fixed; column names only ever appear as attribute
    values. A string (or JSON text) that XML 1.0 cannot carry even escaped (C0 controls other than tab, LF,
    CR; U+FFFE, U+FFFF) is written as ``encoding="base64"`` of its UTF-8; a string with CR is
    written as ``&#13;`` so parsers do not normalise it away.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Final, Literal, TypeAlias
from uuid import UUID

from compliance.catalog.model import CATEGORIES

__all__ = [
    "EXPORT_FORMAT",
    "FORMATS",
    "LARGE_EXPORT_BYTES",
    "ExportCategory",
    "ExportDataError",
    "ExportFormat",
    "ExportResult",
    "SubjectExport",
    "build_manifest",
    "csv_cell",
    "data_bytes",
    "parse_csv_cell",
    "write_export",
]

EXPORT_FORMAT: Final = "compliance-dsr-export/v1"
ExportFormat = Literal["json", "csv", "xml"]
FORMATS: tuple[ExportFormat, ...] = ("json", "csv", "xml")
# "Warn in the record above 100 MB": decimal megabytes, as a person reads the size.
LARGE_EXPORT_BYTES: Final = 100_000_000
MAX_DEPTH: Final = 32

JsonValue: TypeAlias = Any
Row: TypeAlias = Mapping[str, JsonValue]

_CONTENT_TYPES: Final[dict[str, str]] = {
    "json": "application/json",
    "csv": "application/zip",
    "xml": "application/xml",
}
_EXTENSIONS: Final[dict[str, str]] = {"json": "json", "csv": "zip", "xml": "xml"}
_REGULATION = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SUBJECT_REF = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Characters XML 1.0 cannot carry at all, not even as character references.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record: fixed for determinism
_CHUNK: Final = 1 << 16


class ExportDataError(ValueError):
    """The data handed to the writer is not exportable (the message never echoes a value)."""


@dataclass(frozen=True)
class ExportCategory:
    """The rows of one catalog category, and the tables they were read from."""

    tables: tuple[str, ...]
    rows: Sequence[Row]

    def columns(self) -> list[str]:
        return sorted({column for row in self.rows for column in row})


@dataclass(frozen=True)
class SubjectExport:
    """Everything collected for one subject, by catalog category."""

    request_id: UUID
    subject_ref: str
    regulation: str
    generated_at: datetime
    categories: Mapping[str, ExportCategory] = field(default_factory=dict)

    def held(self) -> list[tuple[str, ExportCategory]]:
        """The categories with rows, sorted by name."""
        return [
            (name, self.categories[name]) for name in sorted(self.categories) if self.categories[name].rows
        ]


@dataclass(frozen=True)
class ExportResult:
    format: ExportFormat
    bytes_written: int
    sha256: str
    large: bool
    content_type: str
    extension: str
    manifest: dict[str, Any]


# ------------------------------------------------------------------------------ validation


def _check(export: SubjectExport) -> None:
    if not _REGULATION.match(export.regulation):
        raise ExportDataError("regulation must be a short lowercase identifier")
    if not _SUBJECT_REF.match(export.subject_ref):
        raise ExportDataError("subject reference must be a pseudonymous id")
    if export.generated_at.tzinfo is None:
        raise ExportDataError("generated_at must be timezone-aware")
    for name, category in export.categories.items():
        if name not in CATEGORIES:
            raise ExportDataError("unknown category (not one of the catalog's)")
        for table in category.tables:
            _check_name(table, "table")
        for row in category.rows:
            for column, value in row.items():
                _check_name(column, "column")
                _check_value(value, 0)


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= 200 or _XML_FORBIDDEN.search(name):
        raise ExportDataError(f"{what} names must be short strings without control characters")
    _check_text(name)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ExportDataError("a string holds a lone surrogate") from None


def _check_value(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ExportDataError(f"values nest at most {MAX_DEPTH} deep")
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ExportDataError("numbers must be finite")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ExportDataError("object keys must be strings")
            _check_text(key)
            _check_value(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_value(item, depth + 1)
    else:
        raise ExportDataError(f"not a JSON value: {type(value).__name__}")


# ------------------------------------------------------------------------------ shared pieces


def _dumps(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_manifest(export: SubjectExport, fmt: ExportFormat) -> dict[str, Any]:
    """The manifest without checksums (each format adds its own)."""
    held = export.held()
    total = sum(len(category.rows) for _, category in held)
    return {
        "format": EXPORT_FORMAT,
        "export_format": fmt,
        "request_id": str(export.request_id),
        "subject": export.subject_ref,
        "generated_at": _timestamp(export.generated_at),
        "regulation": export.regulation,
        "rows": total,
        "no_data_held": total == 0,
        "categories": {
            name: {
                "tables": sorted(set(category.tables)),
                "columns": category.columns(),
                "rows": len(category.rows),
            }
            for name, category in held
        },
    }


class _Sink:
    """Counts and hashes what goes to ``out``; has ``tell`` but no ``seek``, so zipfile streams
    (data descriptors) the same way whatever ``out`` is: the bytes do not depend on the target."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self._hash.update(data)
        self.count += len(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self._out.flush()

    def close(self) -> None:
        """The caller owns ``out`` and closes it."""

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


# ------------------------------------------------------------------------------ JSON


def data_bytes(export: SubjectExport) -> Iterable[bytes]:
    """The ``data`` member of the JSON document, in pieces (one per row)."""
    yield b"{"
    for index, (name, category) in enumerate(export.held()):
        yield (("," if index else "") + _dumps(name) + ":[").encode()
        for number, row in enumerate(category.rows):
            yield (("," if number else "") + _dumps(dict(row))).encode()
        yield b"]"
    yield b"}"


def _write_json(export: SubjectExport, sink: _Sink) -> dict[str, Any]:
    digest = hashlib.sha256()
    sink.write(b'{"data":')  # "data" sorts before "manifest": the data is hashed before it is named
    for piece in data_bytes(export):
        digest.update(piece)
        sink.write(piece)
    manifest = build_manifest(export, "json") | {"data_sha256": digest.hexdigest()}
    sink.write(b',"manifest":' + _dumps(manifest).encode() + b"}")
    return manifest


# ------------------------------------------------------------------------------ CSV (zip)


def parse_csv_cell(cell: str) -> JsonValue:
    """A CSV cell of the export read back: see the module docstring."""
    if cell == "":
        return None
    try:
        return json.loads(cell)
    except ValueError:
        return cell


def csv_cell(value: JsonValue) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and value and not value.startswith(_FORMULA_TRIGGERS):
        try:
            json.loads(value)
        except ValueError:
            return value  # reads back as itself
    return _dumps(value)


def _write_csv(export: SubjectExport, sink: _Sink) -> dict[str, Any]:
    files: dict[str, str] = {}
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, category in export.held():
            file_name = f"{name}.csv"
            columns = category.columns()
            digest = hashlib.sha256()
            with archive.open(_zip_info(file_name), "w", force_zip64=True) as member:
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\r\n")
                writer.writerow(columns)
                for row in category.rows:
                    writer.writerow([csv_cell(row.get(column)) for column in columns])
                    if buffer.tell() > _CHUNK:
                        _flush(buffer, digest, member)
                _flush(buffer, digest, member)
            files[file_name] = digest.hexdigest()
        manifest = build_manifest(export, "csv") | {"files": files}
        archive.writestr(_zip_info("manifest.json"), _dumps(manifest).encode())
    return manifest


def _flush(buffer: io.StringIO, digest: Any, member: IO[bytes]) -> None:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    digest.update(data)
    member.write(data)


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix, whatever the host
    info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
    return info


# ------------------------------------------------------------------------------ XML


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _xml_attr(text: str) -> str:
    # Tab, LF and CR as references: attribute-value normalisation would turn them into spaces.
    escaped = _xml_text(text).replace('"', "&quot;")
    return escaped.replace("\t", "&#9;").replace("\n", "&#10;")


def _xml_field(column: str, value: JsonValue) -> str:
    name = f'<field name="{_xml_attr(column)}"'
    if value is None:
        return f'{name} type="null"/>'
    if isinstance(value, bool):
        return f'{name} type="boolean">{"true" if value else "false"}</field>'
    if isinstance(value, int):
        return f'{name} type="integer">{value}</field>'
    if isinstance(value, float):
        return f'{name} type="number">{_dumps(value)}</field>'
    kind, text = ("string", value) if isinstance(value, str) else ("json", _dumps(value))
    if _XML_FORBIDDEN.search(text):  # JSON text too: it leaves U+FFFE and U+FFFF as they are
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        return f'{name} type="{kind}" encoding="base64">{encoded}</field>'
    return f'{name} type="{kind}">{_xml_text(text)}</field>'


def _xml_manifest(manifest: dict[str, Any]) -> Iterable[str]:
    attributes = ("request_id", "subject", "generated_at", "regulation", "rows", "no_data_held")
    head = " ".join(f'{key.replace("_", "-")}="{_xml_attr(_scalar(manifest[key]))}"' for key in attributes)
    yield f"  <manifest {head}>\n"
    for name, summary in manifest["categories"].items():
        yield f'    <category name="{name}" rows="{summary["rows"]}">\n'
        for table in summary["tables"]:
            yield f"      <table>{_xml_text(table)}</table>\n"
        for column in summary["columns"]:
            yield f"      <column>{_xml_text(column)}</column>\n"
        yield "    </category>\n"
    yield "  </manifest>\n"


def _scalar(value: object) -> str:
    return _dumps(value) if isinstance(value, bool) else str(value)


def _write_xml(export: SubjectExport, sink: _Sink) -> dict[str, Any]:
    manifest = build_manifest(export, "xml")
    pieces: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    pieces.append(f'<subject-data-export format="{EXPORT_FORMAT}">\n')
    pieces.extend(_xml_manifest(manifest))
    sink.write("".join(pieces).encode("utf-8"))
    for name, category in export.held():
        sink.write(f'  <category name="{name}">\n'.encode())
        for row in category.rows:
            fields = "".join(f"      {_xml_field(column, row[column])}\n" for column in sorted(row))
            sink.write(f"    <row>\n{fields}    </row>\n".encode())
        sink.write(b"  </category>\n")
    sink.write(b"</subject-data-export>\n")
    return manifest


# ------------------------------------------------------------------------------ entry point

_WRITERS = {"json": _write_json, "csv": _write_csv, "xml": _write_xml}


def write_export(
    export: SubjectExport,
    fmt: ExportFormat,
    out: IO[bytes],
    *,
    large_threshold: int = LARGE_EXPORT_BYTES,
) -> ExportResult:
    """Validate ``export`` (before writing anything), stream it to ``out`` in ``fmt``.

    :class:`ExportDataError` if a value, name or the header fields cannot be exported.
    """
    if fmt not in _WRITERS:
        raise ExportDataError("unknown export format")
    _check(export)
    sink = _Sink(out)
    manifest = _WRITERS[fmt](export, sink)
    sink.flush()
    return ExportResult(
        format=fmt,
        bytes_written=sink.count,
        sha256=sink.hexdigest(),
        large=sink.count > large_threshold,
        content_type=_CONTENT_TYPES[fmt],
        extension=_EXTENSIONS[fmt],
        manifest=manifest,
    )
