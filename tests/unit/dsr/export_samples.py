"""Sample header values and awkward strings shared by the export-format tests (in memory and streamed)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

REQUEST_ID = UUID("0b7f3c1e-7d7a-4f55-9a39-2f1f0c3a9d11")
SUBJECT = "5d1e9b0c-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
AT = datetime(2026, 11, 23, 10, 30, 0, 123456, tzinfo=UTC)

# Strings that each format must escape or encode, and values of every JSON type.
AWKWARD = [
    'say "hi", then leave',
    "line one\nline two\r\nline three\rend",
    "<b>a & b</b> ]]> '",
    "Zoë 日本語 🙂 \u2028 \u00a0",
    "\u2029 \u0085",
    "bell\x07 nul-ish\x01 tab\t esc\x1b",
    '=HYPERLINK("http://evil")',
    "+1",
    "-2+3",
    "@SUM(A1)",
    "\tindented",
    "123",
    "true",
    "null",
    '"quoted"',
    "",
    " spaced ",
    "\ufffe\uffff",
]
