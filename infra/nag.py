"""cdk-nag: the rule packs that run on every synth, and every acknowledged finding with its reason.

cdk-nag v3 packs are CDK policy-validation plugins (``Validations.of(app).add_plugins``): during
``app.synth()`` each pack walks the construct tree, and any finding that is not acknowledged (on the
resource or one of its ancestors, with ``Validations.of(scope).acknowledge``) fails the synth with
``ValidationFailed`` and writes ``validation-report.json`` to the cloud assembly.

Fix first; acknowledge only what is right as built, with the reason written here, next to the finding.
Acknowledgements are as narrow as cdk-nag allows: one construct, one rule (and finding) at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from aws_cdk import Acknowledgment, App, CfnElement, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NagPack, NIST80053R5Checks, PCIDSS321Checks
from constructs import IConstruct

from infra import constants as c
from infra.constructs.python_function import PythonFunction
from infra.stack import ComplianceControlPlaneStack

MIN_REASON_LENGTH = 40
# aws-cdk-lib stores an acknowledgement without a known plugin prefix as "Annotation::<id>" (cdk-nag
# strips the prefix when it matches).
_ANNOTATION_PREFIX = "annotation::"


def add_nag_packs(app: App) -> list[NagPack]:
    packs: list[NagPack] = [
        # The first pack also copies acknowledgements into each resource's template Metadata (audit trail).
        AwsSolutionsChecks(app, write_suppressions_to_cloud_formation=True),
        HIPAASecurityChecks(app),
        NIST80053R5Checks(app),
        PCIDSS321Checks(app),
    ]
    Validations.of(app).add_plugins(*packs)
    return packs


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one finding on one construct (and what it contains), with a specific reason."""
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise ValueError(f"acknowledgement of {rule_id} needs a specific reason, got {reason!r}")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


@dataclass(frozen=True)
class AcknowledgedRule:
    path: str
    rule_id: str
    reason: str


def acknowledged_rules(root: IConstruct) -> list[AcknowledgedRule]:
    """Every acknowledgement recorded in the construct tree under ``root`` (for tests and reviews)."""
    found: list[AcknowledgedRule] = []
    for node in root.node.find_all():
        for entry in node.node.metadata:
            if entry.type != Validations.ACKNOWLEDGED_RULES_METADATA_KEY or not entry.data:
                continue
            for qualified_id, reason in dict(entry.data).items():
                rule_id = qualified_id
                if rule_id.lower().startswith(_ANNOTATION_PREFIX):
                    rule_id = rule_id[len(_ANNOTATION_PREFIX) :]
                found.append(AcknowledgedRule(node.node.path, rule_id, str(reason)))
    return found


# --- Reasons --------------------------------------------------------------------------------------------

RUNTIME_PINNED = (
    "Pinned to python3.13 on purpose: the deps layer is built for CPython 3.13 arm64 wheels "
    "(layers/build.py, compiled extensions: pydantic-core, psycopg-binary, cryptography), and the local "
    "runtime and CI test on 3.13 semantics. Moving to a newer runtime is a deliberate upgrade of both."
)
ENI_AND_XRAY_WILDCARD = (
    "Resource '*' is limited to two statements whose actions have no resource-level permissions: the "
    "ec2:*NetworkInterface/DescribeSubnets actions Lambda needs to attach the function to the VPC (the same "
    "as AWS's AWSLambdaVPCAccessExecutionRole) and xray:PutTraceSegments/PutTelemetryRecords for tracing. "
    "Every other statement names its queue, table, key, secret, log group or proxy user."
)
DLQ_REASONS: dict[c.FunctionSpec, str] = {
    c.KEY_REWRAP_FN: (
        "Invoked asynchronously by its daily EventBridge rule; a failed run changes nothing half-way (one "
        "transaction per batch) and is alarmed (function errors, KeyRewrapFailed, ShredReapplyFailed); the "
        "next day's run retries everything still due, so a dead-letter copy of the event adds nothing."
    ),
    c.AUTHORIZER_FN: (
        "Invoked synchronously by API Gateway as the REQUEST authorizer; a Lambda DLQ only captures "
        "asynchronous invocations, and a failure here is answered to the caller as a problem+json error."
    ),
    c.INGEST_API_FN: (
        "Invoked synchronously by API Gateway (POST /v1/usage); a Lambda DLQ only captures asynchronous "
        "invocations. A failure is returned to the client, which retries; accepted records are durable "
        "in SQS."
    ),
    c.ADMIN_API_FN: (
        "Invoked synchronously by API Gateway (/v1/api-keys, /v1/catalog); a Lambda DLQ only captures "
        "asynchronous invocations, and a failure is returned to the caller as a problem+json error."
    ),
    c.PII_API_FN: (
        "Invoked synchronously by API Gateway (POST /v1/pii/scan); a Lambda DLQ only captures asynchronous "
        "invocations, and a failure is returned to the caller as a problem+json error."
    ),
    c.PROCESSOR_FN: (
        "Invoked by the SQS event source mapping, which never uses a function DLQ: failed records go back to "
        "the ingest queue and, after maxReceiveCount receives, to its KMS-encrypted DLQ, which is alarmed."
    ),
    c.AUDIT_APPEND_FN: (
        "Invoked by the SQS event source mapping of the audit FIFO queue, which never uses a function DLQ: "
        "failed batches go back to the queue and, after maxReceiveCount receives, to its KMS-encrypted FIFO "
        "DLQ (alarmed); malformed events are moved there by the function with their reason."
    ),
    c.AUDIT_CHECKPOINT_FN: (
        "Invoked by an EventBridge schedule with an empty event: a failed run has nothing to replay, because "
        "the next run (minutes later) signs every org whose head moved since its last checkpoint, covering "
        "what the failed run missed. Failures alarm on the function's Errors metric."
    ),
    c.AUDIT_API_FN: (
        "Invoked synchronously by API Gateway (/v1/audit/...); a Lambda DLQ only captures asynchronous "
        "invocations, and a failure is returned to the caller as a problem+json error."
    ),
    c.PII_SWEEP_FN: (
        "Invoked by a daily EventBridge schedule with an empty event: a failed run has nothing to replay, "
        "because the next run samples every organisation again; it reads only and its audit events carry "
        "ids derived from the run. Failures alarm on the Errors metric and on PiiSweepFailed."
    ),
    c.DSR_API_FN: (
        "Invoked synchronously by API Gateway (/v1/dsr...); a Lambda DLQ only captures asynchronous "
        "invocations, and a failure is returned to the caller as a problem+json error."
    ),
    **{
        spec: (
            "Invoked synchronously by the DSR state machine (a Lambda task); a Lambda DLQ only captures "
            "asynchronous invocations. The task retries transient errors, then catches every error into the "
            "failure path, which records it on the request row (status failed, with its cause) and audits it."
        )
        for spec in (
            c.DSR_STATUS_FN,
            c.DSR_VERIFICATION_FN,
            c.DSR_EXPORT_FN,
            c.DSR_ERASURE_FN,
            c.DSR_CHANGE_FN,
            c.DSR_NOTIFY_FN,
        )
    },
    c.DSR_SLA_FN: (
        "Invoked hourly by an EventBridge schedule with an empty event: a failed run has nothing to replay, "
        "because the next run checks every open request again (it only reads, alerts and fails expired "
        "tasks, which is idempotent). Failures alarm on the Errors metric and on DsrSlaOrgFailed."
    ),
    c.MIGRATION_FN: (
        "Invoked synchronously (RequestResponse) by the CloudFormation Trigger on deploy; a failure fails "
        "and rolls back the deployment, so there is no asynchronous event that a DLQ could keep."
    ),
}
MANAGED_POLICY_REASONS = {
    "AmazonRDSEnhancedMonitoringRole": (
        "The RDS enhanced-monitoring role must carry this AWS-managed policy (AWS documents no other); "
        "it only lets the RDS monitoring agent write to the RDSOSMetrics log group."
    ),
    "AWSBackupServiceRolePolicyForBackup": (
        "AWS Backup's documented service-role policy for taking backups; AWS maintains it as services add "
        "backup APIs, and the role is assumable only by backup.amazonaws.com for this plan's selection."
    ),
    "AmazonAPIGatewayPushToCloudWatchLogs": (
        "API Gateway's account-level logging role requires this AWS-managed policy (AWS documents no other); "
        "it only lets API Gateway write execution and access logs to CloudWatch Logs."
    ),
}
NO_COGNITO = (
    "Callers are machines holding API keys, not users: every method uses the Lambda REQUEST authorizer, "
    "which verifies the Bearer key against hashed keys in PostgreSQL and scopes the request to one org. "
    "A Cognito user pool would add a second identity store with no users in it."
)
NO_STAGE_CACHE = (
    "Responses are per-tenant and per-key (usage writes, API-key administration): a stage cache would "
    "risk serving one tenant's response to another and keep revoked keys usable. The only cache is the "
    "authorizer's 30 s result cache, keyed by the Authorization header."
)
NO_CLIENT_CERTIFICATE = (
    "Stage client certificates authenticate API Gateway to HTTP backends. Every integration here is a "
    "Lambda proxy integration, invoked over AWS's signed, TLS-protected Lambda API; there is no HTTP "
    "backend to present a certificate to. Clients reach the API over TLS only."
)
IDEMPOTENCY_NO_BACKUP = (
    "The table only holds Powertools idempotency records that expire by TTL within a day; losing them "
    "at worst lets a redelivered SQS message be processed again, and the processor's writes are "
    "idempotent in PostgreSQL. Point-in-time recovery is on; a backup plan would keep nothing of value."
)


ACCESS_LOGS_SSE_S3 = (
    "S3 delivers server access logs only to a target bucket with SSE-S3 (AES256) default encryption; AWS "
    "documents SSE-KMS targets as unsupported. The bucket is private (block public access, owner-enforced), "
    "TLS-only and versioned, and holds request metadata only, no object contents."
)
NO_REPLICATION = {
    "AnchorBucket": (
        "Single-region stack. The anchor bucket makes signed checkpoints immutable (Object Lock compliance "
        "mode, versioned); the same signed checkpoints are kept in PostgreSQL (Multi-AZ, AWS Backup) and in "
        "every export, so losing the region's bucket loses no evidence. A replica needs a second Object Lock "
        "bucket and KMS key in another region: a disaster-recovery decision not taken yet."
    ),
    "ExportsBucket": (
        "Holds only short-lived export files (expired after 30 days) that are rebuilt from PostgreSQL on "
        "request; replicating them would copy tenant data to a second region with no recovery value."
    ),
    "DsrExportsBucket": (
        "Holds only data subject exports, deleted by lifecycle after 30 days, rebuilt from PostgreSQL by a "
        "new request; a replica would copy people's personal data to a second region and would have to be "
        "found and deleted by every erasure as well."
    ),
    "AccessLogs": (
        "Server access logs of this stack's buckets, expired after a year: operational evidence, not a "
        "system of record. Single-region stack; a replica would need a bucket in a region it does not use."
    ),
}
PREFIX_SCOPED_OBJECTS = (
    "The wildcard is the object-key suffix under one fixed prefix of one bucket (ARN <bucket>/<prefix>*): "
    "object keys carry org and export/checkpoint ids that exist only at run time. The actions are the few "
    "object actions the function performs; no bucket-level or other-prefix access."
)
EXPORT_DOWNLOAD_OBJECTS = (
    "The wildcard is the object-key suffix under the exports prefix of the exports bucket (ARN "
    "<bucket>/audit-exports/*): export keys carry org and export ids that exist only at run time. The "
    "role holds s3:GetObject alone; only the audit API role may assume it, for sessions of at most 1 h."
)


DSR_EXPORT_OBJECTS = (
    "The wildcard is the object-key suffix in the DSR exports bucket, which holds nothing else: keys are "
    "<org>/<subject>/<request>/export.<ext>, ids that exist only at run time. Each role holds only the "
    "object actions it performs (put for the export step, delete for erasure, get for the link signer)."
)
DSR_SIGNER_KEY_ROTATION = (
    "The secret holds the access key of the export link signer (an IAM user that can only read export "
    "objects through S3). Links it signed must keep working for their 7 days, so its key is rotated by "
    "overlap, not replaced: create a second key, switch the secret, delete the first key 7 days later "
    "(docs/dsr.md, 'Export links'). A single-key rotation Lambda would cut every link in flight."
)
DSR_EXECUTIONS = (
    "Executions are named by the request id at run time: the ARN is scoped to the executions of the one "
    "DSR state machine (execution:compliance-dsr:*), for StopExecution and DescribeExecution only."
)
DSR_STATE_MACHINE_WILDCARD = (
    "Resource '*' is limited to the actions that have no resource-level permissions: CloudWatch Logs "
    "delivery for the state machine's log group (AWS documents '*' for them) and X-Ray tracing. Invoking "
    "the steps names each function's ARN."
)
DSR_HMAC_KEY_NO_ROTATION = (
    "The secret keys the HMAC of verification codes that are outstanding for up to 7 days and the subject "
    "keys that find duplicate open requests: rotating it would invalidate every pending code and let a "
    "second open request of the same subject through. It never leaves Secrets Manager and the DSR functions "
    "(KMS-encrypted with the stack key); rotation is a manual, announced operation (docs/dsr.md)."
)
DSR_VERIFY_NO_AUTHORIZER = (
    "POST /v1/dsr/{request_id}/verify is called by the data subject, who holds no API key: the one-time "
    "code e-mailed to them is the credential. The function checks it against its keyed hash with a lockout "
    "after 5 wrong codes (50-bit codes); the stage's throttling and the WAF rate rule apply as everywhere."
)


def _managed_policy_rule(policy_name: str) -> str:
    return f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{policy_name}]"


def _acknowledge_function(function: PythonFunction) -> None:
    acknowledge(function, "AwsSolutions-L1", RUNTIME_PINNED)
    acknowledge(function.role, "AwsSolutions-IAM5[Resource::*]", ENI_AND_XRAY_WILDCARD)
    reason = DLQ_REASONS[function.spec]
    for rule in ("HIPAA.Security-LambdaDLQ", "NIST.800.53.R5-LambdaDLQ"):
        acknowledge(function, rule, reason)


def acknowledge_findings(stack: ComplianceControlPlaneStack) -> None:
    """Every acknowledged finding of the stack, each on the narrowest construct that carries it."""
    for node in stack.node.find_all():
        if isinstance(node, PythonFunction):
            _acknowledge_function(node)

    database = stack.database
    monitoring_role = database.instance.node.find_child("MonitoringRole")
    acknowledge(
        monitoring_role,
        _managed_policy_rule("AmazonRDSEnhancedMonitoringRole"),
        MANAGED_POLICY_REASONS["AmazonRDSEnhancedMonitoringRole"],
    )
    acknowledge(
        database.backup_plan,
        _managed_policy_rule("AWSBackupServiceRolePolicyForBackup"),
        MANAGED_POLICY_REASONS["AWSBackupServiceRolePolicyForBackup"],
    )

    api = stack.api
    acknowledge(
        api.rest_api.node.find_child("CloudWatchRole"),
        _managed_policy_rule("AmazonAPIGatewayPushToCloudWatchLogs"),
        MANAGED_POLICY_REASONS["AmazonAPIGatewayPushToCloudWatchLogs"],
    )
    acknowledge(api.rest_api.root, "AwsSolutions-COG4", NO_COGNITO)
    stage = api.rest_api.deployment_stage
    for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
        acknowledge(stage, f"{pack}-APIGWCacheEnabledAndEncrypted", NO_STAGE_CACHE)
        acknowledge(stage, f"{pack}-APIGWSSLEnabled", NO_CLIENT_CERTIFICATE)

    _acknowledge_audit(stack)
    _acknowledge_dsr(stack)

    table = stack.ingest.idempotency_table
    for pack in ("HIPAA.Security", "NIST.800.53.R5"):
        acknowledge(table, f"{pack}-DynamoDBInBackupPlan", IDEMPOTENCY_NO_BACKUP)


def _objects_rule(bucket: s3.IBucket, prefix: str) -> str:
    stack = Stack.of(bucket)
    logical_id = stack.resolve(stack.get_logical_id(cast(CfnElement, bucket.node.default_child)))
    return f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]"


def _acknowledge_audit(stack: ComplianceControlPlaneStack) -> None:
    audit = stack.audit
    access_logs = stack.access_logs.bucket
    for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
        acknowledge(access_logs, f"{pack}-S3DefaultEncryptionKMS", ACCESS_LOGS_SSE_S3)
        acknowledge(access_logs, f"{pack}-S3BucketReplicationEnabled", NO_REPLICATION["AccessLogs"])
        acknowledge(audit.anchor_bucket, f"{pack}-S3BucketReplicationEnabled", NO_REPLICATION["AnchorBucket"])
        acknowledge(
            audit.exports_bucket, f"{pack}-S3BucketReplicationEnabled", NO_REPLICATION["ExportsBucket"]
        )
    acknowledge(
        audit.checkpoint.role,
        _objects_rule(audit.anchor_bucket, c.AUDIT_ANCHOR_PREFIX),
        PREFIX_SCOPED_OBJECTS,
    )
    acknowledge(audit.api.role, _objects_rule(audit.exports_bucket, c.EXPORTS_PREFIX), PREFIX_SCOPED_OBJECTS)
    acknowledge(
        audit.export_download_role,
        _objects_rule(audit.exports_bucket, c.EXPORTS_PREFIX),
        EXPORT_DOWNLOAD_OBJECTS,
    )


def _acknowledge_dsr(stack: ComplianceControlPlaneStack) -> None:
    dsr = stack.dsr
    for pack in ("HIPAA.Security", "NIST.800.53.R5", "PCI.DSS.321"):
        acknowledge(
            dsr.exports_bucket, f"{pack}-S3BucketReplicationEnabled", NO_REPLICATION["DsrExportsBucket"]
        )
    for scope in (dsr.export.role, dsr.erasure.role, dsr.link_signer_policy):
        acknowledge(scope, _objects_rule(dsr.exports_bucket, ""), DSR_EXPORT_OBJECTS)
    for pack_rule in (
        "AwsSolutions-SMG4",
        "HIPAA.Security-SecretsManagerRotationEnabled",
        "NIST.800.53.R5-SecretsManagerRotationEnabled",
    ):
        acknowledge(dsr.signer_secret, pack_rule, DSR_SIGNER_KEY_ROTATION)
    acknowledge(
        dsr.erasure.role,
        _objects_rule(stack.audit.anchor_bucket, c.SHRED_LEDGER_PREFIX),
        PREFIX_SCOPED_OBJECTS,
    )
    acknowledge(
        dsr.api.role,
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
        f"{c.DSR_STATE_MACHINE_NAME}:*]",
        DSR_EXECUTIONS,
    )
    acknowledge(dsr.state_machine_role, "AwsSolutions-IAM5[Resource::*]", DSR_STATE_MACHINE_WILDCARD)
    acknowledge(dsr.secret, "AwsSolutions-SMG4", DSR_HMAC_KEY_NO_ROTATION)
    for pack in ("HIPAA.Security", "NIST.800.53.R5"):
        acknowledge(dsr.secret, f"{pack}-SecretsManagerRotationEnabled", DSR_HMAC_KEY_NO_ROTATION)
    acknowledge(stack.api.verify_method, "AwsSolutions-APIG4", DSR_VERIFY_NO_AUTHORIZER)
