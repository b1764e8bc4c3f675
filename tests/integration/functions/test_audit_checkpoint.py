"""The audit checkpoint function on its scheduled event, against PostgreSQL and moto (KMS ECC
signing key, S3 bucket with Object Lock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import boto3
import pytest

from compliance.audit.checkpoint import load_public_key, parse_checkpoint_json, verify_signature
from compliance.audit.events import AuditEventIn
from compliance.db import audit, audit_checkpoints
from tests.integration.db.test_db_audit import batch

BUCKET = "audit-anchor-test"
RETENTION_DAYS = 30


@pytest.fixture
def signing_key(aws: None) -> str:
    kms = boto3.client("kms")
    return str(kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"])


@pytest.fixture
def checkpointer(aws: None, signing_key: str, org: str, db_env: dict[str, str], fresh_import: Any) -> Any:
    boto3.client("s3").create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    env = {
        **db_env,
        "AUDIT_SIGNING_KEY_ID": signing_key,
        "AUDIT_ANCHOR_BUCKET": BUCKET,
        "AUDIT_ANCHOR_RETENTION_DAYS": str(RETENTION_DAYS),
    }
    return fresh_import("functions.audit.checkpoint", env)


def append(migrated_db: Any, org: str, events: list[AuditEventIn]) -> None:
    with migrated_db.app.tenant(UUID(org)) as conn:
        audit.append_events(conn, UUID(org), events)


def test_the_schedule_signs_stores_and_anchors_a_checkpoint(
    checkpointer: Any, migrated_db: Any, org: str, signing_key: str, event: Any, lambda_context: Any
) -> None:
    # Given an organisation with three audit events
    append(migrated_db, org, batch(UUID(org), 3))

    # When the scheduled event arrives
    summary = checkpointer.handler(event("audit/checkpoint-schedule.json"), lambda_context)

    # Then one checkpoint was signed, and the summary names no person
    assert summary["signed"] == 1 and summary["organisations"] == 1
    assert summary["failed"] == 0 and summary["chain_broken"] == 0
    with migrated_db.app.tenant(UUID(org)) as conn:
        stored = audit_checkpoints.latest(conn)
    assert stored is not None and (stored.head.number, stored.head.tree_size) == (1, 3)
    assert stored.head.key_id == signing_key

    # And it is in the Object Lock bucket, locked in COMPLIANCE mode, identical to the stored one
    s3 = boto3.client("s3")
    [listed] = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"checkpoints/{org}/")["Contents"]
    assert listed["Key"] == f"checkpoints/{org}/000000000001-{stored.head_hash[:16]}.json"
    head = s3.head_object(Bucket=BUCKET, Key=listed["Key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    retain_until = head["ObjectLockRetainUntilDate"]
    assert (
        timedelta(0)
        <= retain_until - (stored.head.issued_at + timedelta(days=RETENTION_DAYS))
        < timedelta(seconds=1)
    )
    anchored = parse_checkpoint_json(s3.get_object(Bucket=BUCKET, Key=listed["Key"])["Body"].read())
    assert anchored == stored

    # And its signature verifies with the KMS public key, through cryptography
    public_key = load_public_key(boto3.client("kms").get_public_key(KeyId=signing_key)["PublicKey"])
    verify_signature(anchored, public_key)


def test_the_next_run_extends_the_chain_of_checkpoints_and_skips_idle_ones(
    checkpointer: Any, migrated_db: Any, org: str, event: Any, lambda_context: Any
) -> None:
    # Given a first checkpoint, then two more events
    schedule = event("audit/checkpoint-schedule.json")
    append(migrated_db, org, batch(UUID(org), 2))
    checkpointer.handler(schedule, lambda_context)
    append(migrated_db, org, batch(UUID(org), 2, start=2))

    # When the schedule fires twice more
    second = checkpointer.handler(schedule, lambda_context)
    third = checkpointer.handler(schedule, lambda_context)

    # Then the second run signs checkpoint 2 linked to 1, and the third finds nothing due
    assert second["signed"] == 1
    assert third == {**third, "organisations": 0, "signed": 0}
    with migrated_db.app.tenant(UUID(org)) as conn:
        first, latest = audit_checkpoints.list_checkpoints(conn, limit=10)
    assert latest.head.previous_head_hash == first.head_hash and latest.head.tree_size == 4
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == 2
