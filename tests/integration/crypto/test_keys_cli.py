"""`compliance keys rekey|reapply-shreds` end to end: the command line, the database as the
application user, moto's KMS, SQS (audit queue) and S3 (the ledger in an Object Lock bucket)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from compliance.crypto import DataKeyCache, KeyShreddedError, KmsDataKeys
from compliance.crypto.envelope import from_text, key_id_of
from compliance.crypto.ledger import S3ShredLedger
from compliance.crypto.shredding import shred
from compliance_tools import cli
from tests.integration.crypto.test_key_rotation import restore_data_keys
from tests.integration.crypto.test_shred_end_to_end import NOW, REGION, World

BUCKET = "anchor-test"


@pytest.fixture
def provider(aws: None) -> KmsDataKeys:
    kms = boto3.client("kms", region_name=REGION)
    arn = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    return KmsDataKeys(kms, arn)


@pytest.fixture
def world(migrated_db: Any, provider: KmsDataKeys, monkeypatch: pytest.MonkeyPatch) -> World:
    queue = boto3.client("sqs", region_name=REGION).create_queue(
        QueueName="audit.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    for name, value in {
        "DATABASE_URL": migrated_db.app_dsn,
        "FIELD_KEY_ID": provider.kms_key_id,
        "AUDIT_QUEUE_URL": queue,
        "SHRED_LEDGER_BUCKET": BUCKET,
        "FIELD_KEY_CACHE_MAX_AGE_S": "1",
    }.items():
        monkeypatch.setenv(name, value)
    return World(migrated_db, provider)


def test_rekey_from_the_command_line(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # Given org A's encrypted prompts under its current keys
    old = {row.request_id: key_id_of(from_text(row.prompt_text)) for row in world.rows()}

    # When `compliance keys rekey --org A --batch-size 1` runs (waiting out the 1 s cache age)
    status = cli.main(["keys", "rekey", "--org", str(world.org_a), "--batch-size", "1"])

    # Then it finished, reports its counts, and A's prompts are under new keys and decrypt
    assert status == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["finished"], report["values_rekeyed"], report["values_skipped"]) == (True, 3, 0)
    for row in world.rows():
        moved = key_id_of(from_text(row.prompt_text)) != old[row.request_id]
        assert moved == (row.org_id == world.org_a)
        assert world.decrypt(row, DataKeyCache()) == world.plaintexts[row.request_id]

    # And a second start while none is open works, `--resume` of a finished run reports it done
    assert cli.main(["keys", "rekey", "--org", str(world.org_a), "--resume", report["run_id"]]) == 0


def test_reapply_shreds_from_the_command_line(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # Given alice shredded (recorded in the S3 ledger) and a restore from before
    with world.db.owner() as conn:
        conn.execute("CREATE TABLE data_keys_backup AS SELECT * FROM data_keys")
    ledger = S3ShredLedger(boto3.client("s3", region_name=REGION), BUCKET, retention_days=1)
    shred(world.db.app, world.sink, world.org_a, world.alice, actor="system:dsr", now=NOW, ledger=ledger)
    restore_data_keys(world, "data_keys_backup")

    # When `compliance keys reapply-shreds` runs
    status = cli.main(["keys", "reapply-shreds"])

    # Then it re-applied her shred, and her values are erased again
    assert status == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["shreds_listed"], report["shreds_reapplied"], report["keys_destroyed"]) == (1, 1, 1)
    alice_row = next(r for r in world.rows() if r.subject_id == world.alice)
    with pytest.raises(KeyShreddedError):
        world.decrypt(alice_row, DataKeyCache())


def test_a_missing_variable_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHRED_LEDGER_BUCKET", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused")
    assert cli.main(["keys", "reapply-shreds"]) == 2
