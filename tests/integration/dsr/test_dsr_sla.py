"""The DSR SLA monitor (compliance.dsr.sla, compliance.db.dsr_sla) on the migrated PostgreSQL: open
requests close to or past their deadline are classified and listed in one alert without subject
identifiers; expired verifications' waiting tasks are failed; one organisation's failure does not stop
the others."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from compliance.db import dsr_requests as repo
from compliance.db import dsr_sla
from compliance.dsr.sla import EXPIRED_ERROR, SlaMonitorError, run_sla_monitor
from compliance.errors import DataAccessError
from tests.conftest import ProvisionedDatabase
from tests.unit.dsr.fakes import MemoryWorkflow

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DUE_SOON_DAYS = 3


@dataclass
class MemoryAlerts:
    published: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, subject: str, message: str) -> None:
        self.published.append((subject, message))


class BrokenFor:
    """The database, except that one organisation's tenant scope fails as the driver would."""

    def __init__(self, db: Any, broken: uuid.UUID) -> None:
        self._db, self._broken = db, broken

    @contextmanager
    def tenant(self, org_id: uuid.UUID) -> Iterator[Any]:
        if org_id == self._broken:
            raise DataAccessError("the database is unavailable")
        with self._db.tenant(org_id) as conn:
            yield conn

    @contextmanager
    def unscoped(self) -> Iterator[Any]:
        with self._db.unscoped() as conn:
            yield conn


class Requests:
    def __init__(self, db: ProvisionedDatabase) -> None:
        self.db = db
        self.subject_ids: list[uuid.UUID] = []

    def add(
        self,
        org: uuid.UUID,
        *,
        deadline: datetime,
        status: str = "received",
        code_expires_at: datetime | None = None,
        task_token: str | None = None,
        verified_at: datetime | None = None,
    ) -> uuid.UUID:
        request_id, subject = uuid.uuid4(), uuid.uuid4()
        with self.db.owner() as conn:
            conn.execute(
                "INSERT INTO subjects (id, org_id, external_id) VALUES (%s, %s, %s)",
                (subject, org, f"person-{subject}"),
            )
        with self.db.app.tenant(org) as conn:
            repo.insert_request(
                conn,
                org,
                {
                    "id": request_id,
                    "type": "access",
                    "regulation": "gdpr",
                    "status": status,
                    "subject_id": subject,
                    "subject_key": secrets.token_bytes(32),
                    "export_formats": ["json"],
                    "corrections": None,
                    "received_at": NOW - timedelta(days=25),
                    "deadline": deadline,
                },
            )
            if code_expires_at is not None:
                repo.update_request(
                    conn,
                    org,
                    request_id,
                    code_hash=b"h" * 32,
                    code_issued_at=code_expires_at - timedelta(days=7),
                    code_expires_at=code_expires_at,
                    task_token=task_token,
                    verified_at=verified_at,
                )
        self.subject_ids.append(subject)
        return request_id


@pytest.fixture
def requests(migrated_db: ProvisionedDatabase) -> Requests:
    return Requests(migrated_db)


FINE = NOW + timedelta(days=20)


def org_count(db: ProvisionedDatabase) -> int:
    """Every organisation the monitor visits (the migrations may seed some besides the test's)."""
    with db.owner() as conn:
        row = conn.execute("SELECT count(*) FROM organisations").fetchone()
    assert row is not None
    return int(row[0])


def test_due_soon_and_overdue_requests_are_alerted_once_and_expired_verifications_failed(
    migrated_db: ProvisionedDatabase, requests: Requests
) -> None:
    # Given two organisations with open requests overdue, due soon and fine, and closed ones
    org_a, org_b = migrated_db.create_org("A"), migrated_db.create_org("B")
    overdue = requests.add(org_a, deadline=NOW - timedelta(hours=1))
    due_soon = requests.add(org_a, deadline=NOW + timedelta(days=2))
    due_soon_b = requests.add(org_b, deadline=NOW + timedelta(days=DUE_SOON_DAYS), status="running")
    requests.add(org_a, deadline=NOW + timedelta(days=DUE_SOON_DAYS + 1))  # fine
    requests.add(org_a, deadline=NOW - timedelta(days=3), status="completed")  # closed: not alerted
    # And verifications waiting on their task: one expired, one not, one expired but already closed
    requests.add(
        org_a,
        deadline=FINE,
        status="awaiting_verification",
        code_expires_at=NOW - timedelta(minutes=1),
        task_token="token-expired",
    )
    requests.add(
        org_b,
        deadline=FINE,
        status="awaiting_verification",
        code_expires_at=NOW + timedelta(minutes=1),
        task_token="token-still-valid",
    )
    requests.add(
        org_a,
        deadline=FINE,
        status="expired",
        code_expires_at=NOW - timedelta(days=1),
        task_token="token-closed",
    )
    workflow, alerts = MemoryWorkflow(), MemoryAlerts()

    # When the monitor runs over every organisation
    report = run_sla_monitor(migrated_db.app, workflow, alerts, now=NOW, due_soon_days=DUE_SOON_DAYS)

    # Then the requests are classified
    assert [i["request_id"] for i in report.overdue] == [str(overdue)]
    assert sorted(i["request_id"] for i in report.due_soon) == sorted([str(due_soon), str(due_soon_b)])
    assert report.summary() == {
        "orgs": org_count(migrated_db),
        "due_soon": 2,
        "overdue": 1,
        "expired_verifications": 1,
        "failed_orgs": 0,
    }
    # And only the expired verification's task is failed, with the error the state machine catches
    assert workflow.failed_tasks == [
        ("token-expired", EXPIRED_ERROR, "the verification code expired unconfirmed")
    ]
    assert EXPIRED_ERROR == "VerificationExpired"
    # And one alert lists the ids, overdue first, and no subject identifier
    ((subject, message),) = alerts.published
    assert subject == "DSR deadlines: 1 overdue, 2 due soon"
    body = json.loads(message)
    assert (body["overdue"], body["due_soon"], body["truncated"]) == (1, 2, 0)
    ids = [i["request_id"] for i in body["requests"]]
    assert ids == [str(overdue), str(due_soon), str(due_soon_b)]
    assert body["requests"][0]["days_left"] == 0 and body["requests"][1]["days_left"] == 2
    for subject_id in requests.subject_ids:
        assert str(subject_id) not in message and f"person-{subject_id}" not in message


def test_no_alert_and_no_failed_task_when_everything_is_in_time(
    migrated_db: ProvisionedDatabase, requests: Requests
) -> None:
    org = migrated_db.create_org("A")
    requests.add(org, deadline=FINE)
    requests.add(
        org,
        deadline=FINE,
        status="awaiting_verification",
        code_expires_at=NOW + timedelta(days=1),
        task_token="token",
    )
    workflow, alerts = MemoryWorkflow(), MemoryAlerts()
    report = run_sla_monitor(migrated_db.app, workflow, alerts, now=NOW, due_soon_days=DUE_SOON_DAYS)
    assert report.summary()["orgs"] == org_count(migrated_db)
    assert alerts.published == [] and workflow.failed_tasks == []


def test_expired_verifications_lists_only_the_orgs_waiting_expired_tasks(
    migrated_db: ProvisionedDatabase, requests: Requests
) -> None:
    # Given an expired waiting verification in each of two orgs, and one whose code was confirmed
    org_a, org_b = migrated_db.create_org("A"), migrated_db.create_org("B")
    mine = requests.add(
        org_a, deadline=FINE, status="awaiting_verification", code_expires_at=NOW, task_token="tok-a"
    )
    requests.add(
        org_a,
        deadline=FINE,
        status="awaiting_verification",
        code_expires_at=NOW - timedelta(hours=1),
        task_token="tok-verified",
        verified_at=NOW - timedelta(hours=2),
    )
    requests.add(
        org_b, deadline=FINE, status="awaiting_verification", code_expires_at=NOW, task_token="tok-b"
    )
    # When org A's scope reads them / Then only its own unconfirmed one, due at the boundary, is listed
    with migrated_db.app.tenant(org_a) as conn:
        found = dsr_sla.expired_verifications(conn, org_a, NOW)
    assert found == [dsr_sla.WaitingTask(mine, "tok-a")]
    # And the token never shows in its repr (a log line)
    assert "tok-a" not in repr(found[0])


def test_a_failing_org_is_counted_and_raised_after_the_others_are_processed(
    migrated_db: ProvisionedDatabase, requests: Requests
) -> None:
    # Given three organisations, each with an overdue request and an expired verification
    orgs = [migrated_db.create_org(name) for name in ("A", "B", "C")]
    overdue = {}
    for number, org in enumerate(orgs):
        overdue[org] = requests.add(org, deadline=NOW - timedelta(days=1))
        requests.add(
            org,
            deadline=FINE,
            status="awaiting_verification",
            code_expires_at=NOW - timedelta(hours=1),
            task_token=f"token-{number}",
        )
    # And the second organisation's database scope fails
    db = BrokenFor(migrated_db.app, orgs[1])
    workflow, alerts = MemoryWorkflow(), MemoryAlerts()

    # When the monitor runs over them / Then it raises at the end
    with pytest.raises(SlaMonitorError) as raised:
        run_sla_monitor(db, workflow, alerts, now=NOW, due_soon_days=DUE_SOON_DAYS, org_ids=orgs)  # type: ignore[arg-type]
    assert raised.value.status == 500
    assert "1 organisations" in raised.value.detail
    # But the others were processed: their tasks failed, their requests alerted
    assert [t[0] for t in workflow.failed_tasks] == ["token-0", "token-2"]
    ((_subject, message),) = alerts.published
    assert [i["request_id"] for i in json.loads(message)["requests"]] == [
        str(overdue[orgs[0]]),
        str(overdue[orgs[2]]),
    ]
