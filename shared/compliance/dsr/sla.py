"""The DSR SLA monitor (scheduled): requests close to or past their deadline, and verifications that
expired while their execution waits.

Per organisation, in its row-level-security scope: open requests due within ``due_soon_days`` days or
overdue are counted (metrics ``DsrDueSoon``, ``DsrOverdue``) and listed in one SNS alert (request
ids, types, regulations, deadlines and days left: no subject identifier); each expired verification's
waiting task is failed with ``VerificationExpired``, which the state machine catches to close the
request as unverified (the status change is that step's, audited there). One organisation's failure
does not stop the others; it is counted (``DsrSlaOrgFailed``) and raised at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from compliance.db import dsr_requests as dsr_repo
from compliance.db import dsr_sla, pii_sweep
from compliance.dsr.deadlines import SlaStatus, classify, days_left
from compliance.errors import DomainError
from compliance.observability import logger, metrics

if TYPE_CHECKING:
    from compliance.db.connection import Database

EXPIRED_ERROR = "VerificationExpired"
MAX_ALERT_ITEMS = 100  # an SNS message holds 256 KB; the rest is counted, the console lists them all


class TaskFailer(Protocol):
    def fail_task(self, task_token: str, error: str, cause: str) -> None: ...


class AlertPublisher(Protocol):
    def publish(self, subject: str, message: str) -> None: ...


class SlaMonitorError(DomainError):
    status = 500
    title = "SLA monitor incomplete"


@dataclass
class SlaReport:
    orgs: int = 0
    due_soon: list[dict[str, Any]] = field(default_factory=list)
    overdue: list[dict[str, Any]] = field(default_factory=list)
    expired_verifications: int = 0
    failed_orgs: list[UUID] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "orgs": self.orgs,
            "due_soon": len(self.due_soon),
            "overdue": len(self.overdue),
            "expired_verifications": self.expired_verifications,
            "failed_orgs": len(self.failed_orgs),
        }


def run_sla_monitor(
    db: Database,
    workflow: TaskFailer,
    alerts: AlertPublisher,
    *,
    now: datetime,
    due_soon_days: int,
    org_ids: Iterable[UUID] | None = None,
) -> SlaReport:
    report = SlaReport()
    if org_ids is None:
        with db.unscoped() as conn:
            org_ids = pii_sweep.org_ids(conn)
    for org_id in org_ids:
        report.orgs += 1
        try:
            _check_org(db, workflow, report, org_id, now=now, due_soon_days=due_soon_days)
        except DomainError as exc:
            report.failed_orgs.append(org_id)
            logger.error(
                "DSR SLA check failed", extra={"org_id": str(org_id), "error_type": type(exc).__name__}
            )
    metrics.add_metric(name="DsrDueSoon", unit="Count", value=len(report.due_soon))
    metrics.add_metric(name="DsrOverdue", unit="Count", value=len(report.overdue))
    metrics.add_metric(name="DsrVerificationsExpired", unit="Count", value=report.expired_verifications)
    if report.due_soon or report.overdue:
        alerts.publish(_alert_subject(report), _alert_message(report, now))
    if report.failed_orgs:
        metrics.add_metric(name="DsrSlaOrgFailed", unit="Count", value=len(report.failed_orgs))
        raise SlaMonitorError(f"{len(report.failed_orgs)} organisations could not be checked")
    return report


def _check_org(
    db: Database, workflow: TaskFailer, report: SlaReport, org_id: UUID, *, now: datetime, due_soon_days: int
) -> None:
    with db.tenant(org_id) as conn:
        due = dsr_repo.due_requests(conn, org_id, until=now + timedelta(days=due_soon_days + 1))
        waiting = dsr_sla.expired_verifications(conn, org_id, now)
    for row in due:
        status = classify(row["deadline"], now, due_soon_days)
        if status is SlaStatus.OK:
            continue
        item = {
            "request_id": str(row["id"]),
            "org_id": str(org_id),
            "type": row["type"],
            "regulation": row["regulation"],
            "status": row["status"],
            "deadline": row["deadline"].isoformat(),
            "days_left": days_left(row["deadline"], now),
        }
        (report.overdue if status is SlaStatus.OVERDUE else report.due_soon).append(item)
    for task in waiting:
        # The execution's Catch closes the request as unverified (audited by that step).
        workflow.fail_task(task.task_token, EXPIRED_ERROR, "the verification code expired unconfirmed")
        report.expired_verifications += 1


def _alert_subject(report: SlaReport) -> str:
    return f"DSR deadlines: {len(report.overdue)} overdue, {len(report.due_soon)} due soon"


def _alert_message(report: SlaReport, now: datetime) -> str:
    items = sorted(report.overdue, key=lambda i: i["deadline"]) + sorted(
        report.due_soon, key=lambda i: i["deadline"]
    )
    return json.dumps(
        {
            "checked_at": now.isoformat(),
            "overdue": len(report.overdue),
            "due_soon": len(report.due_soon),
            "requests": items[:MAX_ALERT_ITEMS],
            "truncated": max(len(items) - MAX_ALERT_ITEMS, 0),
        },
        sort_keys=True,
    )
