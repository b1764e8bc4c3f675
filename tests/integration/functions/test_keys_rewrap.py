"""The daily key job on its scheduled event, against PostgreSQL and moto (KMS field key, S3 Object
Lock bucket holding the shred ledger): shreds re-applied first, then keys re-wrapped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import boto3
import pytest

from compliance.audit.sink import MemoryAuditSink
from compliance.crypto import EncryptionContext, FieldEncryptor, KmsDataKeys
from compliance.crypto.ledger import S3ShredLedger, ShredRecord
from compliance.db.data_keys import PgWrappedKeyStore
from tests.aws_fixtures import REGION

BUCKET = "audit-anchor-test"


@pytest.fixture
def field_key(aws: None) -> str:
    return str(boto3.client("kms").create_key()["KeyMetadata"]["Arn"])


@pytest.fixture
def job(aws: None, field_key: str, org: str, db_env: dict[str, str], audited: Any) -> Any:
    boto3.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    env = {**db_env, "FIELD_KEY_ID": field_key, "SHRED_LEDGER_BUCKET": BUCKET, "KEY_REWRAP_MAX_AGE_DAYS": "1"}
    return audited("functions.keys.rewrap", env)


def seal(migrated_db: Any, org: UUID, subject: UUID, field_key: str) -> str:
    """Encrypt a value for ``subject`` (creates its data key), as a writer function would."""
    with migrated_db.app.tenant(org) as conn:
        store = PgWrappedKeyStore(conn, kms_key_id=field_key)
        encryptor = FieldEncryptor(KmsDataKeys(boto3.client("kms", region_name=REGION), field_key), store)
        return encryptor.encrypt("x", EncryptionContext(org, "subjects", "email", subject))


def test_the_schedule_reapplies_ledgered_shreds_then_rewraps_old_keys(
    job: Any,
    migrated_db: Any,
    org: str,
    field_key: str,
    audit: MemoryAuditSink,
    event: Any,
    lambda_context: Any,
) -> None:
    # Given two subjects with keys created two days ago; one of them is in the shred ledger
    alice, bob = UUID(int=11), UUID(int=12)
    for subject in (alice, bob):
        seal(migrated_db, UUID(org), subject, field_key)
    with migrated_db.owner() as conn:
        conn.execute("UPDATE data_keys SET created_at = now() - interval '2 days'")
    S3ShredLedger(boto3.client("s3"), BUCKET, 30).record(
        ShredRecord(UUID(org), alice, (), datetime.now(UTC) - timedelta(days=1))
    )

    # When the scheduled event arrives
    summary = job.handler(event("keys/rewrap-schedule.json"), lambda_context)

    # Then alice's scope is shredded again, bob's key re-wrapped; the summary holds ids and counts
    assert (summary["shreds_listed"], summary["shreds_reapplied"], summary["keys_rewrapped"]) == (1, 1, 1)
    assert summary["rewrap_failed_orgs"] == [] and summary["ledger_error"] is None
    with migrated_db.owner() as conn:
        rows = conn.execute(
            "SELECT subject_id, destroyed_at IS NOT NULL, rewrapped_at IS NOT NULL FROM data_keys"
        )
        assert sorted(rows.fetchall()) == [(alice, True, False), (bob, False, True)]
    assert [e.event_type for e in audit.events] == ["key.shredded", "key.rewrapped"]
    assert audit.events[0].details["reapplied"] is True


def test_a_kms_failure_is_reported_per_org_and_writes_nothing(
    aws: None,
    migrated_db: Any,
    org: str,
    field_key: str,
    db_env: dict[str, str],
    audited: Any,
    audit: MemoryAuditSink,
    event: Any,
    lambda_context: Any,
) -> None:
    # Given a key wrapped under the field key, and the job configured with a key KMS does not know
    seal(migrated_db, UUID(org), UUID(int=11), field_key)
    with migrated_db.owner() as conn:
        before = conn.execute(
            "SELECT key_id, wrapped_key, kms_key_id, rewrapped_at FROM data_keys"
        ).fetchall()
    boto3.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    missing = field_key.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    job = audited("functions.keys.rewrap", {**db_env, "FIELD_KEY_ID": missing, "SHRED_LEDGER_BUCKET": BUCKET})

    # When the scheduled event arrives
    summary = job.handler(event("keys/rewrap-schedule.json"), lambda_context)

    # Then the org is reported failed, its key is unchanged and nothing was audited
    assert summary["rewrap_failed_orgs"] == [org] and summary["keys_rewrapped"] == 0
    with migrated_db.owner() as conn:
        assert (
            conn.execute("SELECT key_id, wrapped_key, kms_key_id, rewrapped_at FROM data_keys").fetchall()
            == before
        )
    assert audit.events == []
