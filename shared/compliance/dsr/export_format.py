"""The file formats of a data subject's export (access, portability): JSON, CSV (zip), XML.

Pure (no AWS, no database): the collector hands over the subject's data grouped by catalog
category (:class:`SubjectExport`), :func:`write_export` streams one format to a binary file-like
object and reports its size, SHA-256 and whether it is ``large``. The same input gives the same
bytes (keys, categories, tables and columns sorted; fixed zip timestamps and attributes).

For data too large to hold, :class:`SpooledExport` takes the rows one by one (validating each),
spools them per category to temporary files as compact JSON lines, gathers the manifest's counts,
tables and columns on the way, and writes any format with the same bytes :func:`write_export`
gives for the same rows: both feed the same writers through one small source interface. Every
format needs the whole category before its first row (CSV: the header is the category's columns;
XML: the manifest comes first; all: categories sorted), hence the spool rather than a single pass.

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
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any, Final, Literal, Protocol, TypeAlias
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
    "SpooledExport",
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


def _check_header(subject_ref: str, regulation: str, generated_at: datetime) -> None:
    if not _REGULATION.match(regulation):
        raise ExportDataError("regulation must be a short lowercase identifier")
    if not _SUBJECT_REF.match(subject_ref):
        raise ExportDataError("subject reference must be a pseudonymous id")
    if generated_at.tzinfo is None:
        raise ExportDataError("generated_at must be timezone-aware")


def _check_category(name: str) -> None:
    if name not in CATEGORIES:
        raise ExportDataError("unknown category (not one of the catalog's)")


def _check_row(row: Row) -> None:
    for column, value in row.items():
        _check_name(column, "column")
        _check_value(value, 0)


def _check(export: SubjectExport) -> None:
    _check_header(export.subject_ref, export.regulation, export.generated_at)
    for name, category in export.categories.items():
        _check_category(name)
        for table in category.tables:
            _check_name(table, "table")
        for row in category.rows:
            _check_row(row)


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


# ------------------------------------------------------------------------------ sources
# The writers read a source: a SubjectExport in memory, or a SpooledExport on disk. Both give the
# categories with rows, sorted by name, and each category's rows in the order they were collected.


@dataclass(frozen=True)
class _Header:
    request_id: UUID
    subject_ref: str
    regulation: str
    generated_at: datetime


@dataclass(frozen=True)
class _Summary:
    name: str
    tables: list[str]  # sorted
    columns: list[str]  # sorted
    rows: int


class _Source(Protocol):
    def header(self) -> _Header: ...

    def summaries(self) -> list[_Summary]:
        """The categories with rows, sorted by name."""
        ...

    def rows(self, category: str) -> Iterable[Row]: ...

    def encoded_rows(self, category: str) -> Iterable[bytes]:
        """Each row as ``_dumps(dict(row))`` in UTF-8."""
        ...


class _MemorySource:
    def __init__(self, export: SubjectExport) -> None:
        self._export = export

    def header(self) -> _Header:
        e = self._export
        return _Header(e.request_id, e.subject_ref, e.regulation, e.generated_at)

    def summaries(self) -> list[_Summary]:
        return [
            _Summary(name, sorted(set(category.tables)), category.columns(), len(category.rows))
            for name, category in self._export.held()
        ]

    def rows(self, category: str) -> Iterable[Row]:
        return self._export.categories[category].rows

    def encoded_rows(self, category: str) -> Iterable[bytes]:
        return (_dumps(dict(row)).encode("utf-8") for row in self.rows(category))


#: Bytes of one category's spool kept in memory before it moves to a temporary file.
DEFAULT_SPOOL_BYTES: Final = 128 * 1024


class SpooledExport:
    """A subject's export built row by row, for data too large to hold (streaming).

    :meth:`add` validates a row and appends it, as one line of compact JSON, to its category's
    spool (a ``SpooledTemporaryFile``: in memory up to ``spool_bytes``, then a file in
    ``spool_dir`` or the system's temporary directory, ``/tmp`` in a Lambda). Counts, tables and
    columns are gathered on the way, so the manifest needs no second pass. :meth:`write` then
    writes any format, as often as needed, with the same bytes :func:`write_export` gives for a
    :class:`SubjectExport` of the same rows added in the same order. JSON escapes every control
    character, so a spool line never holds a raw newline: lines split the rows exactly.

    Close it (or use it as a context manager): the spools are deleted on close.
    """

    def __init__(
        self,
        *,
        request_id: UUID,
        subject_ref: str,
        regulation: str,
        generated_at: datetime,
        spool_bytes: int = DEFAULT_SPOOL_BYTES,
        spool_dir: str | None = None,
    ) -> None:
        _check_header(subject_ref, regulation, generated_at)
        self._header = _Header(request_id, subject_ref, regulation, generated_at)
        self._spool_bytes = spool_bytes
        self._spool_dir = spool_dir
        self._spools: dict[str, IO[bytes]] = {}
        self._tables: dict[str, set[str]] = {}
        self._columns: dict[str, set[str]] = {}
        self._counts: dict[str, int] = {}
        self._sealed = False

    @property
    def subject_ref(self) -> str:
        return self._header.subject_ref

    @property
    def rows_total(self) -> int:
        return sum(self._counts.values())

    def add(self, category: str, table: str, row: Row) -> None:
        """Append ``row`` to ``category`` (read from ``table``); :class:`ExportDataError` if it
        cannot be exported (nothing of it is kept then)."""
        if self._sealed:
            raise RuntimeError("rows cannot be added once the export is being written")
        _check_category(category)
        _check_name(table, "table")
        _check_row(row)
        line = _dumps(dict(row)).encode("utf-8") + b"\n"
        spool = self._spools.get(category)
        if spool is None:
            spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed in close()
                max_size=self._spool_bytes, mode="w+b", dir=self._spool_dir
            )
            self._spools[category] = spool
            self._tables[category] = set()
            self._columns[category] = set()
            self._counts[category] = 0
        spool.write(line)
        self._tables[category].add(table)
        self._columns[category].update(row)
        self._counts[category] += 1

    def write(
        self, fmt: ExportFormat, out: IO[bytes], *, large_threshold: int = LARGE_EXPORT_BYTES
    ) -> ExportResult:
        """Stream the export in ``fmt`` to ``out`` (see :func:`write_export`)."""
        self._sealed = True
        return _write(self, fmt, out, large_threshold)

    def close(self) -> None:
        for spool in self._spools.values():
            spool.close()
        self._spools.clear()

    def __enter__(self) -> SpooledExport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # _Source
    def header(self) -> _Header:
        return self._header

    def summaries(self) -> list[_Summary]:
        return [
            _Summary(name, sorted(self._tables[name]), sorted(self._columns[name]), self._counts[name])
            for name in sorted(self._counts)
        ]

    def encoded_rows(self, category: str) -> Iterator[bytes]:
        spool = self._spools[category]
        spool.flush()
        spool.seek(0)
        for line in spool:
            yield line[:-1]

    def rows(self, category: str) -> Iterator[Row]:
        for line in self.encoded_rows(category):
            row: dict[str, Any] = json.loads(line)
            yield row


# ------------------------------------------------------------------------------ shared pieces


def _dumps(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_manifest(export: SubjectExport, fmt: ExportFormat) -> dict[str, Any]:
    """The manifest without checksums (each format adds its own)."""
    return _manifest(_MemorySource(export), fmt)


def _manifest(source: _Source, fmt: ExportFormat) -> dict[str, Any]:
    header = source.header()
    summaries = source.summaries()
    total = sum(summary.rows for summary in summaries)
    return {
        "format": EXPORT_FORMAT,
        "export_format": fmt,
        "request_id": str(header.request_id),
        "subject": header.subject_ref,
        "generated_at": _timestamp(header.generated_at),
        "regulation": header.regulation,
        "rows": total,
        "no_data_held": total == 0,
        "categories": {
            summary.name: {"tables": summary.tables, "columns": summary.columns, "rows": summary.rows}
            for summary in summaries
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
    return _data_bytes(_MemorySource(export))


def _data_bytes(source: _Source) -> Iterator[bytes]:
    yield b"{"
    for index, summary in enumerate(source.summaries()):
        yield (("," if index else "") + _dumps(summary.name) + ":[").encode()
        for number, encoded in enumerate(source.encoded_rows(summary.name)):
            yield b"," + encoded if number else encoded
        yield b"]"
    yield b"}"


def _write_json(source: _Source, sink: _Sink) -> dict[str, Any]:
    digest = hashlib.sha256()
    sink.write(b'{"data":')  # "data" sorts before "manifest": the data is hashed before it is named
    for piece in _data_bytes(source):
        digest.update(piece)
        sink.write(piece)
    manifest = _manifest(source, "json") | {"data_sha256": digest.hexdigest()}
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


def _write_csv(source: _Source, sink: _Sink) -> dict[str, Any]:
    files: dict[str, str] = {}
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for summary in source.summaries():
            file_name = f"{summary.name}.csv"
            columns = summary.columns
            digest = hashlib.sha256()
            with archive.open(_zip_info(file_name), "w", force_zip64=True) as member:
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\r\n")
                writer.writerow(columns)
                for row in source.rows(summary.name):
                    writer.writerow([csv_cell(row.get(column)) for column in columns])
                    if buffer.tell() > _CHUNK:
                        _flush(buffer, digest, member)
                _flush(buffer, digest, member)
            files[file_name] = digest.hexdigest()
        manifest = _manifest(source, "csv") | {"files": files}
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


def _write_xml(source: _Source, sink: _Sink) -> dict[str, Any]:
    manifest = _manifest(source, "xml")
    pieces: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    pieces.append(f'<subject-data-export format="{EXPORT_FORMAT}">\n')
    pieces.extend(_xml_manifest(manifest))
    sink.write("".join(pieces).encode("utf-8"))
    for summary in source.summaries():
        sink.write(f'  <category name="{summary.name}">\n'.encode())
        for row in source.rows(summary.name):
            fields = "".join(f"      {_xml_field(column, row[column])}\n" for column in sorted(row))
            sink.write(f"    <row>\n{fields}    </row>\n".encode())
        sink.write(b"  </category>\n")
    sink.write(b"</subject-data-export>\n")
    return manifest


# ------------------------------------------------------------------------------ entry point

_WRITERS: Final[dict[str, Callable[[_Source, _Sink], dict[str, Any]]]] = {
    "json": _write_json,
    "csv": _write_csv,
    "xml": _write_xml,
}


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
    return _write(_MemorySource(export), fmt, out, large_threshold)


def _write(source: _Source, fmt: ExportFormat, out: IO[bytes], large_threshold: int) -> ExportResult:
    if fmt not in _WRITERS:
        raise ExportDataError("unknown export format")
    sink = _Sink(out)
    manifest = _WRITERS[fmt](source, sink)
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
