"""`compliance audit verify` on exports written by the export code (files only)."""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.audit import export
from compliance.audit.canonical import compute_event_hash
from compliance.audit.checkpoint import LocalSigner
from compliance.audit.download_links import DownloadLinks
from compliance.audit.events import StoredAuditEvent
from compliance.audit.export_format import ExportManifest, jsonl_line, loads
from compliance.audit.sink import MemoryAuditSink
from compliance.models.audit import ExportFormat, ExportRequest, event_record
from compliance_tools import audit_cli
from compliance_tools.cli import main
from tests.unit.audit.audit_log_fakes import T0, FakeLog, fake_db, make_events, principal, sign_checkpoints

SIGNER = LocalSigner.generate()
N = 12
EVENTS = make_events(N)
CHECKPOINTS = sign_checkpoints(EVENTS, [0, 3, 8, 10], SIGNER)


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def upload(self, key: str, chunks: Any, *, content_type: str) -> None:
        self.objects[key] = b"".join(chunks)

    def sign(self, export_id: UUID, keys: Any, *, expires_in: int, now: datetime) -> DownloadLinks:
        """Also the export's link signer (links do not matter to the offline verifier)."""
        urls = tuple(f"https://exports.example/{key}" for key in keys)
        return DownloadLinks(urls=urls, expires_at=now + timedelta(seconds=expires_in))


def write_export(
    monkeypatch: pytest.MonkeyPatch, directory: Path, fmt: ExportFormat, **range_: int
) -> tuple[Path, Path]:
    """Export EVENTS through create_export; write events.<fmt>, checkpoints.json and key.pem."""
    FakeLog(EVENTS, CHECKPOINTS).install(monkeypatch)
    store = MemoryStore()
    out = export.create_export(
        fake_db(),
        principal(),
        ExportRequest(format=fmt, **range_),
        store=store,
        links=store,
        sink=MemoryAuditSink(),
        url_expiry_s=900,
        now=T0,
    )
    events_key, checkpoints_key = export.object_keys(principal().org_id, out.export_id, fmt)
    events_path = directory / f"events.{fmt.value}"
    events_path.write_bytes(store.objects[events_key])
    (directory / "checkpoints.json").write_bytes(store.objects[checkpoints_key])
    key_path = directory / "key.pem"
    key_path.write_bytes(SIGNER.public_key_pem())
    return events_path, key_path


def run(
    events: Path, key: Path, capsys: pytest.CaptureFixture[str], **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    code = audit_cli.verify(events, checkpoints=kwargs.get("checkpoints"), public_key=key, as_json=True)
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


@pytest.fixture
def jsonl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    return write_export(monkeypatch, tmp_path, ExportFormat.JSONL)


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_valid_export_is_0(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: ExportFormat
) -> None:
    events, key = write_export(monkeypatch, tmp_path, fmt)
    code, report = run(events, key, capsys)
    assert code == 0 and report["valid"] and report["events"] == N
    assert report["checkpoints_signed"] == 4 and report["checkpoints_matched"] == 4
    assert report["not_checked"] == ["events after seq 10 (no checkpoint covers them yet)"]


def test_human_output_and_the_cli_entry_point(
    jsonl: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    events, key = jsonl
    assert main(["audit", "verify", str(events), "--public-key", str(key)]) == 0
    assert capsys.readouterr().out.startswith("VALID")


def test_partial_export_verifies_and_says_what_it_could_not_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, key = write_export(monkeypatch, tmp_path, ExportFormat.CSV, from_seq=4, to_seq=9)
    code, report = run(events, key, capsys)
    assert code == 0 and (report["from_seq"], report["to_seq"]) == (4, 9)
    # checkpoint 2 (size 3) pins seq 4's prev_hash, checkpoint 3 (size 8) seq 8's hash
    assert report["checkpoints_matched"] == 2
    assert "Merkle roots (the export does not start at seq 1)" in report["not_checked"]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def modified_line(line: bytes, **changes: Any) -> bytes:
    record = loads(line.decode())
    record.update(changes)
    return jsonl_line(record).rstrip(b"\n")


def rehashed(line: bytes, **changes: Any) -> bytes:
    """The event with ``changes`` and a recomputed (self-consistent) event_hash."""
    event = StoredAuditEvent.model_validate({**loads(line.decode()), **changes})
    event = event.model_copy(
        update={"event_hash": compute_event_hash(event, seq=event.seq, prev_hash=event.prev_hash)}
    )
    return jsonl_line(event_record(event)).rstrip(b"\n")


def mutate(lines: list[bytes], kind: str, k: int) -> tuple[list[bytes], int, str]:
    """Apply one mutation at seq k (1-based); the expected first bad seq and reason."""
    out = list(lines)
    i = k - 1
    if kind == "modify":
        out[i] = modified_line(out[i], actor="api_key:intruder")
        return out, k, "hash_mismatch"
    if kind == "delete":
        del out[i]
        return out, k, "truncated" if k == len(lines) else "seq_gap"
    if kind == "insert":
        out.insert(i, out[(i + 1) % len(out)])
        return out, k, "seq_gap" if k < len(lines) else "seq_out_of_order"
    if kind == "reorder":
        j = i + 1 if k < len(lines) else i - 1
        out[i], out[j] = out[j], out[i]
        return out, min(k, j + 1), "seq_gap"
    if kind == "corrupt":
        out[i] = out[i][:20] + b"\x00garbage" + out[i][20:]
        return out, k, audit_cli.MALFORMED_EVENT
    raise AssertionError(kind)


KINDS = ["modify", "delete", "insert", "reorder", "corrupt"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 5, N])
def test_any_changed_line_is_1_naming_the_first_bad_seq(
    jsonl: tuple[Path, Path], capsys: pytest.CaptureFixture[str], kind: str, k: int
) -> None:
    events, key = jsonl
    lines, bad_seq, reason = mutate(lines_of(events), kind, k)
    write_lines(events, lines)
    code, report = run(events, key, capsys)
    assert code == 1 and not report["valid"]
    assert (report["first_bad_seq"], report["reason"]) == (bad_seq, reason)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), k=st.integers(min_value=1, max_value=N))
def test_property_every_single_mutation_is_caught_where_it_happened(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str, k: int
) -> None:
    # Given any one deletion, insertion, reordering, modification or corruption of an exported line
    with tempfile.TemporaryDirectory() as tmp:
        events, key = write_export(monkeypatch, Path(tmp), ExportFormat.JSONL)
        capsys.readouterr()
        lines, bad_seq, reason = mutate(lines_of(events), kind, k)
        write_lines(events, lines)
        # When the export is verified, Then it is invalid at the first changed position
        code, report = run(events, key, capsys)
    assert code == 1 and (report["first_bad_seq"], report["reason"]) == (bad_seq, reason)


def test_consistent_rewrite_is_caught_by_the_checkpoint(
    jsonl: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given seq 5..12 rewritten with every hash and link recomputed (the chain alone is valid)
    events, key = jsonl
    lines = lines_of(events)
    prev = loads(lines[3].decode())["event_hash"]
    for i in range(4, N):
        lines[i] = rehashed(lines[i], actor="api_key:intruder", prev_hash=prev)
        prev = loads(lines[i].decode())["event_hash"]
    write_lines(events, lines)
    # Then the first checkpoint after the change (size 8) fails
    code, report = run(events, key, capsys)
    assert code == 1 and report["reason"] == "checkpoint_mismatch" and report["first_bad_seq"] == 8
    assert report["checkpoint"] == 3


def test_rewrite_after_the_last_checkpoint_is_not_detectable_but_said(
    jsonl: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    events, key = jsonl
    lines = lines_of(events)
    lines[11] = rehashed(lines[11], actor="api_key:intruder")
    write_lines(events, lines)
    code, report = run(events, key, capsys)
    assert code == 0 and "events after seq 10 (no checkpoint covers them yet)" in report["not_checked"]


def test_wrong_public_key_is_1(
    jsonl: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, _ = jsonl
    other = tmp_path / "other.pem"
    other.write_bytes(LocalSigner.generate().public_key_pem())
    code, report = run(events, other, capsys)
    assert code == 1 and report["reason"] == "checkpoint_signature" and report["checkpoint"] == 1


@pytest.mark.parametrize("field", ["tree_size", "root_hash", "previous_head_hash"])
def test_edited_checkpoint_is_1(
    jsonl: tuple[Path, Path], capsys: pytest.CaptureFixture[str], field: str
) -> None:
    events, key = jsonl
    path = events.parent / "checkpoints.json"
    manifest = json.loads(path.read_text())
    head = manifest["checkpoints"][2]["head"]
    head[field] = 9 if field == "tree_size" else "ab" * 32
    path.write_text(json.dumps(manifest))
    code, report = run(events, key, capsys)
    assert code == 1 and report["reason"] == "checkpoint_signature" and report["checkpoint"] == 3


def test_dropped_checkpoint_leaves_a_gap_that_is_reported(
    jsonl: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    events, key = jsonl
    path = events.parent / "checkpoints.json"
    manifest = ExportManifest.model_validate_json(path.read_text())
    path.write_text(
        manifest.model_copy(
            update={"checkpoints": [manifest.checkpoints[i] for i in (0, 1, 3)]}
        ).model_dump_json()
    )
    code, report = run(events, key, capsys)
    assert code == 0 and any("link from checkpoint 2 to 4" in item for item in report["not_checked"])


@pytest.mark.parametrize(
    "content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"hello world\n", b"a,b,c\r\n1,2,3\r\n", b"{}\n{}\n"]
)
def test_garbage_export_is_2(
    jsonl: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes
) -> None:
    _, key = jsonl
    garbage = tmp_path / "export.dat"
    garbage.write_bytes(content)
    code = audit_cli.verify(garbage, checkpoints=tmp_path / "checkpoints.json", public_key=key, as_json=True)
    assert code == 2 and json.loads(capsys.readouterr().out)["valid"] is None


def test_unusable_key_or_checkpoints_is_2(jsonl: tuple[Path, Path], tmp_path: Path) -> None:
    events, key = jsonl
    not_a_key = tmp_path / "nokey.pem"
    not_a_key.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    assert audit_cli.verify(events, checkpoints=None, public_key=not_a_key, as_json=False) == 2
    assert audit_cli.verify(events, checkpoints=tmp_path / "missing.json", public_key=key, as_json=False) == 2
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    assert audit_cli.verify(events, checkpoints=tmp_path / "bad.json", public_key=key, as_json=False) == 2


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_export_of_an_empty_log_is_valid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: ExportFormat
) -> None:
    # Given an organisation with no events yet and checkpoint 1 of the empty tree
    FakeLog([], sign_checkpoints([], [0], SIGNER)).install(monkeypatch)
    store = MemoryStore()
    out = export.create_export(
        fake_db(),
        principal(),
        ExportRequest(format=fmt),
        store=store,
        links=store,
        sink=MemoryAuditSink(),
        url_expiry_s=60,
        now=T0,
    )
    events_key, checkpoints_key = export.object_keys(principal().org_id, out.export_id, fmt)
    (tmp_path / f"events.{fmt.value}").write_bytes(store.objects[events_key])
    (tmp_path / "checkpoints.json").write_bytes(store.objects[checkpoints_key])
    (tmp_path / "key.pem").write_bytes(SIGNER.public_key_pem())
    # Then its (empty) export verifies
    code, report = run(tmp_path / f"events.{fmt.value}", tmp_path / "key.pem", capsys)
    assert code == 0 and report["events"] == 0 and report["checkpoints_signed"] == 1
