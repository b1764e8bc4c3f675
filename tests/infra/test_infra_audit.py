"""The audit trail's infrastructure: FIFO queue, signing key, Object Lock anchor, exports, least privilege."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import constants as c
from tests.infra.conftest import Resource, Synthesized
from tests.infra.test_infra_template import _as_list, _function_by_handler, _ref, _statements_of_role

pytestmark = pytest.mark.infra

PRODUCERS = (
    ("auth", "authorizer.handler"),
    ("ingest", "api.handler"),
    ("admin", "api.handler"),
    ("audit", "api.handler"),
    ("pii", "api.handler"),
    ("pii", "sweep.handler"),
    # key.created for new data keys, usage.records_rejected for records refused for personal data
    ("ingest", "processor.handler"),
    # key.rewrapped, key.shredded (re-applied from the shred ledger)
    ("keys", "rewrap.handler"),
    # dsr.* for requests and every workflow step; subject.erased; key.created for sealed corrections
    ("dsr", "api.handler"),
    ("dsr", "steps.record"),
    ("dsr", "steps.verification"),
    ("dsr", "steps.export"),
    ("dsr", "steps.erasure"),
    ("dsr", "steps.change"),
    ("dsr", "steps.notify"),
)


def _one(synthesized: Synthesized, resource_type: str, prefix: str) -> tuple[str, Resource]:
    (found,) = [(lid, r) for lid, r in synthesized.of_type(resource_type).items() if lid.startswith(prefix)]
    return found


def _arn_of(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _role_statements(synthesized: Synthesized) -> dict[str, list[dict[str, Any]]]:
    """Function logical id -> every statement of its role."""
    return {
        lid: _statements_of_role(synthesized, fn["Properties"]["Role"]["Fn::GetAtt"][0])
        for lid, fn in synthesized.app_functions().items()
    }


def _every_role_statements(synthesized: Synthesized) -> dict[str, list[dict[str, Any]]]:
    """Role logical id -> every statement of that role, for every role of the app (not only functions')."""
    return {lid: _statements_of_role(synthesized, lid) for lid in synthesized.of_type("AWS::IAM::Role")}


def _role_of(synthesized: Synthesized, function_id: str) -> str:
    return str(synthesized.resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0])


def _holders(synthesized: Synthesized, action: str, resource: Any) -> set[str]:
    """Functions whose role allows ``action`` on ``resource`` (or on a Join that starts with it)."""
    holders = set()
    for lid, statements in _role_statements(synthesized).items():
        for st in statements:
            if action not in _as_list(st["Action"]):
                continue
            for res in _as_list(st["Resource"]):
                if res == resource or (
                    isinstance(res, dict) and resource in res.get("Fn::Join", [[], []])[1]
                ):
                    holders.add(lid)
    return holders


def _fn(synthesized: Synthesized, code_dir: str, handler: str) -> str:
    return _function_by_handler(synthesized, code_dir, handler)[0]


# --- Queue ----------------------------------------------------------------------------------------------


def test_audit_queue_is_high_throughput_fifo_with_a_fifo_dead_letter_queue(synthesized: Synthesized) -> None:
    # Given the audit queue and its DLQ
    _, queue = _one(synthesized, "AWS::SQS::Queue", "AuditQueue")
    dlq_id, dlq = _one(synthesized, "AWS::SQS::Queue", "AuditDeadLetterQueue")
    (key_id,) = [
        k
        for k, r in synthesized.of_type("AWS::KMS::Key").items()
        if "KeyUsage" not in r["Properties"] and k.startswith("SecurityKey")
    ]

    # Then both are FIFO, deduplicated by the producer's id per message group, encrypted with the CMK
    for props in (queue["Properties"], dlq["Properties"]):
        assert props["FifoQueue"] is True
        assert props["ContentBasedDeduplication"] is False
        assert props["DeduplicationScope"] == "messageGroup"
        assert props["FifoThroughputLimit"] == "perMessageGroupId"
        assert props["KmsMasterKeyId"] == _arn_of(key_id)
    # And the queue redrives to the DLQ after 3 receives; the DLQ keeps messages 14 days
    assert queue["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": _arn_of(dlq_id),
        "maxReceiveCount": 3,
    }
    assert dlq["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_append_consumes_the_fifo_queue_without_a_batching_window(synthesized: Synthesized) -> None:
    # Given the audit consumer and its event source mapping
    append_id, append = _function_by_handler(synthesized, "audit", "append.handler")
    queue_id, _ = _one(synthesized, "AWS::SQS::Queue", "AuditQueue")
    (mapping,) = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == _ref(append_id)
    ]

    # Then it polls the FIFO queue in batches of 10 with partial failures, within its small concurrency
    assert mapping["EventSourceArn"] == _arn_of(queue_id)
    assert mapping["BatchSize"] == c.AUDIT_BATCH_SIZE
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumBatchingWindowInSeconds" not in mapping
    assert 1 <= append["Properties"]["ReservedConcurrentExecutions"] <= 3
    assert (
        mapping["ScalingConfig"]["MaximumConcurrency"] <= append["Properties"]["ReservedConcurrentExecutions"]
    )


# --- Signing key, anchor and exports buckets -------------------------------------------------------------


def test_signing_key_is_an_asymmetric_p256_key_that_is_kept(synthesized: Synthesized) -> None:
    # Given the signing key and its alias
    key_id, key = _one(synthesized, "AWS::KMS::Key", "AuditSigningKey")
    (alias,) = [
        a
        for a in synthesized.of_type("AWS::KMS::Alias").values()
        if a["Properties"]["TargetKeyId"] == _arn_of(key_id)
    ]

    # Then it signs with ECDSA P-256, is never deleted with the stack, and has its alias
    assert key["Properties"]["KeySpec"] == "ECC_NIST_P256"
    assert key["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    assert key["Properties"]["EnableKeyRotation"] is False  # KMS cannot rotate asymmetric keys
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert alias["Properties"] == {"AliasName": c.AUDIT_SIGNING_KEY_ALIAS, "TargetKeyId": _arn_of(key_id)}


def test_anchor_bucket_locks_checkpoints_in_compliance_mode(synthesized: Synthesized) -> None:
    # Given the anchor bucket
    _, bucket = _one(synthesized, "AWS::S3::Bucket", "AuditAnchorBucket")
    props = bucket["Properties"]

    # Then Object Lock keeps every object for the configured days in COMPLIANCE mode, versioned
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": c.AUDIT_ANCHOR_RETENTION_DAYS}},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain"


def test_data_buckets_are_private_tls_only_kms_encrypted_and_access_logged(synthesized: Synthesized) -> None:
    # Given the buckets and their policies
    buckets = synthesized.of_type("AWS::S3::Bucket")
    logs_id, logs = _one(synthesized, "AWS::S3::Bucket", "AccessLogsBucket")
    (key_id,) = [
        k
        for k, r in synthesized.of_type("AWS::KMS::Key").items()
        if "KeyUsage" not in r["Properties"] and k.startswith("SecurityKey")
    ]
    tls_only = {
        policy["Properties"]["Bucket"]["Ref"]
        for policy in synthesized.of_type("AWS::S3::BucketPolicy").values()
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    }

    # Then every bucket blocks public access, refuses plain HTTP and is kept on stack deletion
    assert tls_only == set(buckets)
    for lid, bucket in buckets.items():
        props = bucket["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values()), lid
        assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}, lid
        assert bucket["DeletionPolicy"] == "Retain", lid
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, lid
        # And the data buckets use the CMK and log to the access-log bucket (which S3 requires SSE-S3 for)
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        if lid == logs_id:
            assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
            continue
        assert rule["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": _arn_of(key_id),
        }
        assert props["LoggingConfiguration"]["DestinationBucketName"] == _ref(logs_id), lid
    assert "LoggingConfiguration" not in logs["Properties"]


def test_exports_expire(synthesized: Synthesized) -> None:
    _, bucket = _one(synthesized, "AWS::S3::Bucket", "AuditExportsBucket")
    (rule,) = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == c.EXPORTS_EXPIRY.to_days()
    assert rule["Status"] == "Enabled"
    assert "ObjectLockConfiguration" not in bucket["Properties"]


def test_checkpoint_function_runs_on_its_schedule(synthesized: Synthesized) -> None:
    # Given the schedule rule that targets the checkpoint function
    checkpoint_id = _fn(synthesized, "audit", "checkpoint.handler")
    (rule,) = [
        r
        for r in synthesized.of_type("AWS::Events::Rule").values()
        if _arn_of(checkpoint_id) in [t["Arn"] for t in r["Properties"]["Targets"]]
    ]

    # Then it fires the checkpoint function alone, on the configured rate
    assert rule["Properties"]["ScheduleExpression"] == f"rate({c.AUDIT_CHECKPOINT_SCHEDULE_MINUTES} minutes)"
    assert rule["Properties"]["State"] == "ENABLED"
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [_arn_of(checkpoint_id)]
    (permission,) = [
        p["Properties"]
        for p in synthesized.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
        and p["Properties"]["FunctionName"] == _arn_of(checkpoint_id)
    ]
    assert permission["SourceArn"]


# --- Environment ---------------------------------------------------------------------------------------


def test_audit_environment_follows_the_contract(synthesized: Synthesized) -> None:
    # Given the audit resources
    queue_id, _ = _one(synthesized, "AWS::SQS::Queue", "AuditQueue")
    dlq_id, _ = _one(synthesized, "AWS::SQS::Queue", "AuditDeadLetterQueue")
    key_id, _ = _one(synthesized, "AWS::KMS::Key", "AuditSigningKey")
    anchor_id, _ = _one(synthesized, "AWS::S3::Bucket", "AuditAnchorBucket")
    exports_id, _ = _one(synthesized, "AWS::S3::Bucket", "AuditExportsBucket")

    def env(code_dir: str, handler: str) -> dict[str, Any]:
        _, fn = _function_by_handler(synthesized, code_dir, handler)
        return dict(fn["Properties"]["Environment"]["Variables"])

    # Then every producer knows the queue
    for code_dir, handler in PRODUCERS:
        assert env(code_dir, handler)["AUDIT_QUEUE_URL"] == _ref(queue_id), (code_dir, handler)
    # And each audit function gets exactly its settings
    assert env("audit", "append.handler")["AUDIT_DEAD_LETTER_QUEUE_URL"] == _ref(dlq_id)
    checkpoint = env("audit", "checkpoint.handler")
    assert checkpoint["AUDIT_SIGNING_KEY_ID"] == _arn_of(key_id)
    assert checkpoint["AUDIT_ANCHOR_BUCKET"] == _ref(anchor_id)
    assert checkpoint["AUDIT_ANCHOR_RETENTION_DAYS"] == str(c.AUDIT_ANCHOR_RETENTION_DAYS)
    api = env("audit", "api.handler")
    download_role_id, _ = _one(synthesized, "AWS::IAM::Role", "AuditExportDownloadRole")
    assert api["AUDIT_SIGNING_KEY_ID"] == _arn_of(key_id)
    assert api["EXPORT_DOWNLOAD_ROLE_ARN"] == _arn_of(download_role_id)
    assert api["EXPORTS_BUCKET"] == _ref(exports_id)
    assert api["EXPORT_URL_EXPIRY_S"] == str(c.EXPORT_URL_EXPIRY_S)
    # And the settings models accept these names (the contract with config.py)
    from compliance.config import AuditApiSettings, AuditAppendSettings, AuditCheckpointSettings

    for model, variables in (
        (AuditAppendSettings, env("audit", "append.handler")),
        (AuditCheckpointSettings, checkpoint),
        (AuditApiSettings, api),
    ):
        fields = {name.upper() for name in model.model_fields}
        audit_vars = {name for name in variables if name.startswith(("AUDIT_", "EXPORT"))}
        assert audit_vars <= fields, (model.__name__, audit_vars - fields)


def test_audit_functions_deploy_after_the_migrations(synthesized: Synthesized) -> None:
    (trigger_id,) = synthesized.of_type("Custom::Trigger")
    for handler in ("append.handler", "checkpoint.handler", "api.handler"):
        _, fn = _function_by_handler(synthesized, "audit", handler)
        assert trigger_id in fn["DependsOn"], handler


# --- Least privilege -----------------------------------------------------------------------------------


def test_only_the_checkpoint_function_signs_and_only_with_the_signing_key(synthesized: Synthesized) -> None:
    # Given the signing key and every function's statements
    key_id, _ = _one(synthesized, "AWS::KMS::Key", "AuditSigningKey")
    checkpoint_id = _fn(synthesized, "audit", "checkpoint.handler")
    api_id = _fn(synthesized, "audit", "api.handler")
    statements = _role_statements(synthesized)

    # Then kms:Sign appears once in the whole app, on the checkpoint role, for the signing key only
    signing = [
        (lid, st) for lid, sts in statements.items() for st in sts if "kms:Sign" in _as_list(st["Action"])
    ]
    assert [lid for lid, _ in signing] == [checkpoint_id]
    assert _as_list(signing[0][1]["Resource"]) == [_arn_of(key_id)]
    # And the signing key appears in no other statement than Sign (checkpoint) and GetPublicKey (API)
    for lid, sts in statements.items():
        for st in sts:
            if _arn_of(key_id) in _as_list(st["Resource"]):
                expected = {checkpoint_id: ["kms:Sign"], api_id: ["kms:GetPublicKey"]}
                assert _as_list(st["Action"]) == expected.get(lid), (lid, st)


def test_only_producers_send_to_the_audit_queue_and_only_append_to_its_dlq(synthesized: Synthesized) -> None:
    # Given the queues
    queue_id, _ = _one(synthesized, "AWS::SQS::Queue", "AuditQueue")
    dlq_id, _ = _one(synthesized, "AWS::SQS::Queue", "AuditDeadLetterQueue")
    producers = {_fn(synthesized, code_dir, handler) for code_dir, handler in PRODUCERS}

    # Then exactly the producers may send audit events, and only the consumer dead-letters them
    assert _holders(synthesized, "sqs:SendMessage", _arn_of(queue_id)) == producers
    assert _holders(synthesized, "sqs:SendMessage", _arn_of(dlq_id)) == {
        _fn(synthesized, "audit", "append.handler")
    }
    assert _holders(synthesized, "sqs:ReceiveMessage", _arn_of(queue_id)) == {
        _fn(synthesized, "audit", "append.handler")
    }
    # And every producer may use the queue's key through SQS only
    for lid, sts in _role_statements(synthesized).items():
        if lid in producers:
            (key_st,) = [st for st in sts if st.get("Sid") == "AuditQueueKeyForSend"]
            assert sorted(_as_list(key_st["Action"])) == ["kms:Decrypt", "kms:GenerateDataKey"]
            assert "kms:ViaService" in key_st["Condition"]["StringEquals"]


def test_bucket_access_is_limited_to_one_prefix_each(synthesized: Synthesized) -> None:
    # Given the buckets and the roles of the checkpoint function, the audit API and the download role
    anchor_id, _ = _one(synthesized, "AWS::S3::Bucket", "AuditAnchorBucket")
    exports_id, _ = _one(synthesized, "AWS::S3::Bucket", "AuditExportsBucket")
    checkpoint_role = _role_of(synthesized, _fn(synthesized, "audit", "checkpoint.handler"))
    api_role = _role_of(synthesized, _fn(synthesized, "audit", "api.handler"))
    download_role, _ = _one(synthesized, "AWS::IAM::Role", "AuditExportDownloadRole")
    key_job_role = _role_of(synthesized, _fn(synthesized, "keys", "rewrap.handler"))
    dsr_exports_id, _ = _one(synthesized, "AWS::S3::Bucket", "DsrExportsBucket")
    dsr = {
        step: _role_of(synthesized, _fn(synthesized, "dsr", step))
        for step in ("steps.export", "steps.erasure")
    }

    # Then every s3 statement of every role in the app is one of these, on one prefix of one bucket
    s3_statements = {
        (lid, tuple(sorted(_as_list(st["Action"])))): st["Resource"]
        for lid, sts in _every_role_statements(synthesized).items()
        for st in sts
        if any(a.startswith("s3:") for a in _as_list(st["Action"]))
    }
    exports = {"Fn::Join": ["", [_arn_of(exports_id), f"/{c.EXPORTS_PREFIX}*"]]}
    dsr_exports = {"Fn::Join": ["", [_arn_of(dsr_exports_id), "/*"]]}
    assert s3_statements == {
        (checkpoint_role, ("s3:PutObject", "s3:PutObjectRetention")): {
            "Fn::Join": ["", [_arn_of(anchor_id), f"/{c.AUDIT_ANCHOR_PREFIX}*"]]
        },
        # The API writes exports but cannot read them back: download URLs are the download role's.
        (api_role, ("s3:AbortMultipartUpload", "s3:PutObject")): exports,
        (download_role, ("s3:GetObject",)): exports,
        # The key job lists the shred ledger (condition s3:prefix shreds/*, tests/infra/test_infra_keys.py).
        (key_job_role, ("s3:ListBucket",)): _arn_of(anchor_id),
        # DSR: the export step writes subjects' exports, the erasure step deletes every version of them
        # and records its shred in the ledger (links are signed by the signer user: test_infra_dsr.py).
        (dsr["steps.export"], ("s3:AbortMultipartUpload", "s3:PutObject")): dsr_exports,
        (dsr["steps.erasure"], ("s3:DeleteObject", "s3:DeleteObjectVersion")): dsr_exports,
        (dsr["steps.erasure"], ("s3:ListBucket", "s3:ListBucketVersions")): _arn_of(dsr_exports_id),
        (dsr["steps.erasure"], ("s3:PutObject", "s3:PutObjectRetention")): {
            "Fn::Join": ["", [_arn_of(anchor_id), f"/{c.SHRED_LEDGER_PREFIX}*"]]
        },
    }


def test_only_the_audit_api_role_can_assume_the_export_download_role(synthesized: Synthesized) -> None:
    # Given the download role and the audit API function's role
    download_role_id, download_role = _one(synthesized, "AWS::IAM::Role", "AuditExportDownloadRole")
    api_role = _role_of(synthesized, _fn(synthesized, "audit", "api.handler"))
    props = download_role["Properties"]

    # Then its trust policy names that one role, for sessions named after an export, of at most 1 h
    assert props["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"AWS": _arn_of(api_role)},
            "Condition": {"StringLike": {"sts:RoleSessionName": f"{c.EXPORT_DOWNLOAD_SESSION_PREFIX}*"}},
        }
    ]
    assert props["MaxSessionDuration"] == 3600
    # (the prefix the code names its sessions with, or every AssumeRole would be denied)
    from compliance.audit.download_links import SESSION_PREFIX

    assert c.EXPORT_DOWNLOAD_SESSION_PREFIX == SESSION_PREFIX
    assert "ManagedPolicyArns" not in props and "Policies" not in props
    # And sts:AssumeRole appears on the audit API role alone, on exactly the download role
    assume = [
        (lid, st)
        for lid, sts in _every_role_statements(synthesized).items()
        for st in sts
        if any(a.startswith("sts:") for a in _as_list(st["Action"]))
    ]
    assert [(lid, _as_list(st["Action"]), _as_list(st["Resource"])) for lid, st in assume] == [
        (api_role, ["sts:AssumeRole"], [_arn_of(download_role_id)])
    ]


def test_the_export_download_role_can_only_read_exports(synthesized: Synthesized) -> None:
    # Given the download role's statements, the exports bucket and the CMK
    download_role_id, _ = _one(synthesized, "AWS::IAM::Role", "AuditExportDownloadRole")
    exports_id, _ = _one(synthesized, "AWS::S3::Bucket", "AuditExportsBucket")
    (key_id,) = [
        k
        for k, r in synthesized.of_type("AWS::KMS::Key").items()
        if "KeyUsage" not in r["Properties"] and k.startswith("SecurityKey")
    ]
    statements = _statements_of_role(synthesized, download_role_id)

    # Then it may GetObject under audit-exports/ and decrypt with the CMK through S3 only: nothing else
    assert sorted(
        (st["Effect"], tuple(_as_list(st["Action"])), json.dumps(st["Resource"], sort_keys=True))
        for st in statements
    ) == sorted(
        [
            (
                "Allow",
                ("s3:GetObject",),
                json.dumps(
                    {"Fn::Join": ["", [_arn_of(exports_id), f"/{c.EXPORTS_PREFIX}*"]]}, sort_keys=True
                ),
            ),
            ("Allow", ("kms:Decrypt",), json.dumps(_arn_of(key_id), sort_keys=True)),
        ]
    )
    (key_statement,) = [st for st in statements if st["Action"] == "kms:Decrypt"]
    assert key_statement["Condition"] == {
        "StringEquals": {
            "kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
        }
    }


def test_functions_reach_sts_through_a_vpc_endpoint(synthesized: Synthesized) -> None:
    # Given the interface endpoints of the isolated VPC (no NAT: AWS APIs only through endpoints)
    services = [
        r["Properties"]["ServiceName"]
        for r in synthesized.of_type("AWS::EC2::VPCEndpoint").values()
        if r["Properties"].get("VpcEndpointType") == "Interface"
    ]
    # Then STS is one of them, with private DNS, so the audit API can assume the download role
    sts = {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".sts"]]}
    assert sts in services


def test_alarms_cover_the_audit_dlq_and_metrics(synthesized: Synthesized) -> None:
    alarms = [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]
    metric_alarms = {
        a["MetricName"]
        for a in alarms
        if a.get("Namespace") == c.POWERTOOLS_METRICS_NAMESPACE
        and a["Dimensions"] == [{"Name": "service", "Value": c.POWERTOOLS_SERVICE_NAME}]
    }
    assert set(c.AUDIT_ALARM_METRICS) <= metric_alarms


def test_outputs_name_the_audit_resources(synthesized: Synthesized) -> None:
    outputs = synthesized.template["Outputs"]
    for name in (
        "AuditQueueUrl",
        "AuditDeadLetterQueueUrl",
        "AuditSigningKeyArn",
        "AuditAnchorBucketName",
        "ExportsBucketName",
    ):
        assert name in outputs, name
