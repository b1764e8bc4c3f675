"""The scheduled PII sweep against a migrated PostgreSQL with the catalog loaded: which columns it
reads, in which organisation's scope, within which bounds, and what it reports (counts, never values)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from compliance.audit.events import SYSTEM_ORG_ID, AuditEventIn, AuditResult
from compliance.audit.sink import MemoryAuditSink
from compliance.catalog import catalog_path, load_catalog
from compliance.db import audit as audit_db
from compliance.db import catalog as catalog_db
from compliance.db import pii_sweep
from compliance.errors import DataAccessError
from compliance.pii.sweep import (
    FAILED_METRIC,
    FINDINGS_METRIC,
    TIME_PREFERENCE,
    Status,
    SweepLimits,
    _trim,
    scan_values,
    sweep_all,
    sweep_org,
)
from tests.conftest import MIGRATIONS_DIR

EMAIL = "alice.smith@example.com"
NOW = datetime(2026, 1, 2, 2, 30, tzinfo=UTC)


@pytest.fixture
def synced(migrated_db: Any) -> None:
    """The catalog loaded as the deploy loads it (the migrated_db fixture only migrates)."""
    with migrated_db.owner() as conn:
        catalog_db.sync(conn, load_catalog(catalog_path(MIGRATIONS_DIR)))


@pytest.fixture
def sweeper(aws: None, synced: None, db_env: dict[str, str], audited: Any) -> Any:
    return audited("functions.pii.sweep", db_env)


def add_key(migrated_db: Any, org: UUID, name: str, *, created_at: datetime | None = None) -> None:
    """An API key row (as the owner: the test chooses its name and creation time)."""
    prefix = uuid4().hex[:16]
    with migrated_db.owner() as conn:
        conn.execute(
            "INSERT INTO api_keys (org_id, name, prefix, secret_hash, roles, created_at)"
            " VALUES (%s, %s, %s, %s, ARRAY['cost_viewer'], COALESCE(%s, now()))",
            (org, name, prefix, hashlib.sha256(prefix.encode()).digest(), created_at),
        )


def columns(migrated_db: Any, *names: str) -> list[pii_sweep.SweepColumn]:
    with migrated_db.app.unscoped() as conn:
        found = pii_sweep.sweep_columns(conn, TIME_PREFERENCE)
    return [c for c in found if c.name in names] if names else found


def sweep_events(audit: MemoryAuditSink) -> dict[UUID, AuditEventIn]:
    events = [e for e in audit.events if e.event_type == "pii.sweep_completed"]
    by_org = {e.org_id: e for e in events}
    assert len(by_org) == len(events), "one event per organisation"
    return by_org


def emf(out: str) -> dict[str, float]:
    """Metric name -> summed values of the EMF blobs the handler printed."""
    totals: dict[str, float] = {}
    for line in out.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            name = definition["Name"]
            values = blob[name] if isinstance(blob[name], list) else [blob[name]]
            totals[name] = totals.get(name, 0) + sum(values)
    return totals


# --- What is read ----------------------------------------------------------------------------------------


def test_only_clear_non_personal_text_columns_of_tenant_tables_are_sampled(
    migrated_db: Any, synced: None
) -> None:
    # When the sweep asks which columns to sample
    found = {c.name: c for c in columns(migrated_db)}

    # Then it has the text-like columns catalogued as not personal, of tables with an org_id
    assert {"api_keys.name", "api_keys.prefix", "usage_records.model", "audit_events.event_type"} <= set(
        found
    )
    assert found["api_keys.roles"].kind == "array" and found["usage_records.currency"].kind == "text"
    # And none that is personal, encrypted, not text, or of a table without tenant rows
    for excluded in (
        "subjects.external_id",  # personal
        "subjects.email",  # personal, encrypted
        "usage_records.prompt_text",  # encrypted
        "audit_events.details",  # personal jsonb
        "api_keys.secret_hash",  # bytea
        "api_keys.created_at",  # timestamptz
        "organisations.name",  # no org_id column
        "schema_migrations.name",  # platform table
        "data_catalog.table_name",  # platform table
    ):
        assert excluded not in found, excluded
    # And the sample follows a creation or event time where the table has one
    assert found["api_keys.name"].time_column == "created_at"
    assert found["usage_records.model"].time_column == "occurred_at"
    assert found["audit_heads.event_hash"].time_column is None


def test_the_catalog_decides_what_is_swept(migrated_db: Any, synced: None) -> None:
    # Given a subject whose external id is an e-mail address (catalogued personal: not swept)
    org = migrated_db.create_org("Org A")
    with migrated_db.owner() as conn:
        conn.execute("INSERT INTO subjects (org_id, external_id) VALUES (%s, %s)", (org, EMAIL))
    sink = MemoryAuditSink()
    before = sweep_org(
        migrated_db.app, sink, org, columns(migrated_db), run_id=uuid4(), now=NOW, limits=SweepLimits()
    )

    # When the catalog says the column holds no personal data
    with migrated_db.owner() as conn:
        conn.execute(
            "UPDATE data_catalog SET personal = false"
            " WHERE table_name = 'subjects' AND column_name = 'external_id'"
        )
    after = sweep_org(
        migrated_db.app, sink, org, columns(migrated_db), run_id=uuid4(), now=NOW, limits=SweepLimits()
    )

    # Then the sweep reads it and reports the address there
    assert before.status is after.status is Status.COMPLETED
    assert before.findings == ()
    assert [(f.table, f.column, f.pii_type, f.count) for f in after.findings] == [
        ("subjects", "external_id", "EMAIL", 1)
    ]


# --- Through the handler ---------------------------------------------------------------------------------


def test_a_key_named_with_an_email_is_reported_for_its_org_only(
    sweeper: Any,
    migrated_db: Any,
    audit: MemoryAuditSink,
    event: Any,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given org A with a key named after a person's e-mail address, and org B with ordinary keys
    org_a, org_b = migrated_db.create_org("Org A"), migrated_db.create_org("Org B")
    add_key(migrated_db, org_a, f"laptop of {EMAIL}")
    add_key(migrated_db, org_a, "ci pipeline")
    add_key(migrated_db, org_b, "billing export")

    # When the daily schedule fires
    summary = sweeper.handler(event("pii/sweep-schedule.json"), lambda_context)

    # Then every organisation was swept and only org A has a finding
    assert summary["organisations"] == 3  # A, B and the reserved system organisation
    assert summary["completed"] == 3 and summary["failed"] == 0
    assert summary["findings"] == 1 and summary["orgs_with_findings"] == [str(org_a)]
    # And each has one pii.sweep_completed event; A's names the column and type with counts
    events = sweep_events(audit)
    assert set(events) == {org_a, org_b, SYSTEM_ORG_ID}
    a, b = events[org_a], events[org_b]
    assert a.result is b.result is AuditResult.SUCCESS
    assert a.actor == "system:pii-sweep" and a.resource == f"org:{org_a}"
    assert a.details["findings"] == [
        {"table": "api_keys", "column": "name", "type": "EMAIL", "count": 1, "rows": 1}
    ]
    assert a.details["findings_total"] == 1 and b.details["findings"] == []
    rows, scanned = a.details["rows_sampled"], a.details["columns_scanned"]
    assert isinstance(rows, int) and rows >= 2
    assert isinstance(scanned, int) and scanned > 0 and b.details["columns_scanned"] == scanned
    # And the metric counts the finding; the address is in no event, log line or metric
    out = capsys.readouterr().out
    assert emf(out)[FINDINGS_METRIC] == 1
    assert "alice.smith" not in out and "alice.smith" not in json.dumps(summary)
    assert all("alice.smith" not in e.model_dump_json() for e in audit.events)


def test_a_failing_org_does_not_stop_the_others(
    sweeper: Any,
    migrated_db: Any,
    audit: MemoryAuditSink,
    event: Any,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given two organisations with an e-mail in a key name, and a database that fails for the first
    org_a, org_b = migrated_db.create_org("Org A"), migrated_db.create_org("Org B")
    add_key(migrated_db, org_a, EMAIL)
    add_key(migrated_db, org_b, EMAIL)
    monkeypatch.setattr(sweeper, "_database", lambda: FailingFor(migrated_db.app, org_a))

    # When the schedule fires
    summary = sweeper.handler(event("pii/sweep-schedule.json"), lambda_context)

    # Then A is reported failed (an error event, the failure metric) and B is still swept
    assert summary["failed"] == 1 and summary["failed_orgs"] == [str(org_a)]
    assert summary["completed"] == 2 and summary["orgs_with_findings"] == [str(org_b)]
    events = sweep_events(audit)
    assert events[org_a].result is AuditResult.ERROR
    assert events[org_a].details["reason"] == "DataAccessError"
    assert events[org_b].result is AuditResult.SUCCESS and events[org_b].details["findings_total"] == 1
    assert emf(capsys.readouterr().out)[FAILED_METRIC] == 1


def test_a_refused_audit_event_fails_that_org_and_the_run_goes_on(
    sweeper: Any, migrated_db: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # Given an audit queue that refuses every event
    migrated_db.create_org("Org A")
    audit.fail = True

    # When the schedule fires
    summary = sweeper.handler(event("pii/sweep-schedule.json"), lambda_context)

    # Then no organisation counts as swept (its result was never recorded), and nothing raised
    assert summary["organisations"] == summary["failed"] == 2 and summary["completed"] == 0


def test_a_repeated_run_is_recorded_once(
    sweeper: Any, migrated_db: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # Given an organisation with a key named after a person
    org = migrated_db.create_org("Org A")
    add_key(migrated_db, org, EMAIL)
    schedule = event("pii/sweep-schedule.json")

    # When EventBridge delivers the same scheduled event twice, then a new one arrives
    sweeper.handler(schedule, lambda_context)
    sweeper.handler(schedule, lambda_context)
    sweeper.handler({**schedule, "id": str(uuid4())}, lambda_context)

    # Then the two deliveries produced the same event ids, which the audit chain stores once
    ours = [e for e in audit.events if e.org_id == org]
    assert len(ours) == 3 and ours[0].event_id == ours[1].event_id != ours[2].event_id
    assert ours[0].details == ours[1].details
    with migrated_db.app.tenant(org) as conn:
        for e in ours:
            audit_db.append_events(conn, org, [e])
    with migrated_db.app.tenant(org) as conn:
        head = audit_db.head(conn)
    assert head is not None and head.seq == 2
    # And the sweep wrote nothing to the tenant's tables
    with migrated_db.owner() as conn:
        row = conn.execute("SELECT count(*) FROM api_keys WHERE org_id = %s", (org,)).fetchone()
    assert row is not None and row[0] == 1


# --- Bounds ----------------------------------------------------------------------------------------------


def test_rows_per_column_takes_the_most_recent_rows(migrated_db: Any, synced: None) -> None:
    # Given 30 keys, of which only the oldest is named after a person
    org = migrated_db.create_org("Org A")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    add_key(migrated_db, org, EMAIL, created_at=start)
    for i in range(1, 30):
        add_key(migrated_db, org, f"service key {i:02d}", created_at=start + timedelta(days=i))
    names = columns(migrated_db, "api_keys.name")

    def sweep(limits: SweepLimits) -> Any:
        return sweep_org(
            migrated_db.app, MemoryAuditSink(), org, names, run_id=uuid4(), now=NOW, limits=limits
        )

    # When the sweep samples 10 rows, then all 30
    recent = sweep(SweepLimits(rows_per_column=10))
    everything = sweep(SweepLimits(rows_per_column=30))

    # Then 10 rows are read, the newest: the oldest key's address is not among them
    assert (recent.rows_sampled, recent.findings) == (10, ())
    assert recent.bytes_sampled == 10 * len("service key 00")
    assert everything.rows_sampled == 30 and everything.findings_total == 1


def test_the_byte_cap_keeps_the_most_recent_values(migrated_db: Any, synced: None) -> None:
    # Given 20 older keys of 60 characters, then the newest, named after a person
    org = migrated_db.create_org("Org A")
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(20):
        add_key(migrated_db, org, f"k{i:02d}".ljust(60, "x"), created_at=start + timedelta(days=i))
    add_key(migrated_db, org, EMAIL, created_at=start + timedelta(days=30))

    # When a column may take only 60 bytes
    outcome = sweep_org(
        migrated_db.app,
        MemoryAuditSink(),
        org,
        columns(migrated_db, "api_keys.name"),
        run_id=uuid4(),
        now=NOW,
        limits=SweepLimits(column_bytes=60),
    )

    # Then the bytes went to the newest values: the address is found within the cap
    assert outcome.bytes_sampled == 60 and outcome.rows_sampled == 2
    assert outcome.findings_total == 1


def test_value_column_and_org_byte_caps(migrated_db: Any, synced: None) -> None:
    # Given keys whose names are 60 characters each, one with an address after 40 characters
    org = migrated_db.create_org("Org A")
    for i in range(20):
        add_key(migrated_db, org, f"k{i:02d}".ljust(60, "x"))
    add_key(migrated_db, org, "x" * 40 + " " + EMAIL[:19])
    two = columns(migrated_db, "api_keys.name", "api_keys.prefix")
    assert len(two) == 2

    def sweep(cols: list[pii_sweep.SweepColumn], limits: SweepLimits) -> Any:
        return sweep_org(
            migrated_db.app, MemoryAuditSink(), org, cols, run_id=uuid4(), now=NOW, limits=limits
        )

    # When values are cut to 32 characters
    cut = sweep(two[:1], SweepLimits(value_chars=32))
    # Then no value longer than that was read, and the address past the cut is not seen
    assert cut.rows_sampled == 21 and cut.bytes_sampled == 21 * 32 and cut.findings == ()

    # When a column may take 1000 bytes
    column_capped = sweep(two[:1], SweepLimits(column_bytes=1000))
    # Then exactly 1000 bytes are scanned (the last value trimmed), from 17 rows
    assert (column_capped.bytes_sampled, column_capped.rows_sampled, column_capped.capped_columns) == (
        1000,
        17,
        1,
    )

    # When the organisation may take 600 bytes over two columns
    org_capped = sweep(two, SweepLimits(org_bytes=600))
    # Then the first column gets its fair share (300 of 21 * 60) and the second what is left (300 of
    # 21 * 16): the organisation's cap holds and no column is starved
    assert org_capped.columns_scanned == 2 and org_capped.bytes_sampled == 600
    assert org_capped.capped_columns == 2


def test_trim_keeps_whole_characters_within_the_byte_cap() -> None:
    # Given values with multi-byte characters
    values = ["ab", "ééé", "zz"]
    # When cut to 5 bytes
    kept, used = _trim(values, 5)
    # Then no character is split and the total is at most 5
    assert kept == ["ab", "é"] and used == 4
    assert _trim(values, 100) == (values, 2 + 6 + 2)


def test_scan_values_counts_confident_findings_per_row_and_skips_binary() -> None:
    # Given a value with one address twice, one with a private IP address, and a binary one
    values = [f"{EMAIL}, {EMAIL}", "gateway 10.0.0.1 is up", "\x01\x02\x03\x04\x05 binary"]
    # When scanned with the default confidence floor (0.7), then with 0.5
    default, lower = scan_values(values, SweepLimits()), scan_values(values, SweepLimits(min_confidence=0.5))
    # Then the address counts twice in one row; the private IP (0.6) only under the lower floor
    assert dict(default.findings) == {"EMAIL": 2} and dict(default.rows) == {"EMAIL": 1}
    assert default.unscannable == 1
    assert dict(lower.findings) == {"EMAIL": 2, "IP_ADDRESS": 1}


class FailingFor:
    """The application Database, except that one organisation's scope fails like a lost connection."""

    def __init__(self, db: Any, org_id: UUID) -> None:
        self._db = db
        self._org_id = org_id

    def unscoped(self) -> Any:
        return self._db.unscoped()

    @contextmanager
    def tenant(self, org_id: UUID) -> Iterator[Any]:
        if org_id == self._org_id:
            raise DataAccessError("database operation failed (08006)", sqlstate="08006")
        with self._db.tenant(org_id) as conn:
            yield conn


def test_sweep_all_without_organisations_reports_nothing(migrated_db: Any, synced: None) -> None:
    # Given a database whose only organisation is the reserved system one, without keys
    sink = MemoryAuditSink()
    # When the sweep runs with no time left
    result = sweep_all(migrated_db.app, sink, run_id=uuid4(), now=NOW, time_left_ms=lambda: 0)
    # Then nothing was sampled or published: the organisation is reported as not reached
    assert [o.status for o in result.outcomes] == [Status.NOT_REACHED] and sink.events == []
