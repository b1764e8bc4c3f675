"""The scheduled PII sweep: personal data found where the data catalog says there is none.

Every run, for each organisation, inside its row-level-security scope (``Database.tenant``), one
read-only transaction samples each column the catalog lists as ``personal = false`` and not
``encrypted``, of a text-like type, in a table with tenant rows (an ``org_id`` column; platform
tables are skipped), and scans the sample with :func:`compliance.pii.scanner.scan`.

Bounds: the most recent ``rows_per_column`` rows (by a time column when the table has one), each
value cut to ``value_chars`` characters, at most ``column_bytes`` per column and ``org_bytes`` per
organisation, shared out over its columns so a large early column cannot starve the later ones.

What leaves the sweep are counts: columns scanned, rows and bytes sampled, and per (table, column,
PII type) how many findings in how many rows. Never a value, a span or a row key. Each organisation
gets one ``pii.sweep_completed`` audit event (result ``error`` when its sweep failed); one
organisation's failure does not stop the others. The sweep writes nothing to the database, and the
event id is derived from the run and organisation, so a repeated delivery of a run is recorded once.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.audit import emit
from compliance.audit.events import AuditResult
from compliance.db import pii_sweep
from compliance.errors import DomainError
from compliance.observability import logger, metrics
from compliance.pii.errors import BinaryInputError, NonUtf8InputError, ScanInputTooLargeError
from compliance.pii.findings import PiiType
from compliance.pii.scanner import DEFAULT_REGIONS, scan

if TYPE_CHECKING:
    import psycopg

    from compliance.audit.sink import AuditSink
    from compliance.config import PiiSweepSettings
    from compliance.db.connection import Database
    from compliance.db.pii_sweep import SweepColumn

__all__ = [
    "PERSONAL_TYPES",
    "ColumnFinding",
    "OrgSweep",
    "Status",
    "SweepLimits",
    "SweepRunResult",
    "run_id_of",
    "scan_values",
    "sweep_all",
    "sweep_org",
]

# Secrets are not personal data: the sweep looks for what the catalog could have missed about people.
PERSONAL_TYPES: tuple[PiiType, ...] = tuple(t for t in PiiType if t is not PiiType.SECRET)
# The sample's time column, when a table has several: creation first, then event times.
TIME_PREFERENCE: tuple[str, ...] = ("created_at", "occurred_at", "received_at", "appended_at", "issued_at")
FINDINGS_METRIC = "PiiSweepFindings"
FAILED_METRIC = "PiiSweepFailed"
INCOMPLETE_METRIC = "PiiSweepIncomplete"
# Namespace of the audit event ids derived from (run, organisation, result).
_EVENT_NAMESPACE = UUID("9b0c6c7e-5f7e-4a0e-9d2b-2b8f6f3a5c11")
_UNSCANNABLE = (BinaryInputError, NonUtf8InputError, ScanInputTooLargeError)


@dataclass(frozen=True)
class SweepLimits:
    rows_per_column: int = 1000
    value_chars: int = 4096
    column_bytes: int = 262_144
    org_bytes: int = 2_097_152
    min_confidence: float = 0.7
    statement_timeout_ms: int = 30_000
    types: tuple[PiiType, ...] = PERSONAL_TYPES
    regions: tuple[str, ...] = DEFAULT_REGIONS
    # Stop starting organisations when less than this is left of the invocation.
    reserve_ms: int = 20_000

    @classmethod
    def from_settings(cls, settings: PiiSweepSettings) -> SweepLimits:
        return cls(
            rows_per_column=settings.pii_sweep_rows_per_column,
            value_chars=settings.pii_sweep_value_chars,
            column_bytes=settings.pii_sweep_column_bytes,
            org_bytes=settings.pii_sweep_org_bytes,
            min_confidence=settings.pii_sweep_min_confidence,
            statement_timeout_ms=settings.pii_sweep_statement_timeout_ms,
        )


class Status(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    """Database, scan or audit failure: reported and counted, retried by the next run."""
    NOT_REACHED = "not_reached"
    """The invocation ran out of time before this organisation (the next run starts elsewhere)."""


@dataclass(frozen=True)
class ColumnFinding:
    """``count`` findings of ``pii_type`` in ``rows`` sampled values of ``table.column``."""

    table: str
    column: str
    pii_type: str
    count: int
    rows: int

    def as_details(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "column": self.column,
            "type": self.pii_type,
            "count": self.count,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class ValueScan:
    """Scan result of one column's sample: findings and rows per type, values the scanner refused."""

    findings: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    unscannable: int = 0


@dataclass(frozen=True)
class OrgSweep:
    """What the sweep did for one organisation: ids and counts only."""

    org_id: UUID
    status: Status
    columns_scanned: int = 0
    rows_sampled: int = 0
    bytes_sampled: int = 0
    capped_columns: int = 0
    unscannable_values: int = 0
    findings: tuple[ColumnFinding, ...] = ()
    reason: str | None = None

    @property
    def findings_total(self) -> int:
        return sum(f.count for f in self.findings)


@dataclass(frozen=True)
class SweepRunResult:
    run_id: UUID
    columns: int
    outcomes: list[OrgSweep]

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def findings_total(self) -> int:
        return sum(o.findings_total for o in self.outcomes)

    def summary(self) -> dict[str, Any]:
        """Counts per status and the organisations that need attention (ids and counts only)."""
        return {
            "run_id": str(self.run_id),
            "organisations": len(self.outcomes),
            "columns": self.columns,
            **{status.value: self.count(status) for status in Status},
            "findings": self.findings_total,
            "orgs_with_findings": [str(o.org_id) for o in self.outcomes if o.findings],
            "failed_orgs": [str(o.org_id) for o in self.outcomes if o.status is Status.FAILED],
        }


def run_id_of(event: Mapping[str, Any]) -> UUID:
    """The run's id: the EventBridge event id (the same for a redelivery of one schedule), or a
    new one for an invocation without it."""
    try:
        return UUID(str(event["id"]))
    except (KeyError, ValueError, TypeError):
        return uuid.uuid4()


def sweep_all(
    db: Database,
    sink: AuditSink,
    *,
    run_id: UUID,
    now: datetime,
    limits: SweepLimits | None = None,
    time_left_ms: Callable[[], int] | None = None,
) -> SweepRunResult:
    """Sweep every organisation. Failing to list them or the columns raises (``DataAccessError``);
    an organisation's failure is reported in its outcome and the run goes on."""
    limits = limits or SweepLimits()
    with db.unscoped() as conn:
        orgs = pii_sweep.org_ids(conn)
        columns = pii_sweep.sweep_columns(conn, TIME_PREFERENCE)
    # Start at another organisation each day: a run that runs out of time does not always
    # leave the same ones out.
    if orgs:
        start = now.toordinal() % len(orgs)
        orgs = orgs[start:] + orgs[:start]
    outcomes: list[OrgSweep] = []
    for org_id in orgs:
        if time_left_ms is not None and time_left_ms() < limits.reserve_ms:
            outcomes.append(OrgSweep(org_id, Status.NOT_REACHED))
            continue
        outcomes.append(sweep_org(db, sink, org_id, columns, run_id=run_id, now=now, limits=limits))
    result = SweepRunResult(run_id, len(columns), outcomes)
    metrics.add_metric(name=FINDINGS_METRIC, unit="Count", value=result.findings_total)
    not_reached = result.count(Status.NOT_REACHED)
    if not_reached:
        metrics.add_metric(name=INCOMPLETE_METRIC, unit="Count", value=not_reached)
        logger.warning("pii sweep ran out of time", extra={"run_id": str(run_id), "not_reached": not_reached})
    return result


def sweep_org(
    db: Database,
    sink: AuditSink,
    org_id: UUID,
    columns: Sequence[SweepColumn],
    *,
    run_id: UUID,
    now: datetime,
    limits: SweepLimits,
) -> OrgSweep:
    """Sample and scan one organisation's columns, then publish its audit event (never raises)."""
    try:
        with db.tenant(org_id) as conn:
            outcome = _sweep_in_scope(conn, org_id, columns, limits)
        _publish(sink, outcome, run_id=run_id, now=now)
    except Exception as exc:  # one organisation must not stop the run
        return _failed(sink, org_id, exc, run_id=run_id, now=now)
    logger.info(
        "pii sweep completed",
        extra={
            "org_id": str(org_id),
            "columns_scanned": outcome.columns_scanned,
            "rows_sampled": outcome.rows_sampled,
            "bytes_sampled": outcome.bytes_sampled,
            "findings": [f.as_details() for f in outcome.findings],
        },
    )
    return outcome


def scan_values(values: Iterable[str], limits: SweepLimits) -> ValueScan:
    """Findings and rows with a finding per PII type over ``values`` (each scanned on its own, so a
    match never spans two rows); values the scanner refuses (binary) are counted, not raised."""
    findings: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    unscannable = 0
    for value in values:
        try:
            found = scan(value, regions=limits.regions, types=limits.types)
        except _UNSCANNABLE:
            unscannable += 1
            continue
        types = [str(f.type) for f in found if f.confidence >= limits.min_confidence]
        findings.update(types)
        rows.update(set(types))
    return ValueScan(findings, rows, unscannable)


def _sweep_in_scope(
    conn: psycopg.Connection[Any], org_id: UUID, columns: Sequence[SweepColumn], limits: SweepLimits
) -> OrgSweep:
    pii_sweep.set_statement_timeout(conn, limits.statement_timeout_ms)
    remaining = limits.org_bytes
    rows_sampled = bytes_sampled = capped = unscannable = scanned = 0
    findings: list[ColumnFinding] = []
    for index, column in enumerate(columns):
        # A fair share of what is left of the org's budget, never more than a column's own cap.
        budget = min(limits.column_bytes, remaining // (len(columns) - index))
        if budget < 1:
            break
        values, used = _trim(
            pii_sweep.sample(
                conn, column, rows=limits.rows_per_column, value_chars=limits.value_chars, max_bytes=budget
            ),
            budget,
        )
        scanned += 1
        rows_sampled += len(values)
        bytes_sampled += used
        remaining -= used
        capped += used >= budget
        result = scan_values(values, limits)
        unscannable += result.unscannable
        findings += [
            ColumnFinding(column.table, column.column, pii_type, count, result.rows[pii_type])
            for pii_type, count in sorted(result.findings.items())
        ]
    return OrgSweep(
        org_id,
        Status.COMPLETED,
        columns_scanned=scanned,
        rows_sampled=rows_sampled,
        bytes_sampled=bytes_sampled,
        capped_columns=capped,
        unscannable_values=unscannable,
        findings=tuple(findings),
    )


def _trim(values: list[str], max_bytes: int) -> tuple[list[str], int]:
    """``values`` cut to ``max_bytes`` in UTF-8 (the last one shortened), and the bytes kept."""
    kept: list[str] = []
    used = 0
    for value in values:
        encoded = value.encode("utf-8")
        room = max_bytes - used
        if room <= 0:
            break
        if len(encoded) > room:
            # The cap is reached inside this value: keep its whole characters, and stop.
            value = encoded[:room].decode("utf-8", "ignore")
            kept.append(value)
            return kept, used + len(value.encode("utf-8"))
        kept.append(value)
        used += len(encoded)
    return kept, used


def _event_id(run_id: UUID, org_id: UUID, result: AuditResult) -> UUID:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{run_id}:{org_id}:{result.value}")


def _publish(sink: AuditSink, outcome: OrgSweep, *, run_id: UUID, now: datetime) -> None:
    extra: dict[str, Any] = {}
    if outcome.capped_columns:
        extra["capped_columns"] = outcome.capped_columns
    if outcome.unscannable_values:
        extra["unscannable_values"] = outcome.unscannable_values
    event = emit.pii_sweep_completed(
        event_id=_event_id(run_id, outcome.org_id, AuditResult.SUCCESS),
        org_id=outcome.org_id,
        run_id=run_id,
        result=AuditResult.SUCCESS,
        columns_scanned=outcome.columns_scanned,
        rows_sampled=outcome.rows_sampled,
        bytes_sampled=outcome.bytes_sampled,
        findings=[f.as_details() for f in outcome.findings],
        occurred_at=now,
        extra=extra,
    )
    emit.publish(sink, [event])


def _failed(sink: AuditSink, org_id: UUID, exc: Exception, *, run_id: UUID, now: datetime) -> OrgSweep:
    reason = type(exc).__name__
    detail = exc.detail if isinstance(exc, DomainError) else "unexpected error"
    logger.error("pii sweep failed", extra={"org_id": str(org_id), "error_type": reason, "detail": detail})
    metrics.add_metric(name=FAILED_METRIC, unit="Count", value=1)
    event = emit.pii_sweep_completed(
        event_id=_event_id(run_id, org_id, AuditResult.ERROR),
        org_id=org_id,
        run_id=run_id,
        result=AuditResult.ERROR,
        columns_scanned=0,
        rows_sampled=0,
        bytes_sampled=0,
        findings=[],
        occurred_at=now,
        extra={"reason": reason},
    )
    # A refused event is counted and logged by publish (AuditPublishFailed); the outcome reports it.
    with suppress(DomainError):
        emit.publish(sink, [event])
    return OrgSweep(org_id, Status.FAILED, reason=reason)
