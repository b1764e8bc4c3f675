"""The DSR export formats: each reads back to exactly the values written (escaping included), the
same input gives the same bytes, checksums match, and an export of nothing is still valid."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from compliance.dsr.export_format import (
    EXPORT_FORMAT,
    FORMATS,
    ExportCategory,
    ExportDataError,
    ExportFormat,
    SubjectExport,
    csv_cell,
    parse_csv_cell,
    write_export,
)
from tests.unit.dsr.export_samples import AT, AWKWARD, REQUEST_ID, SUBJECT


def contact_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"email": text, "id": index} for index, text in enumerate(AWKWARD)]
    rows.append({"email": None, "id": 99, "score": 1.5, "active": True, "big": 2**70, "neg": -7})
    rows.append({"id": 100, "details": {"b": [1, "x\x02y", None], "a": {"z": "\uffff"}}, "tags": []})
    return rows


def full_export() -> SubjectExport:
    return SubjectExport(
        request_id=REQUEST_ID,
        subject_ref=SUBJECT,
        regulation="gdpr",
        generated_at=AT,
        categories={
            "contact": ExportCategory(tables=("subjects",), rows=contact_rows()),
            "usage": ExportCategory(
                tables=("usage_records", "subjects"),
                rows=[{"model": "gpt", "prompt_tokens": 12, "created_at": "2026-01-01T00:00:00Z"}],
            ),
            "cost": ExportCategory(tables=("usage_records",), rows=[]),
        },
    )


def empty_export() -> SubjectExport:
    return SubjectExport(request_id=REQUEST_ID, subject_ref=SUBJECT, regulation="ccpa", generated_at=AT)


def written(export: SubjectExport, fmt: ExportFormat) -> tuple[bytes, Any]:
    out = io.BytesIO()
    result = write_export(export, fmt, out)
    return out.getvalue(), result


def expected_data(export: SubjectExport) -> dict[str, list[dict[str, Any]]]:
    return {name: [dict(row) for row in cat.rows] for name, cat in export.categories.items() if cat.rows}


# ------------------------------------------------------------------------------ readers


def read_json(data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    document = json.loads(data)
    return document["data"], document["manifest"]


def read_csv_zip(data: bytes) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any], dict[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files["manifest.json"])
    result: dict[str, list[dict[str, Any]]] = {}
    for name, content in files.items():
        if name == "manifest.json":
            continue
        reader = csv.reader(io.StringIO(content.decode("utf-8"), newline=""), strict=True)
        header = next(reader)
        result[name.removesuffix(".csv")] = [
            {column: parse_csv_cell(cell) for column, cell in zip(header, row, strict=True)} for row in reader
        ]
    return result, manifest, files


def xml_value(element: ET.Element) -> Any:
    kind = element.get("type")
    text = element.text or ""
    if element.get("encoding") == "base64":
        text = base64.b64decode(text).decode("utf-8")
    if kind == "null":
        return None
    if kind == "string":
        return text
    if kind == "boolean":
        return {"true": True, "false": False}[text]
    return json.loads(text)  # integer, number, json


def read_xml(data: bytes) -> tuple[dict[str, list[dict[str, Any]]], ET.Element]:
    root = ET.fromstring(data)
    assert root.tag == "subject-data-export"
    assert root.get("format") == EXPORT_FORMAT
    result = {
        category.get("name", ""): [
            {field.get("name", ""): xml_value(field) for field in row} for row in category.findall("row")
        ]
        for category in root.findall("category")
    }
    manifest = root.find("manifest")
    assert manifest is not None
    return result, manifest


def fill_missing(rows: dict[str, list[dict[str, Any]]], manifest: dict[str, Any]) -> None:
    """CSV writes a column a row lacks as an empty cell (null): complete the expectation the same way."""
    for name, category_rows in rows.items():
        for row in category_rows:
            for column in manifest["categories"][name]["columns"]:
                row.setdefault(column, None)


# ------------------------------------------------------------------------------ round trips


def test_json_reads_back_every_value_and_its_data_checksum() -> None:
    # Given a subject's data with awkward strings and every JSON type
    export = full_export()

    # When written as JSON
    data, result = written(export, "json")

    # Then json.loads gives back every value, the empty category left out
    rows, manifest = read_json(data)
    assert rows == expected_data(export)
    assert manifest == result.manifest
    # And data_sha256 is the SHA-256 of the data member exactly as it sits in the file
    member = data[len(b'{"data":') : data.index(b',"manifest":')]
    assert hashlib.sha256(member).hexdigest() == manifest["data_sha256"]
    canonical = json.dumps(rows, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == manifest["data_sha256"]


def test_csv_zip_reads_back_every_value_with_one_file_per_category() -> None:
    # Given the same data / When written as CSV
    export = full_export()
    data, result = written(export, "csv")

    # Then the zip holds one CSV per category with rows plus the manifest
    rows, manifest, files = read_csv_zip(data)
    assert sorted(files) == ["contact.csv", "manifest.json", "usage.csv"]
    # And every cell parses back to its value (a column a row lacks reads as null)
    expected = expected_data(export)
    fill_missing(expected, manifest)
    assert rows == expected
    # And the manifest's checksums are those of the files in the zip
    assert manifest["files"] == {
        name: hashlib.sha256(files[name]).hexdigest() for name in ("contact.csv", "usage.csv")
    }
    assert manifest == result.manifest


def test_csv_cells_never_start_a_spreadsheet_formula() -> None:
    # Given the CSV of strings that start with formula triggers
    _, _, files = read_csv_zip(written(full_export(), "csv")[0])
    reader = csv.reader(io.StringIO(files["contact.csv"].decode(), newline=""))
    cells = [cell for row in reader for cell in row]

    # Then no cell starts with = + @ tab or CR; only numbers start with -
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    dashed = [c for c in cells if c.startswith("-")]
    assert dashed == ["-7"]
    # And plain text stays readable as itself
    assert csv_cell("alice@example.com") == "alice@example.com"
    assert csv_cell("=1+1") == '"=1+1"'
    assert csv_cell("123") == '"123"'
    assert csv_cell("") == '""'
    assert csv_cell(None) == ""


def test_xml_is_well_formed_and_reads_back_every_value() -> None:
    # Given the same data / When written as XML
    export = full_export()
    data, result = written(export, "xml")

    # Then xml.etree parses it, every value comes back (controls as base64), the manifest too
    rows, manifest = read_xml(data)
    assert rows == expected_data(export)
    assert manifest.get("request-id") == str(REQUEST_ID)
    assert manifest.get("subject") == SUBJECT
    assert manifest.get("regulation") == "gdpr"
    assert manifest.get("no-data-held") == "false"
    summary = {c.get("name", ""): c for c in manifest.findall("category")}
    assert sorted(summary) == ["contact", "usage"]
    assert [t.text for t in summary["usage"].findall("table")] == ["subjects", "usage_records"]
    assert summary["contact"].get("rows") == str(len(contact_rows()))
    assert result.manifest["categories"]["contact"]["rows"] == len(contact_rows())


def test_xml_element_names_never_come_from_the_data() -> None:
    # Given a column name that looks like markup
    export = SubjectExport(
        request_id=REQUEST_ID,
        subject_ref=SUBJECT,
        regulation="gdpr",
        generated_at=AT,
        categories={"usage": ExportCategory(tables=("t",), rows=[{'a"><evil x="': "<evil/>"}])},
    )

    # When written as XML
    rows, _ = read_xml(written(export, "xml")[0])
    root = ET.fromstring(written(export, "xml")[0])

    # Then the only element names are the format's own, and the name survives as an attribute
    assert {e.tag for e in root.iter()} == {
        "subject-data-export", "manifest", "category", "table", "column", "row", "field",
    }  # fmt: skip
    assert rows == {"usage": [{'a"><evil x="': "<evil/>"}]}


# ------------------------------------------------------------------------------ manifest, checksums


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_input_gives_the_same_bytes_and_the_reported_checksum(fmt: ExportFormat) -> None:
    # Given two writes of equal data, the second with rows' keys and categories in another order
    first, result = written(full_export(), fmt)
    shuffled = full_export()
    categories = {
        name: ExportCategory(
            tables=tuple(reversed(cat.tables)), rows=[dict(reversed(list(r.items()))) for r in cat.rows]
        )
        for name, cat in reversed(list(shuffled.categories.items()))
    }
    other = SubjectExport(
        request_id=REQUEST_ID,
        subject_ref=SUBJECT,
        regulation="gdpr",
        generated_at=AT.astimezone(timezone(timedelta(hours=2))),  # the same instant
        categories=categories,
    )
    second, _ = written(other, fmt)

    # Then the bytes are identical, and the reported size and SHA-256 are those of the bytes
    assert first == second
    assert result.bytes_written == len(first)
    assert result.sha256 == hashlib.sha256(first).hexdigest()
    assert result.large is False


@pytest.mark.parametrize("fmt", FORMATS)
def test_manifest_names_request_subject_regulation_and_categories(fmt: ExportFormat) -> None:
    # Given a written export
    _, result = written(full_export(), fmt)
    manifest = result.manifest

    # Then the manifest says what it covers, by pseudonymous id only
    assert manifest["format"] == EXPORT_FORMAT
    assert manifest["export_format"] == fmt
    assert manifest["request_id"] == str(REQUEST_ID)
    assert manifest["subject"] == SUBJECT
    assert manifest["generated_at"] == "2026-11-23T10:30:00.123456Z"
    assert manifest["regulation"] == "gdpr"
    assert manifest["rows"] == len(contact_rows()) + 1
    assert manifest["no_data_held"] is False
    assert manifest["categories"]["usage"] == {
        "tables": ["subjects", "usage_records"],
        "columns": ["created_at", "model", "prompt_tokens"],
        "rows": 1,
    }
    assert "cost" not in manifest["categories"]  # no rows, left out


def test_large_flag_follows_the_threshold() -> None:
    # Given an export of known size / When the threshold is just below and at that size
    size = written(full_export(), "json")[1].bytes_written
    below = write_export(full_export(), "json", io.BytesIO(), large_threshold=size - 1)
    at = write_export(full_export(), "json", io.BytesIO(), large_threshold=size)

    # Then only a size above the threshold is large
    assert below.large is True
    assert at.large is False


class _Unseekable(io.RawIOBase):
    """A stream that can only be written to, like an upload body."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)


def test_csv_zip_streams_to_an_unseekable_target_with_the_same_bytes() -> None:
    # Given a target that cannot seek / When the zip is written to it and to a BytesIO
    target = _Unseekable()
    result = write_export(full_export(), "csv", target)  # type: ignore[arg-type]

    # Then the bytes are the same and valid
    assert bytes(target.data) == written(full_export(), "csv")[0]
    assert result.sha256 == hashlib.sha256(target.data).hexdigest()


# ------------------------------------------------------------------------------ no data held


def test_an_empty_export_is_valid_in_every_format() -> None:
    # Given a subject of whom nothing is held
    export = empty_export()

    # When written in each format / Then each parses and says "no data held"
    rows, manifest = read_json(written(export, "json")[0])
    assert rows == {}
    assert manifest["no_data_held"] is True
    assert manifest["rows"] == 0
    assert manifest["categories"] == {}

    csv_rows, csv_manifest, files = read_csv_zip(written(export, "csv")[0])
    assert csv_rows == {}
    assert list(files) == ["manifest.json"]
    assert csv_manifest["no_data_held"] is True
    assert csv_manifest["files"] == {}

    xml_rows, xml_manifest = read_xml(written(export, "xml")[0])
    assert xml_rows == {}
    assert xml_manifest.get("no-data-held") == "true"
    assert xml_manifest.get("rows") == "0"


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"regulation": "GDPR!"}, "regulation"),
        ({"subject_ref": "alice@example.com"}, "pseudonymous"),
        ({"generated_at": datetime(2026, 1, 1)}, "timezone"),
        ({"categories": {"secrets": ExportCategory(tables=("t",), rows=[{"a": 1}])}}, "category"),
        ({"categories": {"usage": ExportCategory(tables=("t",), rows=[{"a": float("nan")}])}}, "finite"),
        ({"categories": {"usage": ExportCategory(tables=("t",), rows=[{"a": "\ud800"}])}}, "surrogate"),
        ({"categories": {"usage": ExportCategory(tables=("t",), rows=[{"a": b"bytes"}])}}, "JSON value"),
        ({"categories": {"usage": ExportCategory(tables=("t",), rows=[{"a": {1: "x"}}])}}, "keys"),
        ({"categories": {"usage": ExportCategory(tables=("t",), rows=[{"a\x00": 1}])}}, "column"),
    ],
)
def test_unexportable_input_is_refused_before_anything_is_written(
    change: dict[str, Any], message: str
) -> None:
    # Given an export with one bad field
    fields: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "subject_ref": SUBJECT,
        "regulation": "gdpr",
        "generated_at": AT,
    } | change
    out = io.BytesIO()

    # When written / Then refused, naming the problem but not the value, and nothing written
    with pytest.raises(ExportDataError, match=message) as caught:
        write_export(SubjectExport(**fields), "json", out)
    assert "alice" not in str(caught.value)
    assert out.getvalue() == b""


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ExportDataError, match="format"):
        write_export(empty_export(), "pdf", io.BytesIO())  # type: ignore[arg-type]
