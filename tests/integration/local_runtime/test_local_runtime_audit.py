"""What the audit trail needs from the local runtime: FIFO polling in group order with partial failures and
FIFO redrive, an asymmetric signing key, an Object Lock bucket, presigned URLs a client can fetch, and a
rate() schedule that `compliance local trigger` fires."""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compliance_tools.local.runtime import LocalRuntime
from tests.integration.local_runtime.local_runtime_fixtures import Assembly, python_function, wait_until

GROUPS = {"a": 6, "b": 6, "c": 3}

# Records each invocation (start, end, records) in a file; fails "b-2" on its first receive the way
# Powertools' FIFO processor does (it and every later message of its group), and "c-poison" always.
CONSUMER = """
    import json
    import os
    import threading
    import time

    LOG = os.environ["CFG_LOG"]
    _lock = threading.Lock()


    def handler(event, context):
        start = time.monotonic()
        time.sleep(0.05)
        failures, failed_groups, done = [], set(), []
        for record in event["Records"]:
            group = record["attributes"]["MessageGroupId"]
            first = record["attributes"]["ApproximateReceiveCount"] == "1"
            if group in failed_groups or record["body"] == "c-poison" or (record["body"] == "b-2" and first):
                failed_groups.add(group)
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            done.append([group, record["body"], record["attributes"]["SequenceNumber"]])
        with _lock, open(LOG, "a") as log:
            log.write(json.dumps({"start": start, "end": time.monotonic(), "done": done}) + "\\n")
        return {"batchItemFailures": failures}
"""

PRESIGN = """
    import os

    import boto3
    from botocore.config import Config

    BUCKET = os.environ["CFG_BUCKET"]


    def handler(event, context):
        s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
        s3.put_object(Bucket=BUCKET, Key=event["key"], Body=event["body"].encode())
        return s3.generate_presigned_url(
            "get_object", Params={"Bucket": BUCKET, "Key": event["key"]}, ExpiresIn=60
        )
"""

TICK = """
    def handler(event, context):
        return {"detail-type": event["detail-type"], "source": event["source"]}
"""


def _fifo(**properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "FifoQueue": True,
            "ContentBasedDeduplication": False,
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
            "KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]},
            **properties,
        },
    }


def template_resources(assembly: Assembly, log: Path) -> dict[str, Any]:
    consumer = assembly.asset("audit-consumer", {"consumer.py": CONSUMER})
    presign = assembly.asset("audit-presign", {"presign.py": PRESIGN})
    tick = assembly.asset("audit-tick", {"tick.py": TICK})
    return {
        "Key": {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {}}},
        "SigningKey": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "KeySpec": "ECC_NIST_P256",
                "KeyUsage": "SIGN_VERIFY",
                "EnableKeyRotation": False,
                "KeyPolicy": {},
            },
        },
        "SigningKeyAlias": {
            "Type": "AWS::KMS::Alias",
            "Properties": {
                "AliasName": "alias/audit-signing",
                "TargetKeyId": {"Fn::GetAtt": ["SigningKey", "Arn"]},
            },
        },
        "AuditDlq": _fifo(MessageRetentionPeriod=1209600),
        "AuditQueue": _fifo(
            VisibilityTimeout=3,  # short for fast retries, long enough for a loaded CI machine
            RedrivePolicy={"deadLetterTargetArn": {"Fn::GetAtt": ["AuditDlq", "Arn"]}, "maxReceiveCount": 2},
        ),
        "Anchor": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "ObjectLockEnabled": True,
                "ObjectLockConfiguration": {
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 2557}},
                },
                "VersioningConfiguration": {"Status": "Enabled"},
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {
                            "BucketKeyEnabled": True,
                            "ServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
                            },
                        }
                    ]
                },
            },
        },
        "Exports": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
        },
        "Append": python_function(
            consumer,
            "consumer.handler",
            ReservedConcurrentExecutions=2,
            Environment={"Variables": {"CFG_LOG": str(log)}},
        ),
        "AppendMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": "Append"},
                "EventSourceArn": {"Fn::GetAtt": ["AuditQueue", "Arn"]},
                "BatchSize": 10,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": 2},
            },
        },
        "Presign": python_function(
            presign, "presign.handler", Environment={"Variables": {"CFG_BUCKET": {"Ref": "Exports"}}}
        ),
        "Checkpoint": python_function(tick, "tick.handler", ReservedConcurrentExecutions=1),
        "CheckpointSchedule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "ScheduleExpression": "rate(5 minutes)",
                "State": "ENABLED",
                "Targets": [{"Arn": {"Fn::GetAtt": ["Checkpoint", "Arn"]}, "Id": "Target0"}],
            },
        },
    }


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit-log") / "invocations.jsonl"


@pytest.fixture(scope="module")
def runtime(assembly: Assembly, log: Path) -> Iterator[LocalRuntime]:
    assembly.stack = "AuditLocal"
    template = assembly.template(template_resources(assembly, log))
    local = LocalRuntime(
        template,
        data_dir=assembly.root.parent / "audit-local-data",
        pg_factory=None,
        start_api=False,
        pollers_per_mapping=2,
    )
    with local:
        yield local


def _invocations(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]


def test_fifo_groups_are_processed_in_order_one_invocation_at_a_time(
    runtime: LocalRuntime, log: Path
) -> None:
    # Given interleaved events of three orgs (message groups), with a transient failure in b and a poison in c
    sqs = runtime.client("sqs")
    queue = runtime.resources["AuditQueue"]
    bodies = {group: [f"{group}-{i}" for i in range(count)] for group, count in GROUPS.items()}
    # The poison is the last of its group: messages behind it would fail with it and, like in AWS, reach the
    # DLQ too once they had been received maxReceiveCount times.
    bodies["c"][-1] = "c-poison"
    for index in range(max(GROUPS.values())):
        for group, items in bodies.items():
            if index < len(items):
                sqs.send_message(
                    QueueUrl=queue,
                    MessageBody=items[index],
                    MessageGroupId=group,
                    MessageDeduplicationId=items[index],
                )

    # When the two pollers have processed everything that can succeed
    expected = sum(GROUPS.values()) - 1

    def processed() -> list[list[str]]:
        done = [entry for invocation in _invocations(log) for entry in invocation["done"]]
        return done if len(done) >= expected else []

    done = wait_until(processed, timeout=40)

    # Then each group's successes came in send order, the retried b-2 included, with growing sequence numbers
    for group, items in bodies.items():
        mine = [entry for entry in done if entry[0] == group]
        assert [body for _, body, _ in mine] == [body for body in items if body != "c-poison"], group
        numbers = [int(number) for _, _, number in mine]
        assert numbers == sorted(numbers), group
    # And no two invocations ever held the same group at the same time
    invocations = _invocations(log)
    for group in GROUPS:
        spans = sorted((i["start"], i["end"]) for i in invocations if any(e[0] == group for e in i["done"]))
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, group
    # And the poison message reached the FIFO DLQ after maxReceiveCount receives, with its group

    def dead() -> list[dict[str, Any]]:
        response = sqs.receive_message(
            QueueUrl=runtime.resources["AuditDlq"], WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]
        )
        return list(response.get("Messages", []))

    (poison,) = wait_until(dead, timeout=30)
    assert poison["Body"] == "c-poison"
    assert poison["Attributes"]["MessageGroupId"] == "c"


def test_signing_key_is_asymmetric_and_signs(runtime: LocalRuntime) -> None:
    # Given the template's signing key, by its alias
    kms = runtime.client("kms")
    metadata = kms.describe_key(KeyId="alias/audit-signing")["KeyMetadata"]
    # Then it is the P-256 signing key of the template, and signs RAW messages with ECDSA_SHA_256
    assert (metadata["KeySpec"], metadata["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    assert metadata["Arn"] == runtime.attribute("SigningKey", "Arn")
    signature = kms.sign(
        KeyId=metadata["Arn"], Message=b"tree head", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public_key = serialization.load_der_public_key(kms.get_public_key(KeyId=metadata["Arn"])["PublicKey"])
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, b"tree head", ec.ECDSA(hashes.SHA256()))


def test_anchor_bucket_has_object_lock_in_compliance_mode(runtime: LocalRuntime) -> None:
    s3 = runtime.client("s3")
    bucket = runtime.resources["Anchor"]
    configuration = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert configuration["ObjectLockEnabled"] == "Enabled"
    retention = configuration["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("COMPLIANCE", 2557)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # And an object written there cannot be deleted while retained
    version = s3.put_object(Bucket=bucket, Key="checkpoints/x/1.json", Body=b"{}")["VersionId"]
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=bucket, Key="checkpoints/x/1.json", VersionId=version)


def test_a_functions_presigned_url_is_fetchable_by_a_client(runtime: LocalRuntime) -> None:
    # When a function writes an export and presigns it (SigV4) with its own environment
    url = runtime.invoke("Presign", {"key": "audit-exports/org/1/events.jsonl", "body": '{"seq": 1}\n'})
    # Then the URL points at the local moto server and a plain HTTP client gets the object
    assert url.startswith(runtime.moto_endpoint + "/")
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b'{"seq": 1}\n'


def test_the_checkpoint_schedule_is_known_and_fires_on_trigger(runtime: LocalRuntime) -> None:
    # Given the scheduler of the runtime
    assert runtime.scheduler is not None
    schedule = runtime.scheduler.schedules["CheckpointSchedule"]
    assert schedule.period is not None and schedule.period.total_seconds() == 300
    # When the rule is fired by its logical id (what `compliance local trigger CheckpointSchedule` does)
    (report,) = runtime.fire_rule("CheckpointSchedule")
    # Then the checkpoint function got a scheduled event
    assert report["status"] == "ok"
    assert report["result"] == {"detail-type": "Scheduled Event", "source": "aws.events"}
