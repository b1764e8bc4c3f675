"""Concurrent processor transactions of one organisation over the same subjects neither deadlock nor wait
on each other's e-mail writes (the processor runs several invocations at once on one queue)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import boto3
import pytest

from compliance.audit.sink import MemoryAuditSink
from compliance.crypto.session import kms_field_crypto
from compliance.db.connection import Database
from compliance.ingest.store import store_usage_message
from compliance.models.usage import UsageMessage, UsageRecordIn
from tests.conftest import APP_PASSWORD, ProvisionedDatabase

SUBJECTS = [f"user-{i:02d}" for i in range(24)]
ROUNDS = 6
GRANT_ALL = """
    INSERT INTO consents (org_id, subject_id, purpose, legal_basis, notice_version, source, granted_at)
    SELECT org_id, id, 'prompt_logging', 'consent', 'n-1', 'test', now() - interval '1 minute'
    FROM subjects WHERE org_id = %s
"""


@pytest.fixture
def org(migrated_db: ProvisionedDatabase) -> uuid.UUID:
    org_id = uuid.uuid4()
    with migrated_db.owner() as conn:
        conn.execute("INSERT INTO organisations (id, name) VALUES (%s, 'Concurrent Org')", (org_id,))
        conn.execute(
            "INSERT INTO subjects (org_id, external_id) SELECT %s, unnest(%s::text[])", (org_id, SUBJECTS)
        )
        conn.execute(GRANT_ALL, (org_id,))
    return org_id


def message(org_id: uuid.UUID, writer: int, round_: int, subjects: list[str]) -> UsageMessage:
    records = [
        UsageRecordIn.model_validate(
            {
                "request_id": f"w{writer}-r{round_}-{subject}",
                "subject_id": subject,
                "subject_email": f"{subject}@example.org",
                "provider": "openai",
                "model": "gpt-4o",
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "cost": "0.001",
                "currency": "USD",
                "occurred_at": "2026-12-01T10:00:00Z",
                "prompt_text": "hello",
                "completion_text": "hi",
                "client_ip": "203.0.113.9",
            }
        )
        for subject in subjects
    ]
    return UsageMessage(org_id=org_id, batch_id=uuid.uuid4(), received_at=datetime.now(UTC), records=records)


def test_writers_over_the_same_subjects_in_opposite_orders_all_commit(
    aws: None, migrated_db: ProvisionedDatabase, org: uuid.UUID
) -> None:
    # Given subjects without data keys yet, and two writers (own connection, own key cache: two processes)
    # whose slices name the same subjects in opposite orders, each changing their e-mail addresses
    kms_key = str(boto3.client("kms").create_key()["KeyMetadata"]["Arn"])
    orders = [SUBJECTS, list(reversed(SUBJECTS))]
    errors: list[BaseException] = []
    stored: list[int] = []
    start = threading.Barrier(2)

    def write(writer: int) -> None:
        db = Database(migrated_db.app_dsn, password_provider=lambda: APP_PASSWORD)
        crypto = kms_field_crypto(kms_key, max_age_s=300, max_entries=100)
        try:
            start.wait()
            for round_ in range(ROUNDS):
                msg = message(org, writer, round_, orders[writer])
                stored.append(store_usage_message(msg, db=db, crypto=crypto, sink=MemoryAuditSink()))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    # When both run at once
    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then every slice committed on its first try (no deadlock was detected and rolled back)
    assert errors == []
    assert sum(stored) == 2 * ROUNDS * len(SUBJECTS)
    with migrated_db.owner() as conn:
        keys = conn.execute("SELECT count(*) FROM data_keys WHERE org_id = %s", (org,)).fetchone()
    assert keys is not None and keys[0] == len(SUBJECTS)  # one key per subject, whichever writer made it
