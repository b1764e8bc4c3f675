"""`compliance bench audit`: append rate and latency, verification rate, SHA-256 ceiling.

Runs against its own embedded PostgreSQL (fsync on, as the local runtime's) in a temporary
directory, migrated like a deploy, as the application user under row-level security.

Goals (issue 3, two cores): append_per_s_* >= 10,000 events/s per org batched;
append_p99_ms < 5 for single-event appends; verify_per_s >= 300,000 events/s.

- ``append_per_s_1org_b10`` / ``_b100``: ``append_events`` in one tenant transaction per batch
  of 10 / 100 events, one writer.
- ``append_per_s_8org_b100``: 8 organisations, one writer thread (own connection) per org,
  all events of all orgs per second of wall time (``..._per_org`` divides by 8).
- ``append_per_s_1org_b100_async_commit``: context only, the b100 rate with
  ``synchronous_commit=off`` (the share of the batched rate that is waiting for fsync).
- ``append_p50_ms`` / ``append_p99_ms``: one event per transaction (what a lone API call costs).
- ``verify_per_s``: ``verify_chain`` (recomputing every event hash) over events read from the
  database; the read itself (``read_events``, pydantic validation) is ``read_per_s``.
  ``verify_per_s_2proc`` splits the same chain into two halves verified by two forked
  processes (the second half from the first half's last stored hash, then stitched).
- ``..._unix_socket``: context only, the same b100 rate and single-event latency over the
  server's unix socket instead of the local TLS front (a Python process relaying every round
  trip: ~0.4 ms each on this machine, five per append). RDS terminates TLS in the server.
- ``sha256_per_s``: raw ``hashlib.sha256(...).hexdigest()`` over the same canonical payloads.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

REPO_ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS_DIR = REPO_ROOT / "migrations"
APP_USER = "compliance_app"
APP_PASSWORD = "bench-local-password"  # noqa: S105 - a throwaway local server

EVENTS_B10 = 5_000
EVENTS_B100 = 20_000
EVENTS_PER_ORG_8 = 2_000
SINGLE_APPENDS = 1_000
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def bench_audit() -> dict[str, Any]:
    import psycopg

    from compliance.db.connection import Database
    from compliance.db.migrate import ensure_app_user, up
    from compliance.db.organisations import create_organisation
    from compliance_tools.pg import EmbeddedPostgres, create_database

    started = time.perf_counter()
    figures: dict[str, Any] = {}
    # Not under /tmp/pytest-of-*: see tests/conftest.py (the server's system user must reach it).
    data_dir = Path(tempfile.mkdtemp(prefix="compliance-bench-audit-"))
    server = EmbeddedPostgres(data_dir, durable=True)
    try:
        endpoint = server.start()
        create_database(endpoint, "audit_bench")
        with psycopg.connect(endpoint.dsn("audit_bench"), autocommit=True) as conn:
            up(conn, MIGRATIONS_DIR)
            ensure_app_user(conn, APP_USER, APP_PASSWORD)
            orgs = [create_organisation(conn, f"bench-audit-{i}") for i in range(11)]
        app_dsn = endpoint.dsn("audit_bench", user=APP_USER)

        def database() -> Database:
            return Database(app_dsn, password_provider=lambda: APP_PASSWORD)

        with database() as db:
            figures["append_per_s_1org_b10"] = _append_rate(db, orgs[0], EVENTS_B10, 10)
            figures["append_per_s_1org_b100"] = _append_rate(db, orgs[1], EVENTS_B100, 100)
            p50, p99 = _single_latency(db, orgs[2], SINGLE_APPENDS)
            figures["append_p50_ms"], figures["append_p99_ms"] = p50, p99
            events, read_s = _read_all(db, orgs[1])
        # Context: the same b100 append without waiting for the WAL flush (never how the
        # function runs): how much of the batched rate is this machine's fsync.
        async_dsn = endpoint.dsn("audit_bench", user=APP_USER) + " options='-c synchronous_commit=off'"
        with Database(async_dsn, password_provider=lambda: APP_PASSWORD) as db:
            figures["append_per_s_1org_b100_async_commit"] = _append_rate(db, orgs[0], 5_000, 100)
        # Context: the same appends without the TLS front's relay (see the module docstring).
        socket_dsn = f"host={server.socket_path.parent} dbname=audit_bench user={APP_USER}"
        with Database(socket_dsn, password_provider=lambda: APP_PASSWORD) as db:
            figures["append_per_s_1org_b100_unix_socket"] = _append_rate(db, orgs[0], 5_000, 100)
            p50, p99 = _single_latency(db, orgs[0], SINGLE_APPENDS)
            figures["append_p50_ms_unix_socket"], figures["append_p99_ms_unix_socket"] = p50, p99
        rate_8 = _concurrent_rate(database, orgs[3:11], EVENTS_PER_ORG_8, 100)
        figures["append_per_s_8org_b100"] = rate_8
        figures["append_per_s_8org_b100_per_org"] = round(rate_8 / 8, 1)
        figures["read_per_s"] = round(len(events) / read_s, 1)
        figures.update(_verify_figures(events))
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    figures["context"] = {
        "events_b10": EVENTS_B10,
        "events_b100": EVENTS_B100,
        "events_8org": EVENTS_PER_ORG_8 * 8,
        "single_appends": SINGLE_APPENDS,
        "verified_events": len(events),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "postgres_fsync": True,
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    figures["goals"] = {
        "append_per_s_per_org_batched": 10_000,
        "append_p99_ms_max": 5,
        "verify_per_s": 300_000,
    }
    return figures


def _events(org_id: UUID, count: int, start: int = 0) -> list[Any]:
    """Typical API-request events: what most of the trail holds."""
    from compliance.audit.events import AuditEventIn

    return [
        AuditEventIn.model_validate(
            {
                "event_id": uuid.uuid4(),
                "occurred_at": T0 + timedelta(milliseconds=start + i),
                "event_type": "api.request",
                "actor": f"api_key:{uuid.UUID(int=(start + i) % 50)}",
                "org_id": org_id,
                "resource": "route:POST:/v1/usage",
                "action": "create",
                "result": "success",
                "ip_address": f"192.0.2.{(start + i) % 250 + 1}",
                "user_agent": "python-httpx/0.27.0",
                "request_id": f"req-{start + i}",
                "details": {"method": "POST", "route": "/v1/usage", "status": 202, "records": 10},
            }
        )
        for i in range(count)
    ]


def _append_batches(db: Any, org_id: UUID, events: Sequence[Any], batch: int) -> None:
    from compliance.db.audit import append_events

    for i in range(0, len(events), batch):
        with db.tenant(org_id) as conn:
            append_events(conn, org_id, events[i : i + batch])


def _append_rate(db: Any, org_id: UUID, count: int, batch: int) -> float:
    events = _events(org_id, count + batch)
    _append_batches(db, org_id, events[:batch], batch)  # warm: connection, head row, plans
    started = time.perf_counter()
    _append_batches(db, org_id, events[batch:], batch)
    return round(count / (time.perf_counter() - started), 1)


def _single_latency(db: Any, org_id: UUID, count: int) -> tuple[float, float]:
    from compliance.db.audit import append_events

    events = _events(org_id, count + 20)
    samples: list[float] = []
    for index, event in enumerate(events):
        began = time.perf_counter()
        with db.tenant(org_id) as conn:
            append_events(conn, org_id, [event])
        if index >= 20:  # after warm-up
            samples.append((time.perf_counter() - began) * 1000)
    cuts = statistics.quantiles(samples, n=100)
    return round(statistics.median(samples), 3), round(cuts[98], 3)


def _concurrent_rate(database: Any, orgs: Sequence[UUID], per_org: int, batch: int) -> float:
    work = {org: _events(org, per_org + batch) for org in orgs}
    dbs = {org: database() for org in orgs}
    try:
        for org, events in work.items():
            _append_batches(dbs[org], org, events[:batch], batch)
        barrier = threading.Barrier(len(orgs) + 1)
        errors: list[BaseException] = []

        def run(org: UUID) -> None:
            barrier.wait()
            try:
                _append_batches(dbs[org], org, work[org][batch:], batch)
            except BaseException as exc:  # reported after join
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(org,)) for org in orgs]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise errors[0]
    finally:
        for db in dbs.values():
            db.close()
    return round(per_org * len(orgs) / elapsed, 1)


def _read_all(db: Any, org_id: UUID) -> tuple[list[Any], float]:
    from compliance.db.audit import read_events

    events: list[Any] = []
    started = time.perf_counter()
    with db.tenant(org_id) as conn:
        while page := read_events(conn, after_seq=events[-1].seq if events else 0, limit=5_000):
            events.extend(page)
    return events, time.perf_counter() - started


def _best_of(runs: int, work: Any) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def _verify_figures(events: list[Any]) -> dict[str, Any]:
    from compliance.audit.canonical import canonical_bytes
    from compliance.audit.chain import verify_chain

    count = len(events)
    verdict = verify_chain(events)
    assert verdict.valid and verdict.checked == count, str(verdict)
    verify_s = _best_of(3, lambda: verify_chain(events))
    payloads = [canonical_bytes(e, seq=e.seq, prev_hash=e.prev_hash) for e in events]
    sha = hashlib.sha256
    sha_s = _best_of(3, lambda: [sha(p).hexdigest() for p in payloads])
    canonical_s = _best_of(3, lambda: [canonical_bytes(e, seq=e.seq, prev_hash=e.prev_hash) for e in events])
    figures: dict[str, Any] = {
        "verify_per_s": round(count / verify_s, 1),
        "sha256_per_s": round(count / sha_s, 1),
        "canonical_per_s": round(count / canonical_s, 1),
        "payload_bytes_mean": round(sum(map(len, payloads)) / count, 1),
    }
    parallel = _verify_parallel_rate(events)
    if parallel is not None:
        figures["verify_per_s_2proc"] = parallel
    return figures


# Set before forking: the children inherit the loaded events without pickling them.
_FORK_EVENTS: list[Any] = []


def _verify_segment(bounds: tuple[int, int]) -> tuple[bool, int, str | None]:
    from compliance.audit.canonical import GENESIS_HASH
    from compliance.audit.chain import verify_chain

    lo, hi = bounds
    start_prev = GENESIS_HASH if lo == 0 else _FORK_EVENTS[lo - 1].event_hash
    verdict = verify_chain(_FORK_EVENTS[lo:hi], start_seq=lo + 1, start_prev_hash=start_prev)
    return verdict.valid, verdict.checked, None if verdict.head is None else verdict.head.event_hash


def _verify_parallel_rate(events: list[Any]) -> float | None:
    """Two forked processes, one half each; the halves join where the first one's verified
    head is the hash the second one started from. ``None`` where fork is unavailable."""
    import multiprocessing

    if sys.platform != "linux":
        return None
    global _FORK_EVENTS
    _FORK_EVENTS = events
    half = len(events) // 2
    context = multiprocessing.get_context("fork")
    try:
        with context.Pool(2) as pool:
            pool.map(_verify_segment, [(0, 10), (10, 20)])  # workers up before timing
            began = time.perf_counter()
            (ok1, n1, head1), (ok2, n2, _) = pool.map(_verify_segment, [(0, half), (half, len(events))])
            elapsed = time.perf_counter() - began
    finally:
        _FORK_EVENTS = []
    stitched = head1 == events[half - 1].event_hash
    assert ok1 and ok2 and stitched and n1 + n2 == len(events)
    return round(len(events) / elapsed, 1)
