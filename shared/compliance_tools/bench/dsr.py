"""`compliance bench dsr`: the export and the erasure of one heavy data subject (issue 5).

Local, no runtime boot: its own embedded PostgreSQL (migrated like a deploy, the application user
under row-level security) and moto's in-process KMS and S3 (``mock_aws``, no network: KMS and S3
latency are not in the figures; S3 upload is moto's in-memory bucket).

Workload: one organisation; one subject with 100,000 usage records (a quarter with prompt and
completion text, every one with a client IP, all sealed under the subject's data key by the real
``FieldEncryptor``; the e-mail sealed too) and 20 other subjects with 1,000 records between them.
Rows are sealed in chunks and loaded with COPY (as the owner: COPY does not run under RLS).

- ``export_s``: ``export_subject`` in json, csv and xml (one read of the subject, decryption,
  spooling, three files written and uploaded KMS-encrypted to S3, three presigned links). Goal 60 s.
- ``erasure_s``: ``erase_subject`` (the catalog's plan in one transaction, the key shred, the
  receipt) with its verification afterwards. Goal 30 s. ``erasure_exports_s``: deleting the
  subject's exports from S3 (every version), the erasure's S3 step, reported apart.
- ``export_bytes``: per format (``large_exports``: those above 100 MB, which the record warns of).
- ``peak_rss_mb``: the process's peak resident memory during the export and the erasure (the
  seeding excluded where Linux lets the peak be reset), moto's S3 included: it keeps every object
  in this process. ``export_s_without_s3`` / ``peak_rss_mb_without_s3``: the same export with
  the upload only read and hashed: the pipeline's own time and memory (what a Lambda needs).
  ``rss_before_export_mb``: the resident memory before (interpreter, boto3, moto, psycopg).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import random
import resource
import shutil
import string
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS_DIR = REPO_ROOT / "migrations"
APP_USER = "compliance_app"
APP_PASSWORD = "bench-local-password"  # noqa: S105 - a throwaway local server
REGION = "us-east-1"
BUCKET = "bench-dsr-exports"
_AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's placeholders, no real account
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}

HEAVY_RECORDS = 100_000
OTHER_SUBJECTS = 20
OTHER_RECORDS = 1_000
TEXT_SHARE = 4  # one record in TEXT_SHARE carries prompt and completion text
CHUNK = 5_000
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
_COLUMNS = (
    "org_id",
    "request_id",
    "subject_id",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "currency",
    "latency_ms",
    "occurred_at",
    "received_at",
    "prompt_text",
    "completion_text",
    "client_ip",
    "batch_id",
)


def bench_dsr() -> dict[str, Any]:
    import psycopg
    from moto import mock_aws

    from compliance.catalog.load import catalog_path, load_catalog
    from compliance.db import catalog as db_catalog
    from compliance.db.connection import Database
    from compliance.db.migrate import ensure_app_user, up
    from compliance.db.organisations import create_organisation
    from compliance_tools.pg import EmbeddedPostgres, create_database

    started = time.perf_counter()
    catalog = load_catalog(catalog_path(MIGRATIONS_DIR))
    # Not under /tmp/pytest-of-*: see tests/conftest.py (the server's system user must reach it).
    data_dir = Path(tempfile.mkdtemp(prefix="compliance-bench-dsr-"))
    server = EmbeddedPostgres(data_dir, durable=True)
    try:
        endpoint = server.start()
        create_database(endpoint, "dsr_bench")
        owner_dsn = endpoint.dsn("dsr_bench")
        with psycopg.connect(owner_dsn, autocommit=True) as conn:
            up(conn, MIGRATIONS_DIR)
            db_catalog.sync(conn, catalog)
            ensure_app_user(conn, APP_USER, APP_PASSWORD)
            org = create_organisation(conn, "bench-dsr")
        app_dsn = endpoint.dsn("dsr_bench", user=APP_USER)
        with (
            mock.patch.dict(os.environ, _AWS_TEST_ENV),
            mock_aws(),
            Database(app_dsn, password_provider=lambda: APP_PASSWORD) as db,
        ):
            figures = _run(db, owner_dsn, org, catalog)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    figures["context"] = {
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "postgres_fsync": True,
        "aws": "moto in-process (KMS, S3)",
        "runtime_s": round(time.perf_counter() - started, 1),
    }
    figures["goals"] = {"export_s": 60, "erasure_s": 30}
    return figures


def _run(db: Any, owner_dsn: str, org: uuid.UUID, catalog: Any) -> dict[str, Any]:
    import boto3

    from compliance.audit.sink import MemoryAuditSink
    from compliance.aws.exports import S3ExportStore
    from compliance.crypto import DataKeyCache, KmsDataKeys
    from compliance.crypto.ledger import MemoryShredLedger
    from compliance.crypto.session import FieldCrypto
    from compliance.dsr.erase import erase_subject
    from compliance.dsr.export import delete_subject_exports, export_subject

    kms = boto3.client("kms", region_name=REGION)
    arn = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

    def crypto() -> FieldCrypto:  # a process of its own: its own key cache
        return FieldCrypto(KmsDataKeys(kms, arn), kms_key_id=arn, cache=DataKeyCache())

    seed_started = time.perf_counter()
    writer = crypto()
    heavy = _seed_subject(db, writer, owner_dsn, org, "heavy", HEAVY_RECORDS)
    for n in range(OTHER_SUBJECTS):
        _seed_subject(db, writer, owner_dsn, org, f"other-{n}", OTHER_RECORDS // OTHER_SUBJECTS)
    seed_s = time.perf_counter() - seed_started

    def export(store: Any) -> tuple[Any, float, float]:
        _reset_peak_rss()
        began = time.perf_counter()
        outcome = export_subject(
            db,
            crypto(),  # the export step runs in another function than the writer: a cold key cache
            store,
            org,
            heavy,
            request_id=uuid.uuid4(),
            regulation="gdpr",
            formats=["json", "csv", "xml"],
            now=datetime.now(UTC),
            link_ttl_s=7 * 24 * 3600,
        )
        return outcome, time.perf_counter() - began, _peak_rss_mb()

    rss_before_mb = _rss_mb()
    # Context first: the pipeline alone (read, decrypt, spool, write; the upload only hashed), whose
    # memory is what a Lambda needs; moto's S3 keeps every object in this process's memory.
    _, pipeline_s, pipeline_peak = export(_HashingStore())
    store = S3ExportStore(BUCKET, arn, s3)
    outcome, export_s, export_peak = export(store)

    began = time.perf_counter()
    receipt = erase_subject(
        db,
        MemoryAuditSink(),
        MemoryShredLedger(),
        org,
        heavy,
        catalog=catalog,
        crypto=crypto(),
        now=datetime.now(UTC),
        request_id=uuid.uuid4(),
    )
    erasure_s = time.perf_counter() - began
    began = time.perf_counter()
    deleted = delete_subject_exports(store, org, str(heavy))
    erasure_exports_s = time.perf_counter() - began
    peak = max(export_peak, _peak_rss_mb())

    return {
        "records": HEAVY_RECORDS,
        "export_rows": outcome.rows,
        "export_s": round(export_s, 2),
        "erasure_s": round(erasure_s, 2),
        "erasure_exports_s": round(erasure_exports_s, 3),
        "export_bytes": {obj["format"]: obj["bytes"] for obj in outcome.objects},
        "exports_deleted": deleted,
        "erasure_verified": bool(receipt.get("verification")),
        "peak_rss_mb": peak,
        "rss_before_export_mb": rss_before_mb,
        "export_s_without_s3": round(pipeline_s, 2),
        "peak_rss_mb_without_s3": pipeline_peak,
        "large_exports": [obj["format"] for obj in outcome.objects if obj["large"]],
        "seed_s": round(seed_s, 1),
        "other_records": OTHER_RECORDS,
    }


def _seed_subject(db: Any, crypto: Any, owner_dsn: str, org: uuid.UUID, name: str, records: int) -> uuid.UUID:
    """One subject (e-mail sealed) and its records: sealed in the app's tenant transaction (the
    subject's data key created and stored there), loaded by COPY in chunks of :data:`CHUNK`."""
    import psycopg

    from compliance.crypto.context import EncryptionContext

    subject = uuid.uuid4()
    rng = random.Random(name)  # noqa: S311 - benchmark data, not secrets
    with crypto.tenant(db, org) as (conn, encryptor):
        email = encryptor.encrypt(f"{name}@example.com", EncryptionContext(org, "subjects", "email", subject))
        conn.execute(
            "INSERT INTO subjects (id, org_id, external_id, created_at, email) VALUES (%s, %s, %s, %s, %s)",
            (subject, org, f"ext-{name}", T0, email),
        )
    contexts = {
        column: EncryptionContext(org, "usage_records", column, subject)
        for column in ("prompt_text", "completion_text", "client_ip")
    }
    alphabet = string.ascii_letters + string.digits + "      .,"
    with psycopg.connect(owner_dsn) as owner:
        for start in range(0, records, CHUNK):
            rows = []
            # Sealing needs the key from the tenant transaction; the cache then serves it.
            with crypto.tenant(db, org) as (_conn, encryptor):
                for number in range(start, min(start + CHUNK, records)):
                    texts = number % TEXT_SHARE == 0
                    prompt = "".join(rng.choices(alphabet, k=400)) if texts else None
                    completion = "".join(rng.choices(alphabet, k=200)) if texts else None
                    ip = f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"
                    rows.append(
                        (
                            org,
                            f"{name}-{number:07d}",
                            subject,
                            "openai",
                            "gpt-4o",
                            100 + number % 900,
                            50 + number % 400,
                            "0.00123456",
                            "USD",
                            120,
                            T0 + timedelta(seconds=number),
                            T0 + timedelta(seconds=number, milliseconds=5),
                            None if prompt is None else encryptor.encrypt(prompt, contexts["prompt_text"]),
                            None
                            if completion is None
                            else encryptor.encrypt(completion, contexts["completion_text"]),
                            encryptor.encrypt(ip, contexts["client_ip"]),
                            uuid.uuid4(),
                        )
                    )
            with (
                owner.cursor() as cur,
                cur.copy(f"COPY usage_records ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            owner.commit()
    return subject


class _HashingStore:
    """An ExportStore that reads and hashes each upload, keeps nothing and signs nothing real."""

    def put(self, key: str, body: Any, *, content_type: str, size: int, sha256_hex: str) -> None:
        digest = hashlib.sha256()
        while chunk := body.read(1 << 20):
            digest.update(chunk)
        if digest.hexdigest() != sha256_hex:
            raise AssertionError("the upload is not the file written")

    def presign(self, key: str, expires_in_s: int) -> str:
        return f"https://example.invalid/{key}"

    def delete_prefix(self, prefix: str) -> int:
        return 0

    def keys(self, prefix: str) -> list[str]:
        return []


def _rss_mb() -> float:
    for line in (
        Path("/proc/self/status").read_text().splitlines() if Path("/proc/self/status").exists() else []
    ):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _reset_peak_rss() -> None:
    """Reset the process's peak RSS (Linux: ``5`` to ``/proc/self/clear_refs``) so the figure
    covers the export and the erasure, not the seeding; elsewhere the peak is the process's."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(*, as_json: bool) -> int:
    from compliance_tools.bench import report

    report("DSR benchmark (export and erasure of one subject)", bench_dsr(), as_json=as_json)
    return 0
