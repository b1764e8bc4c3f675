"""Streaming exports: rows spooled to temporary files give the same bytes as the in-memory writer,
in every format, while memory stays bounded whatever the number of rows."""

from __future__ import annotations

import gc
import hashlib
import io
import tracemalloc
from collections.abc import Iterable
from datetime import datetime
from typing import IO, Any

import pytest

from compliance.dsr.export_format import (
    FORMATS,
    ExportCategory,
    ExportDataError,
    ExportFormat,
    SpooledExport,
    SubjectExport,
    write_export,
)
from tests.unit.dsr.export_samples import AT, AWKWARD, REQUEST_ID, SUBJECT

Added = list[tuple[str, str, dict[str, Any]]]


def interleaved_rows() -> Added:
    """(category, table, row) as a collector yields them: categories interleaved, a category fed
    by two tables, rows of one category with different columns, every JSON type."""
    added: Added = []
    for number, text in enumerate(AWKWARD):
        added.append(("contact", "subjects", {"subjects.email": text, "subjects.id": number}))
        added.append(("content", "usage_records", {"usage_records.prompt_text": text, "n": number}))
        added.append(
            ("usage", "usage_records", {"usage_records.tokens": number, "usage_records.cost": "0.1"})
        )
    added.append(("usage", "subjects", {"subjects.created_at": "2026-01-01T00:00:00+00:00"}))
    added.append(
        (
            "audit",
            "audit_events",
            {"score": 1.5, "neg": -0.0, "big": 2**70, "tiny": 1e-300, "flag": True, "none": None},
        )
    )
    added.append(("audit", "audit_events", {"details": {"b": [1, "x\x02y", None], "a": {"z": "\uffff"}}}))
    added.append(("content", "usage_records", {"marker": {"erased": "crypto_shred"}, "tags": []}))
    return added


def spooled(added: Iterable[tuple[str, str, dict[str, Any]]], **kw: Any) -> SpooledExport:
    export = SpooledExport(
        request_id=REQUEST_ID, subject_ref=SUBJECT, regulation="gdpr", generated_at=AT, **kw
    )
    for category, table, row in added:
        export.add(category, table, row)
    return export


def in_memory(added: Added) -> SubjectExport:
    """The same rows as ``collect_subject_data`` groups them."""
    rows: dict[str, list[dict[str, Any]]] = {}
    tables: dict[str, set[str]] = {}
    for category, table, row in added:
        rows.setdefault(category, []).append(row)
        tables.setdefault(category, set()).add(table)
    return SubjectExport(
        request_id=REQUEST_ID,
        subject_ref=SUBJECT,
        regulation="gdpr",
        generated_at=AT,
        categories={
            name: ExportCategory(tables=tuple(sorted(tables[name])), rows=r) for name, r in rows.items()
        },
    )


@pytest.mark.parametrize("spool_bytes", [64, 1 << 20], ids=["on-disk", "in-memory"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_streamed_output_is_byte_for_byte_the_in_memory_writers(fmt: ExportFormat, spool_bytes: int) -> None:
    # Given the same rows, spooled (to disk after 64 bytes, or kept in memory) and held in memory
    added = interleaved_rows()
    with spooled(added, spool_bytes=spool_bytes) as export:
        # When both write the format
        streamed = io.BytesIO()
        result = export.write(fmt, streamed)
        # Then the bytes, checksum, size and manifest are the same
        expected = io.BytesIO()
        reference = write_export(in_memory(added), fmt, expected)
        assert streamed.getvalue() == expected.getvalue()
        assert result == reference
        assert result.sha256 == hashlib.sha256(streamed.getvalue()).hexdigest()
        # And writing again (another format, a retry) reads the spools again, from the start
        again = io.BytesIO()
        export.write(fmt, again)
        assert again.getvalue() == expected.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
def test_nothing_added_is_the_same_valid_empty_export(fmt: ExportFormat) -> None:
    with spooled([]) as export:
        out = io.BytesIO()
        result = export.write(fmt, out)
    expected = io.BytesIO()
    write_export(in_memory([]), fmt, expected)
    assert out.getvalue() == expected.getvalue()
    assert result.manifest["no_data_held"] is True and export.rows_total == 0


@pytest.mark.parametrize(
    ("category", "table", "row", "message"),
    [
        ("contact", "subjects", {"a": "\ud800"}, "surrogate"),
        ("contact", "subjects", {"a": float("nan")}, "finite"),
        ("contact", "subjects", {"a\x00": 1}, "column"),
        ("contact", "bad\x01table", {"a": 1}, "table"),
        ("no-such-category", "subjects", {"a": 1}, "category"),
        ("contact", "subjects", {"a": b"alice"}, "JSON value"),
    ],
)
def test_an_unexportable_row_is_refused_when_added_and_nothing_of_it_is_kept(
    category: str, table: str, row: dict[str, Any], message: str
) -> None:
    with spooled([("contact", "subjects", {"ok": 1})]) as export:
        with pytest.raises(ExportDataError, match=message) as caught:
            export.add(category, table, row)
        assert "alice" not in str(caught.value)
        # The export is still the one good row
        assert export.rows_total == 1
        assert export.write("json", io.BytesIO()).manifest["categories"] == {
            "contact": {"tables": ["subjects"], "columns": ["ok"], "rows": 1}
        }


def test_header_fields_are_checked_before_any_row() -> None:
    with pytest.raises(ExportDataError, match="subject reference"):
        SpooledExport(
            request_id=REQUEST_ID, subject_ref="ada@example.com", regulation="gdpr", generated_at=AT
        )
    with pytest.raises(ExportDataError, match="timezone"):
        SpooledExport(
            request_id=REQUEST_ID, subject_ref=SUBJECT, regulation="gdpr", generated_at=datetime(2026, 1, 1)
        )


def test_rows_cannot_be_added_once_writing_started() -> None:
    with spooled([("contact", "subjects", {"ok": 1})]) as export:
        export.write("xml", io.BytesIO())
        with pytest.raises(RuntimeError):
            export.add("contact", "subjects", {"ok": 2})


class _Discard(io.RawIOBase):
    """A target that keeps nothing (what is measured is the writer, not the output)."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


ROWS = 20_000
PROMPT = "Summarise the quarterly report for the board, with figures and a short outlook. " * 4


def many_rows() -> Iterable[tuple[str, str, dict[str, Any]]]:
    for number in range(ROWS):
        key = {"usage_records.request_id": f"req-{number:06d}"}
        yield "content", "usage_records", key | {"usage_records.prompt_text": f"{PROMPT} {number}"}
        yield (
            "usage",
            "usage_records",
            key | {"usage_records.prompt_tokens": number, "usage_records.model": "gpt-4o"},
        )
        yield "identifier", "usage_records", key | {"usage_records.client_ip": f"203.0.113.{number % 250}"}


def test_memory_stays_bounded_while_20000_records_stream_through_every_format(tmp_path: Any) -> None:
    # Given 20,000 records (60,000 export rows, ~12 MB of JSON), none of them held by the test
    gc.collect()
    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        # When they are spooled and written in all three formats
        sizes = {}
        with spooled(many_rows(), spool_dir=str(tmp_path)) as export:
            target: IO[bytes] = _Discard()  # type: ignore[assignment]
            for fmt in FORMATS:
                sizes[fmt] = export.write(fmt, target).bytes_written
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then the peak stays a few MB above the baseline, far below the size of the data
    assert sizes["json"] > 10_000_000
    assert peak - baseline < 4 * 1024 * 1024, f"peak {(peak - baseline) / 1e6:.1f} MB above baseline"
