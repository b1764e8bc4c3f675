"""The shred ledger on moto's S3 (Object Lock bucket): create-only, locked records holding ids
only, listed back as scopes without reading the objects."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from compliance.crypto.ledger import (
    LEDGER_FORMAT,
    S3ShredLedger,
    ShreddedScope,
    ShredLedgerError,
    ShredRecord,
    record_key,
)

BUCKET = "anchor-test"
ORG = uuid.UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
ALICE = uuid.UUID("1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b")
NOW = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
RECORD = ShredRecord(ORG, ALICE, (uuid.UUID(int=1),), NOW)


@pytest.fixture
def ledger(aws: None) -> S3ShredLedger:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    return S3ShredLedger(s3, BUCKET, retention_days=30)


def test_a_record_is_a_locked_object_with_ids_only(ledger: S3ShredLedger) -> None:
    # When a shred is recorded
    key = ledger.record(RECORD)

    # Then it is under shreds/<org>/<subject>/, locked in COMPLIANCE mode past the retention
    assert key == record_key(RECORD) and key.startswith(f"shreds/{ORG}/{ALICE}/20260506T070809.123456Z-")
    s3 = boto3.client("s3")
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] == datetime(2026, 6, 5, 7, 8, 10, tzinfo=UTC)
    # And the body holds the ids and the time, nothing else
    body = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert body == {
        "format": LEDGER_FORMAT,
        "org_id": str(ORG),
        "subject_id": str(ALICE),
        "key_ids": [str(uuid.UUID(int=1))],
        "shredded_at": NOW.isoformat(),
    }


def test_recording_the_same_shred_again_keeps_the_first_object(ledger: S3ShredLedger) -> None:
    # Given a recorded shred / When it is recorded again (a retry) / Then same key, one version
    assert ledger.record(RECORD) == ledger.record(RECORD)
    versions = boto3.client("s3").list_object_versions(Bucket=BUCKET, Prefix="shreds/")["Versions"]
    assert len(versions) == 1


def test_scopes_are_listed_from_the_keys_and_foreign_objects_ignored(ledger: S3ShredLedger) -> None:
    # Given two shreds, a repeated one, and an object that is no record
    bob = uuid.uuid4()
    ledger.record(RECORD)
    ledger.record(RECORD._replace(shredded_at=NOW + timedelta(days=1), key_ids=()))
    ledger.record(ShredRecord(ORG, bob, (), NOW))
    boto3.client("s3").put_object(Bucket=BUCKET, Key="shreds/README.txt", Body=b"x")

    # When the ledger is listed / Then every record's scope, the repeat too
    assert sorted(ledger.scopes()) == sorted(
        [ShreddedScope(ORG, ALICE), ShreddedScope(ORG, ALICE), ShreddedScope(ORG, bob)]
    )


def test_an_unwritable_ledger_raises_a_typed_error(aws: None) -> None:
    # Given no such bucket / When a shred is recorded or listed / Then ShredLedgerError
    ledger = S3ShredLedger(boto3.client("s3"), "missing-bucket", retention_days=30)
    with pytest.raises(ShredLedgerError):
        ledger.record(RECORD)
    with pytest.raises(ShredLedgerError):
        list(ledger.scopes())
