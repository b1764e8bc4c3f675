"""Every name, size, timeout and retention of the CDK app, in one place.

Changing a value here changes the deployed system; constructs never hard-code their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds

# --- Repository layout (assets are resolved from here, whatever the working directory) ------------------
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR: Final = REPO_ROOT / "functions"
LAYERS_BUILD_DIR: Final = REPO_ROOT / "build" / "layers"
DEPS_LAYER_DIR: Final = LAYERS_BUILD_DIR / "deps"
DOMAIN_LAYER_DIR: Final = LAYERS_BUILD_DIR / "domain"

# --- App ---------------------------------------------------------------------------------------------
STACK_NAME: Final = "ComplianceControlPlane"
STACK_DESCRIPTION: Final = "Compliance control plane of the LLM cost-ops platform (API, ingest, PostgreSQL)."
DEFAULT_OUTDIR: Final = "cdk.out"
TAGS: Final = {"service": "compliance-control-plane", "data-classification": "confidential"}

# Context the CDK CLI would pass, set here so `build_app().synth()` from Python behaves the same, plus the
# feature flags this app relies on (cdk.json context is only read by the CLI).
APP_CONTEXT: Final = {
    # aws:asset:path / aws:cdk:path metadata: the local runtime finds asset folders through them.
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:enable-path-metadata": True,
    # A layer change (e.g. a new migration in the domain layer) must change the function's version hash,
    # so the migration Trigger, which targets the current version, runs again.
    "@aws-cdk/aws-lambda:recognizeLayerVersion": True,
    "@aws-cdk/aws-lambda:recognizeVersionProps": True,
    "@aws-cdk/aws-iam:minimizePolicies": True,
    "@aws-cdk/aws-kms:reduceCrossAccountRegionPolicyScope": True,
    "@aws-cdk/core:target-partitions": ["aws"],
    # S3 server access logs are delivered under a bucket policy (logging.s3.amazonaws.com), not an ACL:
    # new buckets have ACLs disabled (BucketOwnerEnforced), so the ACL grant would fail on deploy.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}

# --- Field-level encryption ---------------------------------------------------------------------------
FIELD_KEY_ALIAS: Final = "alias/compliance/field-data-keys"
# KMS rotates the key material yearly by default; data keys are re-wrapped under the new material.
FIELD_KEY_ROTATION_PERIOD: Final = Duration.days(365)
# compliance.crypto.data_keys binds purpose=field-data-key to every data key; IAM requires it.
FIELD_KEY_CONTEXT_NAME: Final = "purpose"
FIELD_KEY_CONTEXT_VALUE: Final = "field-data-key"

# --- Lambda ------------------------------------------------------------------------------------------
LAMBDA_RUNTIME: Final = lambda_.Runtime.PYTHON_3_13
LAMBDA_ARCHITECTURE: Final = lambda_.Architecture.ARM_64
LOG_RETENTION: Final = logs.RetentionDays.ONE_YEAR
LOG_RETENTION_DAYS: Final = 365  # the same, as a number (what the template holds)
POWERTOOLS_SERVICE_NAME: Final = "compliance"
POWERTOOLS_METRICS_NAMESPACE: Final = "ComplianceControlPlane"
POWERTOOLS_LOG_LEVEL: Final = "INFO"


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: where its code is, its handler and its sizing."""

    code_dir: str
    handler: str
    description: str
    memory_mb: int
    timeout: Duration
    # None = unreserved. Reserved concurrency caps what a function can do to what is behind it.
    reserved_concurrency: int | None


AUTHORIZER_FN: Final = FunctionSpec(
    code_dir="auth",
    handler="authorizer.handler",
    description="API Gateway REQUEST authorizer: resolves a Bearer API key to a principal.",
    memory_mb=512,
    timeout=Duration.seconds(10),
    reserved_concurrency=20,
)
INGEST_API_FN: Final = FunctionSpec(
    code_dir="ingest",
    handler="api.handler",
    description="POST /v1/usage: validates usage records and enqueues them.",
    memory_mb=512,
    timeout=Duration.seconds(10),
    reserved_concurrency=50,
)
PROCESSOR_FN: Final = FunctionSpec(
    code_dir="ingest",
    handler="processor.handler",
    description="Consumes the ingest queue and writes usage records to PostgreSQL.",
    memory_mb=1024,
    timeout=Duration.seconds(60),
    reserved_concurrency=5,
)
ADMIN_API_FN: Final = FunctionSpec(
    code_dir="admin",
    handler="api.handler",
    description="API key administration (/v1/api-keys) and the data catalog (/v1/catalog).",
    memory_mb=512,
    timeout=Duration.seconds(15),
    reserved_concurrency=5,
)
PII_API_FN: Final = FunctionSpec(
    code_dir="pii",
    handler="api.handler",
    description="POST /v1/pii/scan: finds personal data and secrets in texts, optionally redacts them.",
    # 1769 MB is one full vCPU: the scan is CPU-bound (a full 2M-character batch in a few seconds).
    memory_mb=1769,
    timeout=Duration.seconds(29),  # API Gateway's integration timeout
    # CPU-heavy per call and stateless: a cap on what a burst of large scans can cost.
    reserved_concurrency=10,
)
MIGRATION_FN: Final = FunctionSpec(
    code_dir="database",
    handler="migrate.handler",
    description="Applies database migrations (run by a deploy-time trigger when it changes).",
    memory_mb=512,
    timeout=Duration.minutes(5),
    reserved_concurrency=1,
)
MIGRATION_TRIGGER_TIMEOUT: Final = Duration.minutes(10)
AUDIT_APPEND_FN: Final = FunctionSpec(
    code_dir="audit",
    handler="append.handler",
    description="Consumes the audit FIFO queue and appends events to the per-org hash chain.",
    memory_mb=1024,
    timeout=Duration.seconds(60),
    # Few writers: appends of one org serialise on its chain head anyway (FIFO orders each org's events).
    reserved_concurrency=2,
)
AUDIT_CHECKPOINT_FN: Final = FunctionSpec(
    code_dir="audit",
    handler="checkpoint.handler",
    description="Signs each org's audit tree head (KMS) and anchors it in the Object Lock bucket.",
    memory_mb=1024,
    timeout=Duration.minutes(2),
    # One signer: checkpoint numbers per org are sequential, a second concurrent run would only collide.
    reserved_concurrency=1,
)
AUDIT_API_FN: Final = FunctionSpec(
    code_dir="audit",
    handler="api.handler",
    description="Audit trail API: events, proofs, verification, checkpoints, public key, exports.",
    memory_mb=1024,
    timeout=Duration.seconds(29),  # API Gateway's integration timeout
    reserved_concurrency=5,
)

# --- Network -----------------------------------------------------------------------------------------
VPC_CIDR: Final = "10.40.0.0/16"
VPC_MAX_AZS: Final = 2
VPC_SUBNET_CIDR_MASK: Final = 22
ISOLATED_SUBNETS: Final = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
HTTPS_PORT: Final = 443
INTERFACE_ENDPOINTS: Final = {
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "XRay": ec2.InterfaceVpcEndpointAwsService.XRAY,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    # The audit API assumes the export download role (regional STS endpoint, boto3's default).
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    # Data subject requests: the API starts, stops and resumes executions; the steps e-mail the subject
    # (SES API endpoint "email") and the SLA monitor alerts through SNS.
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    "Email": ec2.InterfaceVpcEndpointAwsService.EMAIL,
    "Sns": ec2.InterfaceVpcEndpointAwsService.SNS,
}

# --- Database ----------------------------------------------------------------------------------------
DB_ENGINE_VERSION: Final = rds.PostgresEngineVersion.VER_17_9
DB_INSTANCE_TYPE: Final = ec2.InstanceType.of(ec2.InstanceClass.BURSTABLE4_GRAVITON, ec2.InstanceSize.MEDIUM)
DB_NAME: Final = "compliance"
# Not the engine default (5432): AwsSolutions-RDS11. Clients reach the instance through the proxy (5432);
# only the migration and rotation functions connect to this port directly.
DB_INSTANCE_PORT: Final = 5433
DB_PROXY_PORT: Final = 5432
DB_PROXY_NAME_SUFFIX: Final = "proxy"
DB_MASTER_USERNAME: Final = "compliance_admin"
DB_APP_USERNAME: Final = "compliance_app"
DB_ALLOCATED_STORAGE_GB: Final = 20
DB_MAX_ALLOCATED_STORAGE_GB: Final = 200
DB_BACKUP_RETENTION: Final = Duration.days(14)
DB_PREFERRED_BACKUP_WINDOW: Final = "03:00-04:00"
DB_PREFERRED_MAINTENANCE_WINDOW: Final = "sun:04:30-sun:05:30"
DB_MONITORING_INTERVAL: Final = Duration.seconds(60)
DB_PERFORMANCE_INSIGHTS_RETENTION: Final = rds.PerformanceInsightRetention.DEFAULT
DB_LOG_EXPORTS: Final = ("postgresql", "upgrade")
DB_PARAMETERS: Final = {
    "rds.force_ssl": "1",
    "log_connections": "1",
    "log_disconnections": "1",
    # Statements slower than this (ms) are logged: enough to find slow queries, too few to flood the log.
    "log_min_duration_statement": "1000",
}
DB_SECRET_ROTATION: Final = Duration.days(30)
DB_PROXY_BORROW_TIMEOUT: Final = Duration.seconds(30)
DB_PROXY_MAX_CONNECTIONS_PERCENT: Final = 80
DB_AUTH: Final = "iam"
DB_SSLMODE: Final = "require"
MIGRATIONS_DIR: Final = "/opt/migrations"

# AWS Backup (independent of RDS automated backups; a vault with its own retention).
BACKUP_DELETE_AFTER: Final = Duration.days(35)
BACKUP_SCHEDULE_HOUR_UTC: Final = "5"

# --- Ingest ------------------------------------------------------------------------------------------
INGEST_BATCH_SIZE: Final = 10
INGEST_MAX_BATCHING_WINDOW: Final = Duration.seconds(1)
INGEST_MAX_RECEIVE_COUNT: Final = 3
# AWS guidance for Lambda consumers: visibility timeout at least 6x the function timeout.
INGEST_VISIBILITY_TIMEOUT: Final = Duration.seconds(PROCESSOR_FN.timeout.to_seconds() * 6)
INGEST_RETENTION: Final = Duration.days(4)
INGEST_DLQ_RETENTION: Final = Duration.days(14)
INGEST_OLDEST_MESSAGE_ALARM_AGE: Final = Duration.minutes(15)
IDEMPOTENCY_PARTITION_KEY: Final = "id"
IDEMPOTENCY_TTL_ATTRIBUTE: Final = "expiration"

# --- Audit trail -------------------------------------------------------------------------------------
AUDIT_BATCH_SIZE: Final = 10
AUDIT_MAX_RECEIVE_COUNT: Final = 3
# AWS guidance for Lambda consumers: visibility timeout at least 6x the function timeout.
AUDIT_VISIBILITY_TIMEOUT: Final = Duration.seconds(AUDIT_APPEND_FN.timeout.to_seconds() * 6)
AUDIT_RETENTION: Final = Duration.days(4)
AUDIT_DLQ_RETENTION: Final = Duration.days(14)
AUDIT_SIGNING_KEY_ALIAS: Final = "alias/compliance-audit-signing"
AUDIT_CHECKPOINT_SCHEDULE_MINUTES: Final = 5  # rate(5 minutes)
# S3 Object Lock, COMPLIANCE mode: nobody (root included) can delete or shorten it. 7 years = 2557 days.
AUDIT_ANCHOR_RETENTION_DAYS: Final = 2557
AUDIT_ANCHOR_PREFIX: Final = "checkpoints/"
EXPORTS_PREFIX: Final = "audit-exports/"
EXPORTS_EXPIRY: Final = Duration.days(30)
# Download URLs are signed by a session of the export download role assumed per export for
# max(900, EXPORT_URL_EXPIRY_S) seconds; the function's role assumes it (role chaining): at most 1 h.
EXPORT_URL_EXPIRY_S: Final = 900
EXPORT_DOWNLOAD_MAX_SESSION: Final = Duration.hours(1)
EXPORT_DOWNLOAD_SESSION_PREFIX: Final = "audit-export-"
ACCESS_LOGS_EXPIRY: Final = Duration.days(365)
ACCESS_LOGS_PREFIX_ANCHOR: Final = "audit-anchor/"
ACCESS_LOGS_PREFIX_EXPORTS: Final = "audit-exports/"
# Metrics the audit code emits (namespace POWERTOOLS_METRICS_NAMESPACE, dimension service): any is an alarm.
AUDIT_ALARM_METRICS: Final = ("AuditChainBroken", "AuditPublishFailed")

# --- API ---------------------------------------------------------------------------------------------
API_NAME: Final = "compliance-control-plane"
API_STAGE_NAME: Final = "prod"
API_THROTTLE_RATE_LIMIT: Final = 100
API_THROTTLE_BURST_LIMIT: Final = 200
AUTHORIZER_IDENTITY_HEADER: Final = "Authorization"
AUTHORIZER_CACHE_TTL: Final = Duration.seconds(30)
WAF_RATE_LIMIT_PER_5_MIN: Final = 2000
PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
PROBLEM_TYPE_BASE: Final = "https://docs.compliance.invalid/problems/"

# --- Observability -----------------------------------------------------------------------------------
ALARM_EVALUATION_PERIOD: Final = Duration.minutes(1)
WAF_LOG_GROUP_PREFIX: Final = "aws-waf-logs-"  # WAF only logs to groups whose name starts with this


@dataclass(frozen=True)
class ProblemResponse:
    """An API Gateway gateway response rendered as RFC 9457 problem details."""

    response_type: str  # API Gateway ResponseType name
    status: int
    title: str
    detail: str


# Errors API Gateway raises itself (before or instead of a function); the functions' own errors are already
# problem+json (compliance.api.problems). Titles match compliance.errors so clients see one vocabulary.
GATEWAY_PROBLEMS: Final = (
    ProblemResponse("UNAUTHORIZED", 401, "Unauthorized", "missing or invalid API key"),
    ProblemResponse("ACCESS_DENIED", 403, "Forbidden", "the API key may not perform this request"),
    # API Gateway answers an unknown path or method with MISSING_AUTHENTICATION_TOKEN (403): it is a 404.
    ProblemResponse("MISSING_AUTHENTICATION_TOKEN", 404, "Not found", "no such resource"),
    ProblemResponse("RESOURCE_NOT_FOUND", 404, "Not found", "no such resource"),
    ProblemResponse("BAD_REQUEST_BODY", 400, "Invalid request", "the request body is invalid"),
    ProblemResponse("BAD_REQUEST_PARAMETERS", 400, "Invalid request", "the request parameters are invalid"),
    ProblemResponse("REQUEST_TOO_LARGE", 413, "Payload too large", "the request is too large"),
    ProblemResponse("UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported media type", "send application/json"),
    ProblemResponse("THROTTLED", 429, "Too many requests", "request rate exceeded, retry later"),
    ProblemResponse("QUOTA_EXCEEDED", 429, "Too many requests", "request quota exceeded"),
    ProblemResponse("WAF_FILTERED", 403, "Forbidden", "the request was blocked"),
    ProblemResponse("INTEGRATION_FAILURE", 502, "Bad gateway", "the service failed to answer"),
    ProblemResponse("INTEGRATION_TIMEOUT", 504, "Gateway timeout", "the service did not answer in time"),
    ProblemResponse("DEFAULT_4XX", 400, "Bad request", "the request could not be processed"),
    ProblemResponse("DEFAULT_5XX", 500, "Internal error", "the request failed, retry later"),
)

# --- PII sweep (issue 4) -------------------------------------------------------------------------------
PII_SWEEP_FN: Final = FunctionSpec(
    code_dir="pii",
    handler="sweep.handler",
    description="Daily sweep: scans samples of columns the data catalog says hold no personal data.",
    # One full vCPU: the scan is CPU-bound (~1 MB/s); at most 2 MB per org by default.
    memory_mb=1769,
    # Lambda's maximum; the sweep stops starting organisations when less than 20 s are left.
    timeout=Duration.minutes(15),
    # One run at a time: a second concurrent run would only repeat the reads.
    reserved_concurrency=1,
)
# Daily at 02:30 UTC, outside the busiest ingest hours of the markets served.
PII_SWEEP_SCHEDULE_HOUR_UTC: Final = "2"
PII_SWEEP_SCHEDULE_MINUTE: Final = "30"
# Sampling bounds (compliance.config.PiiSweepSettings): rows and bytes per column, bytes per org.
PII_SWEEP_ROWS_PER_COLUMN: Final = 1000
PII_SWEEP_COLUMN_BYTES: Final = 262_144
PII_SWEEP_ORG_BYTES: Final = 2_097_152
# Metrics the sweep emits: any datapoint above 0 is an alarm (findings, an organisation that failed).
PII_SWEEP_ALARM_METRICS: Final = ("PiiSweepFindings", "PiiSweepFailed", "PiiSweepIncomplete")

# --- Key rotation and the shred ledger (issue 4) --------------------------------------------------------
KEY_REWRAP_FN: Final = FunctionSpec(
    code_dir="keys",
    handler="rewrap.handler",
    description="Daily: re-applies ledgered shreds, then re-wraps data keys under the newest key material.",
    memory_mb=512,
    # KMS ReEncrypt per key (~10 ms): 15 minutes re-wrap tens of thousands of keys; the rest waits a day.
    timeout=Duration.minutes(15),
    # One run at a time: a second concurrent run would only wait on the first one's row locks.
    reserved_concurrency=1,
)
# Daily at 03:15 UTC, after the PII sweep.
KEY_REWRAP_SCHEDULE_HOUR_UTC: Final = "3"
KEY_REWRAP_SCHEDULE_MINUTE: Final = "15"
# Live keys whose wrapped form is older than this are re-wrapped (KMS rotates the material yearly).
KEY_REWRAP_MAX_AGE_DAYS: Final = 30
KEY_REWRAP_BATCH_SIZE: Final = 100
# The shred ledger: prefix of the audit anchor bucket (Object Lock, COMPLIANCE mode). Records are kept
# as long as the anchored checkpoints, far longer than any database backup.
SHRED_LEDGER_PREFIX: Final = "shreds/"
SHRED_LEDGER_RETENTION_DAYS: Final = AUDIT_ANCHOR_RETENTION_DAYS
# Any datapoint is an alarm: an org whose keys were not re-wrapped, a ledger that could not be applied.
KEY_JOB_ALARM_METRICS: Final = ("KeyRewrapFailed", "ShredReapplyFailed")

# --- Data subject requests (issue 5) --------------------------------------------------------------------
DSR_API_FN: Final = FunctionSpec(
    code_dir="dsr",
    handler="api.handler",
    description="/v1/dsr: data subject requests (create, read, list, extend, cancel, verify).",
    memory_mb=512,
    timeout=Duration.seconds(15),
    reserved_concurrency=10,
)
DSR_STATUS_FN: Final = FunctionSpec(
    code_dir="dsr",
    handler="steps.record",
    description="DSR workflow: record, answer 'no data held', expire, and the failure path.",
    memory_mb=512,
    timeout=Duration.seconds(30),
    reserved_concurrency=5,
)
DSR_VERIFICATION_FN: Final = FunctionSpec(
    code_dir="dsr",
    handler="steps.verification",
    description="DSR workflow: e-mails the subject a one-time code and parks the task token.",
    memory_mb=512,
    timeout=Duration.seconds(30),
    reserved_concurrency=5,
)
DSR_EXPORT_FN: Final = FunctionSpec(
    code_dir="dsr",
    handler="steps.export",
    description="DSR workflow: builds the subject's export (JSON, CSV zip, XML), uploads it KMS-encrypted.",
    # One full vCPU: decryption and serialisation of up to hundreds of thousands of rows.
    memory_mb=1769,
    timeout=Duration.minutes(15),
    reserved_concurrency=2,
)
DSR_ERASURE_FN: Final = FunctionSpec(
    code_dir="dsr",
    handler="steps.erasure",
    description="DSR workflow: erases the subject per the data catalog and shreds their key, with a receipt.",
    memory_mb=1024,
    timeout=Duration.minutes(5),
    reserved_concurrency=2,
)
DSR_CHANGE_FN: Final = FunctionSpec(
    code_dir="dsr",
    handler="steps.change",
    description="DSR workflow: rectifies the subject's data or restricts its processing.",
    memory_mb=512,
    timeout=Duration.seconds(30),
    reserved_concurrency=2,
)
DSR_NOTIFY_FN: Final = FunctionSpec(
    code_dir="dsr",
    handler="steps.notify",
    description="DSR workflow: e-mails the subject the outcome (export links) and closes the request.",
    memory_mb=512,
    timeout=Duration.seconds(30),
    reserved_concurrency=5,
)
DSR_STATE_MACHINE_NAME: Final = "compliance-dsr"
# The verification e-mail's code is valid this long; the waiting task times out a day later (a backstop:
# the SLA monitor fails the task as soon as the code has expired).
DSR_VERIFICATION_TTL_DAYS: Final = 7
DSR_VERIFICATION_TASK_TIMEOUT: Final = Duration.days(DSR_VERIFICATION_TTL_DAYS + 1)
# Presigned export links: SigV4's maximum. A link signed with a role session stops working when the
# session ends (hours): see docs/dsr.md for long-lived signing credentials.
DSR_EXPORT_LINK_TTL_S: Final = 7 * 24 * 3600
DSR_EXPORTS_EXPIRY: Final = Duration.days(30)
ACCESS_LOGS_PREFIX_DSR_EXPORTS: Final = "dsr-exports/"
# The verified SES identity the subject e-mails come from (override: cdk deploy -c dsrSender=...).
DSR_SENDER_CONTEXT_KEY: Final = "dsrSender"
DSR_DEFAULT_SENDER: Final = "privacy@compliance.example.com"
# Transient failures a step retries (the Lambda error type is the exception's class name).
DSR_RETRY_ERRORS: Final = (
    "DataAccessError",
    "AuditUnavailableError",
    "KeyServiceUnavailableError",
    "EmailUnavailableError",
    "ExportStoreUnavailableError",
    "Lambda.ServiceException",
    "Lambda.TooManyRequestsException",
    "Lambda.SdkClientException",
)
DSR_RETRY_INTERVAL: Final = Duration.seconds(2)
DSR_RETRY_ATTEMPTS: Final = 3
DSR_RETRY_BACKOFF: Final = 2.0
DSR_SLA_FN: Final = FunctionSpec(
    code_dir="dsr",
    handler="sla.handler",
    description="Hourly: alerts on DSRs close to or past their deadline, closes expired verifications.",
    memory_mb=512,
    timeout=Duration.minutes(5),
    # One run at a time: a second concurrent run would alert twice.
    reserved_concurrency=1,
)
DSR_SLA_SCHEDULE: Final = Duration.hours(1)
DSR_DUE_SOON_DAYS: Final = 7
# Any datapoint above 0 is an alarm: an overdue request, an organisation the monitor could not check.
DSR_ALARM_METRICS: Final = ("DsrOverdue", "DsrSlaOrgFailed")
