"""`compliance bench ingest`: HTTP-to-database rate, processor write rate, cold imports.

Goals (issue 2, two cores): http_records_per_s >= 2,000; processor_records_per_s >= 20,000;
cold_import_ms <= 300 per handler module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg

from compliance_tools.bench.cold_import import cold_import_ms
from compliance_tools.loadgen import usage_records, wait_for

REPO_ROOT = Path(__file__).resolve().parents[3]
APP_USER = "compliance_app"


def bench_ingest(*, records: int) -> dict[str, Any]:
    from compliance.models.auth import Role
    from compliance_tools.local_cli import boot
    from compliance_tools.seed import create_key

    figures: dict[str, Any] = {"records": records}
    figures["cold_import_ms"] = cold_import_ms()
    # Always from a fresh synth: a cdk.out left by an older checkout would benchmark old wiring.
    # A fresh database per run: state left by an older checkout (other migrations) would refuse to boot
    # or skew the figures. Not under pytest's tmp dirs: the server's system user must reach it.
    state_dir = Path(tempfile.mkdtemp(prefix="compliance-bench-ingest-"))
    runtime, _ = boot(state_dir=state_dir, synth=True, port=0)
    try:
        owner_dsn = runtime.database_dsn()
        with psycopg.connect(owner_dsn, autocommit=True) as conn:
            from compliance.db.organisations import create_organisation

            http_org = create_organisation(conn, f"bench-http-{uuid4().hex[:8]}")
            proc_org = create_organisation(conn, f"bench-processor-{uuid4().hex[:8]}")
            key = create_key(conn, http_org, "bench ingest", [Role.INGEST])
            warm_org = create_organisation(conn, f"bench-http-warm-{uuid4().hex[:8]}")
            warm_key = create_key(conn, warm_org, "bench ingest warm", [Role.INGEST])
            for org in (http_org, proc_org, warm_org):
                _grant_prompt_logging(conn, org)
        database = runtime.database_name()
        assert runtime.pg is not None and database is not None
        app_dsn = runtime.pg.dsn(database, user=APP_USER)
        crypto = _field_crypto(runtime)
        figures["processor_records_per_s"] = _processor_rate(app_dsn, proc_org, records, crypto, workers=2)
        figures["processor_records_per_s_1_writer"] = _processor_rate(
            app_dsn, proc_org, records, crypto, workers=1
        )
        http_rate, detail = _http_rate(
            f"http://127.0.0.1:{runtime.api_port}", key, owner_dsn, http_org, records
        )
        figures["http_records_per_s"] = http_rate
        figures["http_detail"] = detail
        # The same again on the now warm functions (context: the first run pays every cold start).
        base_url = f"http://127.0.0.1:{runtime.api_port}"
        warm_rate, _ = _http_rate(base_url, warm_key, owner_dsn, warm_org, records)
        figures["http_records_per_s_warm"] = warm_rate
    finally:
        runtime.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
    figures["goals"] = {
        "http_records_per_s": 2000,
        "processor_records_per_s": 20000,
        "cold_import_ms_max": 300,
    }
    return figures


def _grant_prompt_logging(conn: psycopg.Connection[Any], org_id: UUID, subjects: int = 200) -> None:
    """Every subject ``usage_records`` generates agreed to prompt logging, so their text is stored
    (sealed) as in an organisation whose users consented; without it only the figures are kept."""
    conn.execute(
        "INSERT INTO subjects (org_id, external_id) SELECT %s, 'user-' || i FROM generate_series(0, %s) AS i"
        " ON CONFLICT DO NOTHING",
        (org_id, subjects - 1),
    )
    conn.execute(
        "INSERT INTO consents (org_id, subject_id, purpose, legal_basis, notice_version, source, granted_at)"
        " SELECT org_id, id, 'prompt_logging', 'consent', 'bench-1', 'bench', now() - interval '1 hour'"
        " FROM subjects WHERE org_id = %s",
        (org_id,),
    )


def _field_crypto(runtime: Any) -> Any:
    """Field encryption as the processor has it: the stack's field key in the runtime's KMS (moto)."""
    from compliance.crypto import DataKeyCache, KmsDataKeys
    from compliance.crypto.session import FieldCrypto

    (field_key,) = [
        res.ref
        for lid, res in runtime.physical.items()
        if lid.startswith("DataProtectionFieldKey") and res.type == "AWS::KMS::Key"
    ]
    return FieldCrypto(
        KmsDataKeys(runtime.client("kms"), field_key), kms_key_id=field_key, cache=DataKeyCache()
    )


def _processor_rate(app_dsn: str, org_id: UUID, count: int, crypto: Any, *, workers: int) -> float:
    """``store_usage_message`` (the processor's work per message) on messages packed as the API packs them:
    a quarter of the records carry prompt and completion text, sealed under their subject's data key
    (200 subjects, all consenting to prompt logging: their keys are created and audited during the
    warm-up, then served from the cache).

    ``workers`` concurrent writers, each with its own connection, as concurrent processor invocations run
    (the local runtime polls each event-source mapping with 2 threads; AWS runs up to the reserved 5).
    """
    from concurrent.futures import ThreadPoolExecutor

    from compliance.audit.sink import MemoryAuditSink
    from compliance.db.connection import Database
    from compliance.ingest.messages import MAX_RECORDS_PER_MESSAGE
    from compliance.ingest.store import store_usage_message
    from compliance.models.usage import UsageMessage, UsageRecordIn

    records = [UsageRecordIn.model_validate(r) for r in usage_records(count, prefix=f"proc{workers}")]
    now = datetime.now(UTC)
    messages = [
        UsageMessage(
            org_id=org_id, batch_id=uuid4(), received_at=now, records=records[i : i + MAX_RECORDS_PER_MESSAGE]
        )
        for i in range(0, count, MAX_RECORDS_PER_MESSAGE)
    ]
    databases = [Database(app_dsn, password_provider=lambda: "local") for _ in range(workers)]
    sink = MemoryAuditSink()  # key.created events; the audit pipeline has its own benchmark

    def store(message: UsageMessage, db: Database) -> int:
        return store_usage_message(message, db=db, crypto=crypto, sink=sink)

    try:
        # Warm each pool (a cold connection is not the steady rate) with the first messages.
        warm = sum(store(messages[i], db) for i, db in enumerate(databases))
        rest = messages[workers:]
        shares = [rest[i::workers] for i in range(workers)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            stored = sum(
                pool.map(
                    lambda pair: sum(store(m, pair[0]) for m in pair[1]),
                    zip(databases, shares, strict=True),
                )
            )
        elapsed = time.perf_counter() - started
    finally:
        for db in databases:
            db.close()
    assert warm + stored == count, f"stored {warm + stored} of {count}"
    return round(stored / elapsed, 1)


def _http_rate(
    base_url: str, key: str, owner_dsn: str, org_id: UUID, count: int
) -> tuple[float, dict[str, Any]]:
    """From the first POST until the last record is in PostgreSQL; the client runs in its own process."""

    def stored() -> int:
        with psycopg.connect(owner_dsn) as conn:
            row = conn.execute("SELECT count(*) FROM usage_records WHERE org_id = %s", (org_id,)).fetchone()
        return int(row[0]) if row else 0

    started = time.perf_counter()
    client = subprocess.run(  # noqa: S603 - our interpreter, our module
        [sys.executable, "-m", "compliance_tools.loadgen", base_url, key, str(count), "http"],
        capture_output=True,
        text=True,
        check=True,
    )
    detail: dict[str, Any] = json.loads(client.stdout.strip().splitlines()[-1])
    if not wait_for(lambda: stored() >= count, timeout_s=600, interval_s=0.25):
        raise RuntimeError(f"only {stored()} of {count} records arrived within 600 s")
    elapsed = time.perf_counter() - started
    detail["stored"] = stored()
    detail["end_to_end_s"] = round(elapsed, 3)
    return round(count / elapsed, 1), detail
