"""Tamper-evident audit trail: FIFO queue -> append function -> per-org hash chain in PostgreSQL,
a scheduled checkpoint function that signs tree heads with an asymmetric KMS key and anchors them in an
S3 Object Lock (compliance mode) bucket, and the audit API function with its exports bucket and the
role whose short sessions sign the exports' download URLs.

Producers (authorizer, ingest API, admin API, audit API) get the queue and ``allow_publish()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants as c
from infra.constructs import permissions
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.python_function import PythonFunction
from infra.constructs.roles import PolicyRole
from infra.constructs.storage import AccessLogs, data_bucket, expiring_objects


def _fifo_queue(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    retention: Duration,
    visibility_timeout: Duration | None = None,
    dead_letter_queue: sqs.DeadLetterQueue | None = None,
) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        fifo=True,
        # Producers set MessageDeduplicationId = event_id: two events with equal bodies are not duplicates.
        content_based_deduplication=False,
        # High-throughput FIFO: limits and deduplication apply per message group (= per org).
        deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
        fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=retention,
        visibility_timeout=visibility_timeout,
        dead_letter_queue=dead_letter_queue,
    )


class ExportDownloadRole(PolicyRole):
    """The role the audit API assumes, once per export, to sign the export's download URLs.

    A presigned URL stops working when the credentials that signed it expire, and a Lambda execution
    role's session has no documented remaining lifetime; a session of this role ends when the function
    asked it to (DurationSeconds), so the URL's stated expiry holds. Its only permission is reading
    exports: a leaked URL or session reaches nothing else.
    """

    def __init__(self, scope: Construct, construct_id: str, *, assumed_by: str) -> None:
        super().__init__(
            scope,
            construct_id,
            # Only the audit API function's role, and only for sessions named after an export.
            assumed_by=iam.ArnPrincipal(assumed_by).with_conditions(
                {"StringLike": {"sts:RoleSessionName": f"{c.EXPORT_DOWNLOAD_SESSION_PREFIX}*"}}
            ),
            description="Signs audit export download URLs: reads audit-exports/* only (assumed per export).",
            max_session_duration=c.EXPORT_DOWNLOAD_MAX_SESSION,
        )


class Audit(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: Network,
        database: Database,
        key: kms.IKey,
        access_logs: AccessLogs,
        layers: Sequence[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        self._key = key

        # --- Queue ------------------------------------------------------------------------------------
        self.dead_letter_queue = _fifo_queue(
            self, "DeadLetterQueue", key=key, retention=c.AUDIT_DLQ_RETENTION
        )
        self.queue = _fifo_queue(
            self,
            "Queue",
            key=key,
            retention=c.AUDIT_RETENTION,
            visibility_timeout=c.AUDIT_VISIBILITY_TIMEOUT,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=c.AUDIT_MAX_RECEIVE_COUNT
            ),
        )

        # --- Signing key and buckets ------------------------------------------------------------------
        # KMS cannot rotate asymmetric keys; old checkpoints stay verifiable with the key id they name.
        self.signing_key = kms.Key(
            self,
            "SigningKey",
            description="Signs audit checkpoints (tree heads); the public key verifies exports offline.",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            enable_key_rotation=False,
            alias=c.AUDIT_SIGNING_KEY_ALIAS,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.anchor_bucket = data_bucket(
            self,
            "AnchorBucket",
            key=key,
            access_logs=access_logs,
            access_logs_prefix=c.ACCESS_LOGS_PREFIX_ANCHOR,
            object_lock_retention=s3.ObjectLockRetention.compliance(
                Duration.days(c.AUDIT_ANCHOR_RETENTION_DAYS)
            ),
        )
        self.exports_bucket = data_bucket(
            self,
            "ExportsBucket",
            key=key,
            access_logs=access_logs,
            access_logs_prefix=c.ACCESS_LOGS_PREFIX_EXPORTS,
            lifecycle_rules=[expiring_objects("expire-exports", c.EXPORTS_EXPIRY)],
        )

        # --- Functions --------------------------------------------------------------------------------
        def function(construct_id: str, spec: c.FunctionSpec, environment: dict[str, str]) -> PythonFunction:
            fn = PythonFunction(
                self,
                construct_id,
                spec=spec,
                layers=layers,
                vpc=network.vpc,
                security_groups=[database.client_security_group],
                key=key,
                environment={**database.proxy_environment, **environment},
            )
            database.grant_proxy_connect(fn)
            return fn

        self.append = function(
            "Append",
            c.AUDIT_APPEND_FN,
            {"AUDIT_DEAD_LETTER_QUEUE_URL": self.dead_letter_queue.queue_url},
        )
        permissions.consume_queue(self.append, self.queue, key)
        # Malformed events are moved to the DLQ by the function itself (with their reason).
        permissions.send_to_queue(self.append, self.dead_letter_queue, key, name="DeadLetterQueue")
        self.append.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=c.AUDIT_BATCH_SIZE,
                # No batching window: FIFO event sources do not support one.
                report_batch_item_failures=True,
                max_concurrency=c.AUDIT_APPEND_FN.reserved_concurrency,
            )
        )

        self.checkpoint = function(
            "Checkpoint",
            c.AUDIT_CHECKPOINT_FN,
            {
                "AUDIT_SIGNING_KEY_ID": self.signing_key.key_arn,
                "AUDIT_ANCHOR_BUCKET": self.anchor_bucket.bucket_name,
                "AUDIT_ANCHOR_RETENTION_DAYS": str(c.AUDIT_ANCHOR_RETENTION_DAYS),
            },
        )
        self.checkpoint.allow("SignTreeHeads", ["kms:Sign"], [self.signing_key.key_arn])
        permissions.use_objects(
            self.checkpoint,
            "AnchorCheckpoints",
            self.anchor_bucket,
            c.AUDIT_ANCHOR_PREFIX,
            ["s3:PutObject", "s3:PutObjectRetention"],
            key,
            ["kms:GenerateDataKey"],
        )
        self.schedule = events.Rule(
            self,
            "CheckpointSchedule",
            description="Signs and anchors the audit tree heads of orgs with new events.",
            schedule=events.Schedule.rate(Duration.minutes(c.AUDIT_CHECKPOINT_SCHEDULE_MINUTES)),
            targets=[targets.LambdaFunction(self.checkpoint.function)],
        )

        self.api = function(
            "Api",
            c.AUDIT_API_FN,
            {
                "AUDIT_QUEUE_URL": self.queue.queue_url,
                "AUDIT_SIGNING_KEY_ID": self.signing_key.key_arn,
                "EXPORTS_BUCKET": self.exports_bucket.bucket_name,
                "EXPORT_URL_EXPIRY_S": str(c.EXPORT_URL_EXPIRY_S),
            },
        )
        self.api.allow("ReadSigningPublicKey", ["kms:GetPublicKey"], [self.signing_key.key_arn])
        # The function only writes exports (multipart uploads of SSE-KMS objects need kms:Decrypt);
        # it never reads them back, and download URLs are signed by the download role's sessions.
        permissions.use_objects(
            self.api,
            "WriteExports",
            self.exports_bucket,
            c.EXPORTS_PREFIX,
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            key,
            ["kms:GenerateDataKey", "kms:Decrypt"],
        )
        self.allow_publish(self.api)

        self.export_download_role = ExportDownloadRole(
            self, "ExportDownloadRole", assumed_by=self.api.role.role_arn
        )
        permissions.use_objects(
            self.export_download_role,
            "ReadExports",
            self.exports_bucket,
            c.EXPORTS_PREFIX,
            ["s3:GetObject"],
            key,
            ["kms:Decrypt"],
        )
        self.api.allow("AssumeExportDownloadRole", ["sts:AssumeRole"], [self.export_download_role.role_arn])
        self.api.function.add_environment("EXPORT_DOWNLOAD_ROLE_ARN", self.export_download_role.role_arn)

    def allow_publish(self, producer: permissions.Allows) -> None:
        """A producer of audit events: sqs:SendMessage on the audit queue and its KMS key (via SQS)."""
        permissions.send_to_queue(producer, self.queue, self._key, name="AuditQueue")

    @property
    def functions(self) -> list[PythonFunction]:
        return [self.append, self.checkpoint, self.api]

    @property
    def publish_environment(self) -> dict[str, str]:
        return {"AUDIT_QUEUE_URL": self.queue.queue_url}
