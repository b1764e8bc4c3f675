"""`compliance audit verify`: check an exported audit log offline (files only: no AWS, no database).

Input: the export (``events.jsonl`` or ``events.csv``, formats in
:mod:`compliance.audit.export_format`), its ``checkpoints.json`` (the export manifest, or a bare
JSON list of signed checkpoints) and the signing key's public key (PEM or DER, as
``GET /v1/audit/public-key`` or ``kms get-public-key`` give it).

Checks, in order (the first failure is the verdict):

1. every checkpoint's ECDSA signature with the public key, its organisation, and the chain of
   checkpoints (``previous_head_hash`` of number n+1 is the head hash of n; tree sizes never
   shrink) wherever consecutive numbers are present;
2. the events: ``seq`` continuity from the export's first ``seq``, ``prev_hash`` links and every
   ``event_hash`` recomputed from the record (RFC 8785);
3. at each checkpoint's ``tree_size`` inside the export, ``last_event_hash`` (and, when the export
   starts at ``seq`` 1, the RFC 6962 root recomputed over the first ``tree_size`` leaves);
4. the export covers the range its manifest states (a dropped last line is ``truncated``).

What cannot be checked is listed, not passed over: roots need the log from ``seq`` 1; the link of
the first event of a partial export to its predecessor needs a checkpoint at that size; links
between checkpoints with missing numbers in between.

Exit status: 0 valid, 1 invalid (the first bad ``seq`` or checkpoint and why), 2 unusable input.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from pydantic import ValidationError

from compliance.audit import export_format, merkle
from compliance.audit.chain import GENESIS_HASH, verify_chain
from compliance.audit.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointSignatureError,
    SignedCheckpoint,
    head_hash,
    load_public_key,
    parse_checkpoint_json,
    verify_signature,
)
from compliance.audit.events import StoredAuditEvent
from compliance.audit.export_format import EXPORT_FORMAT, ExportFormatError, ExportManifest

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNUSABLE = 2

MALFORMED_EVENT = "malformed_event"
CHECKPOINT_SIGNATURE = "checkpoint_signature"
CHECKPOINT_ORG_MISMATCH = "checkpoint_org_mismatch"
CHECKPOINT_CHAIN_BROKEN = "checkpoint_chain_broken"
CHECKPOINT_MISMATCH = "checkpoint_mismatch"
CHECKPOINT_ROOT_MISMATCH = "checkpoint_root_mismatch"
TRUNCATED = "truncated"


class UnusableInputError(Exception):
    """The input cannot be verified at all (missing, unreadable or not in the export format)."""


@dataclass
class Report:
    """The verdict (printed as text, or as one JSON object with ``--json``)."""

    valid: bool
    export: str
    format: str
    from_seq: int | None = None
    to_seq: int | None = None
    events: int = 0
    first_bad_seq: int | None = None
    checkpoint: int | None = None
    reason: str | None = None
    detail: str = ""
    checkpoints_signed: int = 0
    checkpoints_matched: int = 0
    not_checked: list[str] = field(default_factory=list)


@dataclass
class _Inputs:
    export: Path
    fmt: str
    public_key: Any
    checkpoints: list[SignedCheckpoint]
    manifest: ExportManifest | None


def verify(export: Path, *, checkpoints: Path | None, public_key: Path, as_json: bool) -> int:
    """Verify ``export`` and print the verdict; the exit status (0 valid, 1 invalid, 2 unusable)."""
    try:
        inputs = _load(export, checkpoints, public_key)
        report = verify_export(inputs)
    except UnusableInputError as exc:
        if as_json:
            print(json.dumps({"valid": None, "export": str(export), "error": str(exc)}))
        else:
            print(f"cannot verify {export}: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    _print(report, as_json)
    return EXIT_VALID if report.valid else EXIT_INVALID


# ------------------------------------------------------------------------------ loading


def _load(export: Path, checkpoints: Path | None, public_key: Path) -> _Inputs:
    try:
        key = load_public_key(public_key.read_bytes())
    except OSError as exc:
        raise UnusableInputError(f"cannot read the public key ({exc.strerror})") from None
    except ValueError as exc:
        raise UnusableInputError(str(exc)) from None
    checkpoints_path = checkpoints or export.parent / "checkpoints.json"
    try:
        document = export_format.loads(checkpoints_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnusableInputError(
            f"cannot read the checkpoints file {checkpoints_path} ({exc.strerror})"
        ) from None
    except (ExportFormatError, UnicodeDecodeError):
        raise UnusableInputError("the checkpoints file is not JSON") from None
    manifest, signed = _checkpoints(document)
    if not export.is_file():
        raise UnusableInputError(f"no export file {export}")
    fmt = _format(export, manifest)
    return _Inputs(export, fmt, key, signed, manifest)


def _checkpoints(document: Any) -> tuple[ExportManifest | None, list[SignedCheckpoint]]:
    try:
        if isinstance(document, dict) and document.get("format") == EXPORT_FORMAT:
            manifest = ExportManifest.model_validate(document)
            return manifest, list(manifest.checkpoints)
        if isinstance(document, list):
            return None, [_checkpoint(item) for item in document]
    except (ValidationError, ValueError):
        raise UnusableInputError("the checkpoints file holds malformed checkpoints") from None
    raise UnusableInputError("the checkpoints file is neither an export manifest nor a list of checkpoints")


def _checkpoint(item: Any) -> SignedCheckpoint:
    if isinstance(item, dict) and item.get("format") == CHECKPOINT_FORMAT:  # the anchor document
        return parse_checkpoint_json(json.dumps(item))
    return SignedCheckpoint.model_validate(item)


def _format(export: Path, manifest: ExportManifest | None) -> str:
    suffix = export.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "csv"):
        return suffix
    if manifest is not None:
        return manifest.events_format
    try:
        with export.open("rb") as stream:
            start = stream.read(1)
    except OSError as exc:
        raise UnusableInputError(f"cannot read {export} ({exc.strerror})") from None
    return "jsonl" if start == b"{" else "csv"


def _open(inputs: _Inputs) -> tuple[IO[str], Iterator[export_format.ParsedLine]]:
    try:
        # CSV: the csv module splits rows; JSONL: LF only (JCS leaves U+2028 raw, never a raw CR/LF).
        stream = inputs.export.open(encoding="utf-8", newline="" if inputs.fmt == "csv" else "\n")
    except OSError as exc:
        raise UnusableInputError(f"cannot read {inputs.export} ({exc.strerror})") from None
    lines = _decoded(stream)
    try:
        parsed = export_format.read_csv(lines) if inputs.fmt == "csv" else export_format.read_jsonl(lines)
        first = next(parsed, None)
    except ExportFormatError as exc:
        stream.close()
        raise UnusableInputError(str(exc)) from None
    except _DecodeError:
        stream.close()
        raise UnusableInputError("the export is not UTF-8 text") from None
    if first is None:
        stream.close()
        raise UnusableInputError("the export holds no events")
    return stream, chain([first], _stop_on_decode_error(parsed))


class _DecodeError(Exception):
    pass


def _decoded(stream: IO[str]) -> Iterator[str]:
    try:
        yield from stream
    except UnicodeDecodeError:
        raise _DecodeError from None


def _stop_on_decode_error(parsed: Iterator[export_format.ParsedLine]) -> Iterator[export_format.ParsedLine]:
    try:
        yield from parsed
    except _DecodeError:
        yield ExportFormatError("a line is not UTF-8 text")


def _is_empty_export(inputs: _Inputs) -> bool:
    """The manifest says 0 events, no checkpoint covers any, and the file holds no record."""
    manifest = inputs.manifest
    if manifest is None or manifest.events != 0 or any(cp.head.tree_size for cp in inputs.checkpoints):
        return False
    expected = export_format.csv_header() if inputs.fmt == "csv" else b""
    try:
        return inputs.export.read_bytes() == expected
    except OSError:
        return False


def _has_events(inputs: _Inputs) -> bool:
    stream, parsed = _open(inputs)
    with stream:
        return any(isinstance(item, StoredAuditEvent) for item in parsed)


# ------------------------------------------------------------------------------ verifying


def verify_export(inputs: _Inputs) -> Report:
    """The verdict on an export (raises UnusableInputError when nothing in it is an event)."""
    report = Report(valid=True, export=str(inputs.export), format=inputs.fmt)
    if _is_empty_export(inputs):  # an export of an empty log: nothing to check but the checkpoints
        report.from_seq, report.to_seq = 1, 0
        _checkpoint_failure(inputs, sorted(inputs.checkpoints, key=lambda cp: cp.head.number), report)
        return report
    if not _has_events(inputs):
        raise UnusableInputError("no line of the export is an audit event")
    ordered = sorted(inputs.checkpoints, key=lambda cp: cp.head.number)
    if _checkpoint_failure(inputs, ordered, report):
        return report
    stream, parsed = _open(inputs)
    with stream:
        _verify_events(inputs, ordered, parsed, report)
    return report


def _fail(
    report: Report, reason: str, detail: str, *, seq: int | None = None, checkpoint: int | None = None
) -> bool:
    report.valid = False
    report.reason = reason
    report.detail = detail
    report.first_bad_seq = seq
    report.checkpoint = checkpoint
    return True


def _checkpoint_failure(inputs: _Inputs, ordered: list[SignedCheckpoint], report: Report) -> bool:
    org = None if inputs.manifest is None else inputs.manifest.org_id
    previous: SignedCheckpoint | None = None
    for checkpoint in ordered:
        head = checkpoint.head
        try:
            verify_signature(checkpoint, inputs.public_key)
        except CheckpointSignatureError:
            return _fail(
                report,
                CHECKPOINT_SIGNATURE,
                "the signature does not verify with this public key",
                checkpoint=head.number,
            )
        report.checkpoints_signed += 1
        if org is not None and head.org_id != org:
            return _fail(
                report,
                CHECKPOINT_ORG_MISMATCH,
                "a checkpoint of another organisation",
                checkpoint=head.number,
            )
        org = head.org_id
        if previous is not None:
            if head.number == previous.head.number:
                return _fail(
                    report, CHECKPOINT_CHAIN_BROKEN, "two checkpoints with one number", checkpoint=head.number
                )
            if head.tree_size < previous.head.tree_size:
                return _fail(report, CHECKPOINT_CHAIN_BROKEN, "the tree shrank", checkpoint=head.number)
            if head.number == previous.head.number + 1:
                if head.previous_head_hash != head_hash(previous.head):
                    return _fail(
                        report,
                        CHECKPOINT_CHAIN_BROKEN,
                        "previous_head_hash is not the head hash of the checkpoint before",
                        checkpoint=head.number,
                    )
            else:
                report.not_checked.append(
                    f"link from checkpoint {previous.head.number} to {head.number}"
                    " (numbers in between are missing)"
                )
        previous = checkpoint
    if not ordered:
        report.not_checked.append(
            "checkpoints (the file lists none): events were checked against each other only"
        )
    return False


@dataclass
class _Tree:
    """Per-event bookkeeping while the chain is verified: Merkle frontier and checkpoint matches."""

    by_size: dict[int, list[SignedCheckpoint]]
    with_root: bool
    stack: list[tuple[int, bytes]] = field(default_factory=list)
    last_seq: int = 0
    failure: tuple[str, str, int, int] | None = None
    matched: int = 0

    def accept(self, event: StoredAuditEvent, *, first: bool) -> None:
        """Called once the chain has accepted ``event``."""
        if first:  # a checkpoint at the size just before the export names this event's prev_hash
            for checkpoint in self.by_size.get(event.seq - 1, []):
                self._compare(checkpoint, event.prev_hash, root=None)
        if self.with_root:
            height, node = 0, merkle.leaf_hash(bytes.fromhex(event.event_hash))
            while self.stack and self.stack[-1][0] == height:
                node = merkle.node_hash(self.stack.pop()[1], node)
                height += 1
            self.stack.append((height, node))
        self.last_seq = event.seq
        for checkpoint in self.by_size.get(event.seq, []):
            self._compare(checkpoint, event.event_hash, root=self._root() if self.with_root else None)

    def _root(self) -> str:
        acc = self.stack[-1][1]
        for _, node in reversed(self.stack[:-1]):
            acc = merkle.node_hash(node, acc)
        return merkle.to_hex(acc)

    def _compare(self, checkpoint: SignedCheckpoint, event_hash: str, *, root: str | None) -> None:
        head = checkpoint.head
        if self.failure is not None:
            return
        if event_hash != head.last_event_hash:
            self.failure = (
                CHECKPOINT_MISMATCH,
                "the event hash differs from the checkpoint's",
                head.tree_size,
                head.number,
            )
        elif root is not None and root != head.root_hash:
            self.failure = (
                CHECKPOINT_ROOT_MISMATCH,
                "the Merkle root differs from the checkpoint's",
                head.tree_size,
                head.number,
            )
        else:
            self.matched += 1


def _verify_events(
    inputs: _Inputs,
    ordered: list[SignedCheckpoint],
    parsed: Iterator[export_format.ParsedLine],
    report: Report,
) -> None:
    manifest = inputs.manifest
    first = next(parsed)
    first_event = first if isinstance(first, StoredAuditEvent) else None
    start = manifest.from_seq if manifest is not None else (first_event.seq if first_event else 1)
    org: UUID | None = (
        manifest.org_id if manifest is not None else (first_event.org_id if first_event else None)
    )
    if start == 1:
        start_prev = GENESIS_HASH
    elif first_event is not None and first_event.seq == start:
        start_prev = first_event.prev_hash
    else:
        start_prev = GENESIS_HASH  # the seq check fails first
    by_size: dict[int, list[SignedCheckpoint]] = {}
    for checkpoint in ordered:
        by_size.setdefault(checkpoint.head.tree_size, []).append(checkpoint)
    tree = _Tree(by_size, with_root=start == 1)
    malformed: list[tuple[int, ExportFormatError]] = []

    def accepted(items: Iterable[export_format.ParsedLine]) -> Iterator[StoredAuditEvent]:
        for line, item in enumerate(items, start=1 + (1 if inputs.fmt == "csv" else 0)):
            if isinstance(item, ExportFormatError):
                malformed.append((line, item))
                return
            yield item
            tree.accept(item, first=tree.last_seq == 0 and item.seq == start)
            if tree.failure is not None:
                return

    verdict = verify_chain(
        accepted(chain([first], parsed)), start_seq=start, start_prev_hash=start_prev, org_id=org
    )
    report.from_seq = start
    report.events = verdict.checked
    report.to_seq = start + verdict.checked - 1
    report.checkpoints_matched = tree.matched
    if not verdict.valid:
        _fail(report, str(verdict.reason), verdict.detail, seq=verdict.first_bad_seq)
        return
    if tree.failure is not None:
        reason, detail, seq, number = tree.failure
        _fail(report, reason, detail, seq=seq, checkpoint=number)
        return
    if malformed:
        line, error = malformed[0]
        _fail(report, MALFORMED_EVENT, f"line {line}: {error}", seq=start + verdict.checked)
        return
    last = start + verdict.checked - 1
    if manifest is not None and last < manifest.to_seq:
        _fail(
            report,
            TRUNCATED,
            f"the export ends at seq {last}, its manifest says {manifest.to_seq}",
            seq=last + 1,
        )
        return
    if start > 1:
        report.not_checked.append("Merkle roots (the export does not start at seq 1)")
        if not by_size.get(start - 1):
            report.not_checked.append(
                f"the link of seq {start} to seq {start - 1} (no checkpoint at that size)"
            )
    for checkpoint in ordered:
        if checkpoint.head.tree_size > last:
            report.not_checked.append(
                f"checkpoint {checkpoint.head.number} against the events"
                f" (it covers seq {checkpoint.head.tree_size}, beyond the export)"
            )
        elif checkpoint.head.tree_size < start - 1:
            report.not_checked.append(
                f"checkpoint {checkpoint.head.number} against the events (before the export)"
            )
    if ordered and all(cp.head.tree_size < last for cp in ordered):
        report.not_checked.append(
            f"events after seq {ordered[-1].head.tree_size} (no checkpoint covers them yet)"
        )


# ------------------------------------------------------------------------------ output


def _print(report: Report, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(report)))
        return
    if report.valid:
        print(
            f"VALID: {report.export} ({report.format}),"
            f" events {report.from_seq}..{report.to_seq} ({report.events})"
        )
    else:
        where = []
        if report.first_bad_seq is not None:
            where.append(f"seq {report.first_bad_seq}")
        if report.checkpoint is not None:
            where.append(f"checkpoint {report.checkpoint}")
        print(f"INVALID at {', '.join(where) or 'the checkpoints'}: {report.reason} ({report.detail})")
        print(f"  {report.events} events verified before the failure")
    print(
        f"  checkpoints: {report.checkpoints_signed} signatures valid,"
        f" {report.checkpoints_matched} matched the events"
    )
    for item in report.not_checked:
        print(f"  not checked: {item}")
