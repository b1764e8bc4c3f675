"""The audit export file formats: JSON Lines, CSV and the ``checkpoints.json`` manifest.

Pure (no AWS, no database): the export writer and the offline verifier (``compliance audit
verify``) share it, so what one writes the other reads back exactly.

Every exported event is its *record*: the 14 members of its canonical form
(``compliance.audit.canonical``) plus ``event_hash``, each formatted exactly as it is hashed
(UUIDs lowercase, ``occurred_at`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, IP addresses RFC 5952).

JSON Lines (``events.jsonl``)
    One record per line, in ``seq`` order, each the RFC 8785 (JCS) serialisation of the record
    followed by ``\\n``. UTF-8. Split lines on ``\\n`` only: JCS leaves U+2028/U+2029 unescaped
    (every other line break inside a string is escaped).

CSV (``events.csv``)
    RFC 4180: UTF-8, ``\\r\\n`` line ends, a header row with :data:`CSV_COLUMNS` in that order,
    then one row per event in ``seq`` order. Cells:

    * ``seq``: decimal integer;
    * ``details``: the RFC 8785 JSON of the object (``{}`` when empty);
    * ``ip_address``, ``user_agent``, ``request_id`` (the nullable fields): JSON, i.e. the literal
      ``null`` or a JSON string (``"curl/8.5.0"``). This keeps ``null`` apart from the empty
      string (a user agent may be empty) and keeps the attacker-controlled user agent from
      starting a cell with ``=``, ``+``, ``-`` or ``@`` (spreadsheet formula injection);
    * every other column: the text itself (none of them can be empty or null).

    No cell ever holds a raw line break (JSON escapes them; the other fields cannot contain one).

Numbers inside ``details`` parse back as they were hashed: integers within +-(2**53-1) as
integers, larger integral values (JCS prints ``1e20`` as ``100000000000000000000``) as floats,
exactly as the database layer reads ``jsonb``.

``checkpoints.json`` (:class:`ExportManifest`)
    The export's range and the signed checkpoints covering it: every checkpoint whose
    ``tree_size`` lies in ``from_seq - 1 .. to_seq``, plus the first one at or after ``to_seq``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from compliance.audit.canonical import HASHED_FIELDS, canonicalize
from compliance.audit.checkpoint import SignedCheckpoint
from compliance.audit.events import SAFE_INT, StoredAuditEvent

EXPORT_FORMAT: Final = "compliance-audit-export/v1"
EVENT_FIELDS = frozenset((*HASHED_FIELDS, "event_hash"))
CSV_COLUMNS = (
    "seq",
    "event_id",
    "occurred_at",
    "event_type",
    "actor",
    "org_id",
    "resource",
    "action",
    "result",
    "ip_address",
    "user_agent",
    "request_id",
    "details",
    "prev_hash",
    "event_hash",
)
_JSON_COLUMNS = frozenset({"ip_address", "user_agent", "request_id", "details"})


class ExportFormatError(ValueError):
    """A line or file that is not in the export format (the message never echoes values)."""


class ExportManifest(BaseModel):
    """``checkpoints.json``: what was exported and the signed checkpoints that cover it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["compliance-audit-export/v1"] = EXPORT_FORMAT
    export_id: UUID
    org_id: UUID
    events_format: Literal["jsonl", "csv"]
    from_seq: int
    to_seq: int
    events: int
    created_at: datetime
    checkpoints: list[SignedCheckpoint]


# ------------------------------------------------------------------------------ writing


def jsonl_line(record: dict[str, Any]) -> bytes:
    return canonicalize(record) + b"\n"


def csv_header() -> bytes:
    return _csv_bytes(CSV_COLUMNS)


def csv_line(record: dict[str, Any]) -> bytes:
    cells = []
    for column in CSV_COLUMNS:
        value = record[column]
        if column in _JSON_COLUMNS:
            cells.append(canonicalize(value).decode("utf-8"))
        else:
            cells.append(str(value))
    return _csv_bytes(cells)


def _csv_bytes(cells: Iterable[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue().encode("utf-8")


# ------------------------------------------------------------------------------ reading


def _parse_int(text: str) -> int | float:
    value = int(text)
    return value if -SAFE_INT <= value <= SAFE_INT else float(text)


def _no_constants(name: str) -> Any:
    raise ExportFormatError(f"JSON constant {name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ExportFormatError("duplicate JSON member")
    return result


def loads(text: str) -> Any:
    """JSON as the export writes it: no NaN/Infinity, no duplicate members, exact numbers."""
    try:
        return json.loads(
            text, parse_int=_parse_int, parse_constant=_no_constants, object_pairs_hook=_unique_keys
        )
    except ExportFormatError:
        raise
    except ValueError:  # JSONDecodeError, int() of a huge literal
        raise ExportFormatError("not valid JSON") from None


def event_from_record(record: Any) -> StoredAuditEvent:
    if not isinstance(record, dict) or set(record) != EVENT_FIELDS:
        raise ExportFormatError("a record must have exactly the exported event fields")
    try:
        return StoredAuditEvent.model_validate(record)
    except ValidationError as exc:
        fields = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
        raise ExportFormatError(f"invalid event fields {fields}") from None


def parse_jsonl_line(line: str) -> StoredAuditEvent:
    return event_from_record(loads(line))


def parse_csv_row(row: list[str]) -> StoredAuditEvent:
    if len(row) != len(CSV_COLUMNS):
        raise ExportFormatError(f"a row has {len(CSV_COLUMNS)} cells, found {len(row)}")
    record: dict[str, Any] = {}
    for column, cell in zip(CSV_COLUMNS, row, strict=True):
        if column in _JSON_COLUMNS:
            record[column] = loads(cell)
        elif column == "seq":
            if not cell.isascii() or not cell.isdigit():
                raise ExportFormatError("seq must be a decimal integer")
            record[column] = int(cell)
        else:
            record[column] = cell
    return event_from_record(record)


ParsedLine = StoredAuditEvent | ExportFormatError


def read_jsonl(lines: Iterable[str]) -> Iterator[ParsedLine]:
    """Each line parsed, or the error that line raised (the caller decides where to stop)."""
    for line in lines:
        try:
            yield parse_jsonl_line(line)
        except ExportFormatError as exc:
            yield exc


def read_csv(lines: Iterable[str]) -> Iterator[ParsedLine]:
    """Rows after the header, parsed. Raises ExportFormatError if the header is not :data:`CSV_COLUMNS`."""
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error:
        raise ExportFormatError("not CSV") from None
    if header is None or tuple(header) != CSV_COLUMNS:
        raise ExportFormatError("the CSV header is not the audit export header")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield ExportFormatError("malformed CSV row")
            return
        try:
            yield parse_csv_row(row)
        except ExportFormatError as exc:
            yield exc
