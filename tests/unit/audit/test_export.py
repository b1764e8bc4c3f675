"""Export files (JSON Lines, CSV, manifest), the S3 store's multipart upload, and create_export."""

# ruff: noqa: N803 - the fake S3 client takes boto3's argument names

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from compliance.audit import export, export_format
from compliance.audit.canonical import recompute_hash
from compliance.audit.chain import link, verify_chain
from compliance.audit.checkpoint import LocalSigner
from compliance.audit.download_links import DownloadLinkError, DownloadLinks
from compliance.audit.events import SAFE_INT, StoredAuditEvent
from compliance.audit.sink import MemoryAuditSink
from compliance.errors import AuditUnavailableError, ValidationFailedError
from compliance.models.audit import ExportFormat, ExportRequest, event_record
from tests.unit.audit.audit_log_fakes import (
    T0,
    FakeLog,
    event_in,
    fake_db,
    make_events,
    principal,
    sign_checkpoints,
)

TRICKY_DETAILS: list[dict[str, Any]] = [
    {},
    {
        "unicode": 'Grüße 😀 \u2028 "quoted", comma\nnewline\r\ttab \\ back',
        "nested": {"list": [1, None, True]},
    },
    {"max": SAFE_INT, "min": -SAFE_INT, "float": 1e20, "small": 1.5e-7, "neg_zero": -0.0, "null": None},
    {"formula": '=HYPERLINK("x")', "empty": ""},
]


def tricky_events() -> list[Any]:
    events = [
        event_in(1, details=TRICKY_DETAILS[0], user_agent="", request_id=None, ip_address=None),
        event_in(
            2, details=TRICKY_DETAILS[1], user_agent="=cmd|' /C calc'!A0", ip_address="::ffff:192.0.2.9"
        ),
        event_in(3, details=TRICKY_DETAILS[2], user_agent="null", ip_address="fe80::1%eth0"),
        event_in(4, details=TRICKY_DETAILS[3], user_agent=None, request_id="r"),
    ]
    return link(events, None)


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_round_trip_is_exact(fmt: ExportFormat) -> None:
    events = tricky_events()
    # When the events are written and read back
    data = b"".join(export.export_lines(events, fmt))
    text = data.decode("utf-8")
    parsed = list(
        export_format.read_csv(io.StringIO(text, newline=""))
        if fmt is ExportFormat.CSV
        else export_format.read_jsonl(text.split("\n")[:-1])  # split on LF only: U+2028 is raw in JCS
    )
    # Then every record is identical, the hashes recompute, and writing again gives the same bytes
    loaded = [p for p in parsed if isinstance(p, StoredAuditEvent)]
    assert len(loaded) == len(parsed) == len(events)
    assert [event_record(p) for p in loaded] == [event_record(e) for e in events]
    assert all(recompute_hash(p) == p.event_hash for p in loaded)
    assert verify_chain(loaded).valid
    assert b"".join(export.export_lines(loaded, fmt)) == data


def test_csv_keeps_null_apart_from_empty_and_quotes_the_user_agent() -> None:
    events = tricky_events()
    rows = list(
        csv.reader(io.StringIO(b"".join(export.export_lines(events, ExportFormat.CSV)).decode(), newline=""))
    )
    header, first, second, third, fourth = rows
    columns = dict(zip(header, zip(first, second, third, fourth, strict=True), strict=True))
    assert columns["user_agent"] == ('""', "\"=cmd|' /C calc'!A0\"", '"null"', "null")
    assert columns["ip_address"] == ("null", '"192.0.2.9"', '"fe80::1%eth0"', '"2001:db8::1"')
    assert columns["details"][0] == "{}"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "[]",
        "{",
        '{"seq": NaN}',
        json.dumps({**event_record(make_events(1)[0]), "extra": 1}),
        json.dumps({k: v for k, v in event_record(make_events(1)[0]).items() if k != "actor"}),
        json.dumps(event_record(make_events(1)[0]))[:-1] + ', "seq": 2}',
    ],
)
def test_malformed_lines_are_format_errors(line: str) -> None:
    with pytest.raises(export_format.ExportFormatError):
        export_format.parse_jsonl_line(line)


def test_csv_with_another_header_is_refused() -> None:
    with pytest.raises(export_format.ExportFormatError):
        list(export_format.read_csv(io.StringIO("a,b\r\n1,2\r\n")))


class FakeS3:
    def __init__(self, *, fail_part: int | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.parts: dict[str, list[bytes]] = {}
        self.aborted: list[str] = []
        self.fail_part = fail_part

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, ContentType: str) -> None:
        self.objects[Key] = Body

    def create_multipart_upload(self, *, Bucket: str, Key: str, ContentType: str) -> dict[str, str]:
        self.parts[Key] = []
        return {"UploadId": "u1"}

    def upload_part(
        self, *, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes
    ) -> dict[str, str]:
        if PartNumber == self.fail_part:
            raise RuntimeError("connection reset")
        assert PartNumber == len(self.parts[Key]) + 1
        self.parts[Key].append(Body)
        return {"ETag": f"e{PartNumber}"}

    def complete_multipart_upload(
        self, *, Bucket: str, Key: str, UploadId: str, MultipartUpload: Any
    ) -> None:
        assert [p["PartNumber"] for p in MultipartUpload["Parts"]] == list(range(1, len(self.parts[Key]) + 1))
        self.objects[Key] = b"".join(self.parts[Key])

    def abort_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str) -> None:
        self.aborted.append(Key)


def test_large_upload_goes_in_parts_of_the_part_size() -> None:
    s3 = FakeS3()
    store = export.S3ExportStore(s3, "bucket", part_size=10)  # type: ignore[arg-type]
    store.upload("k", [b"abc"] * 9, content_type="text/csv")
    assert s3.objects["k"] == b"abc" * 9 and [len(p) for p in s3.parts["k"]] == [10, 10, 7]


def test_small_upload_is_one_put() -> None:
    s3 = FakeS3()
    export.S3ExportStore(s3, "bucket", part_size=10).upload("k", [b"abc"], content_type="x")  # type: ignore[arg-type]
    assert s3.objects["k"] == b"abc" and "k" not in s3.parts


def test_failed_part_aborts_the_upload() -> None:
    s3 = FakeS3(fail_part=2)
    store = export.S3ExportStore(s3, "bucket", part_size=10)  # type: ignore[arg-type]
    with pytest.raises(export.ExportStoreError):
        store.upload("k", [b"x" * 35], content_type="x")
    assert s3.aborted == ["k"] and "k" not in s3.objects


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def upload(self, key: str, chunks: Any, *, content_type: str) -> None:
        self.objects[key] = b"".join(chunks)


class FakeLinks:
    """Links whose signing session ends ``session_s`` after ``now`` (like a short role session)."""

    def __init__(self, *, session_s: int = 3600, fail: bool = False) -> None:
        self.session_s = session_s
        self.fail = fail
        self.signed: list[tuple[UUID, list[str]]] = []

    def sign(self, export_id: UUID, keys: Any, *, expires_in: int, now: datetime) -> DownloadLinks:
        if self.fail:
            raise DownloadLinkError("sts down")
        self.signed.append((export_id, list(keys)))
        return DownloadLinks(
            urls=tuple(f"https://exports.example/{key}?X-Amz-Expires={expires_in}" for key in keys),
            expires_at=min(now + timedelta(seconds=expires_in), now + timedelta(seconds=self.session_s)),
        )


SIGNER = LocalSigner.generate()
EVENTS = make_events(12)
CHECKPOINTS = sign_checkpoints(EVENTS, [0, 3, 3, 7, 12], SIGNER)


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> FakeLog:
    return FakeLog(EVENTS, CHECKPOINTS).install(monkeypatch)


def create(
    request: ExportRequest, sink: MemoryAuditSink | None = None, links: FakeLinks | None = None
) -> tuple[Any, MemoryStore, MemoryAuditSink]:
    store, sink = MemoryStore(), sink or MemoryAuditSink()
    out = export.create_export(
        fake_db(),
        principal(),
        request,
        store=store,
        links=links or FakeLinks(),
        sink=sink,
        url_expiry_s=900,
        now=T0,
        page_size=5,
    )
    return out, store, sink


def test_export_writes_events_and_manifest_and_is_audited(log: FakeLog) -> None:
    # When a JSONL export of seq 4..7 is created
    out, store, sink = create(ExportRequest(format=ExportFormat.JSONL, from_seq=4, to_seq=7))
    # Then the events file holds exactly seq 4..7
    events_key, checkpoints_key = export.object_keys(principal().org_id, out.export_id, ExportFormat.JSONL)
    lines = store.objects[events_key].decode().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [4, 5, 6, 7] and out.events == 4
    # And the manifest names the range and the covering checkpoints (sizes 3, 3, 7)
    manifest = export_format.ExportManifest.model_validate_json(store.objects[checkpoints_key])
    assert (manifest.from_seq, manifest.to_seq, manifest.events) == (4, 7, 4)
    assert [c.head.number for c in manifest.checkpoints] == [2, 3, 4]
    # And both files are linked, with the configured expiry
    assert out.url.endswith(f"{events_key}?X-Amz-Expires=900") and out.expires_at == T0 + timedelta(
        seconds=900
    )
    assert out.checkpoints_url.endswith(f"{checkpoints_key}?X-Amz-Expires=900")
    # And one audit.export_created event was published, with no personal data
    (event,) = sink.events
    assert event.event_type == "audit.export_created" and event.resource == f"audit_export:{out.export_id}"
    assert event.details == {"format": "jsonl", "from_seq": 4, "to_seq": 7, "events": 4}


def test_whole_log_export_covers_every_checkpoint(log: FakeLog) -> None:
    out, store, _ = create(ExportRequest(format=ExportFormat.CSV))
    _, checkpoints_key = export.object_keys(principal().org_id, out.export_id, ExportFormat.CSV)
    manifest = export_format.ExportManifest.model_validate_json(store.objects[checkpoints_key])
    assert (out.from_seq, out.to_seq, out.events) == (1, 12, 12) and len(manifest.checkpoints) == 5


def test_export_is_refused_when_the_audit_trail_is_down(log: FakeLog) -> None:
    with pytest.raises(AuditUnavailableError):
        create(ExportRequest(format=ExportFormat.CSV), MemoryAuditSink(fail=True))


def test_expires_at_is_the_signing_sessions_not_the_configured_expiry(log: FakeLog) -> None:
    # Given links whose signing session ends 600 s from now, before the configured 900 s
    links = FakeLinks(session_s=600)
    # When an export is created
    out, _, _ = create(ExportRequest(format=ExportFormat.CSV), links=links)
    # Then the stated expiry is the session's end, and the export's own id was signed for
    assert out.expires_at == T0 + timedelta(seconds=600)
    assert [export_id for export_id, _ in links.signed] == [out.export_id]


def test_no_links_no_audit_event(log: FakeLog) -> None:
    # Given links that cannot be signed (STS down)
    sink = MemoryAuditSink()
    # When an export is created, Then it fails with the typed 503 and records no export event
    with pytest.raises(DownloadLinkError) as raised:
        create(ExportRequest(format=ExportFormat.CSV), sink, FakeLinks(fail=True))
    assert raised.value.status == 503 and sink.events == []


@pytest.mark.parametrize(("from_seq", "to_seq"), [(5, 4), (13, None), (None, 13), (1, 99)])
def test_bad_ranges_are_400(log: FakeLog, from_seq: int | None, to_seq: int | None) -> None:
    with pytest.raises(ValidationFailedError):
        create(ExportRequest(format=ExportFormat.CSV, from_seq=from_seq, to_seq=to_seq))


def test_export_request_forbids_extra_fields_and_bad_values() -> None:
    from pydantic import ValidationError

    for body in ({"format": "xml"}, {"format": "csv", "from_seq": 0}, {"format": "csv", "bucket": "x"}):
        with pytest.raises(ValidationError):
            ExportRequest.model_validate(body)
