"""Field-level encryption: the KMS key that wraps per-subject data keys, and who may use it.

A key of its own (not the platform key): its key policy and the role statements below are the
whole list of who can generate or unwrap data keys, every use is bound to the encryption context
``purpose=field-data-key`` that :mod:`compliance.crypto.data_keys` always sends (so the key cannot
be used as a general-purpose encryption key), and the key's CloudTrail record is the record of
every unwrap of personal data. Automatic rotation is on; data keys wrapped under older key
material stay readable (KMS keeps it) and are re-wrapped by the scheduled key job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.constructs import permissions
from infra.constructs.python_function import PythonFunction

if TYPE_CHECKING:
    from infra.constructs.audit import Audit
    from infra.constructs.database import Database
    from infra.constructs.network import Network

# What compliance.crypto.data_keys.kms_encryption_context always binds (and nothing else may).
_FIELD_CONTEXT: dict[str, Any] = {
    "StringEquals": {f"kms:EncryptionContext:{c.FIELD_KEY_CONTEXT_NAME}": c.FIELD_KEY_CONTEXT_VALUE}
}


class DataProtection(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.field_key = kms.Key(
            self,
            "FieldKey",
            description="Wraps the per-subject data keys of field-level encryption (crypto-shredding).",
            alias=c.FIELD_KEY_ALIAS,
            enable_key_rotation=True,
            rotation_period=c.FIELD_KEY_ROTATION_PERIOD,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.rewrap: PythonFunction | None = None
        self._ledger: tuple[s3.IBucket, kms.IKey] | None = None

    def add_key_job(
        self,
        *,
        network: Network,
        database: Database,
        audit: Audit,
        key: kms.IKey,
        layers: Sequence[lambda_.ILayerVersion],
    ) -> PythonFunction:
        """The daily key job (functions/keys/rewrap.py) and the shred ledger (prefix ``shreds/`` of the
        audit anchor bucket: S3 Object Lock, COMPLIANCE mode). Call once the audit trail exists."""
        self._ledger = (audit.anchor_bucket, key)
        fn = PythonFunction(
            self,
            "Rewrap",
            spec=c.KEY_REWRAP_FN,
            layers=layers,
            vpc=network.vpc,
            security_groups=[database.client_security_group],
            key=key,
            environment={
                **database.proxy_environment,
                **audit.publish_environment,
                **self.environment,
                "SHRED_LEDGER_BUCKET": audit.anchor_bucket.bucket_name,
                "KEY_REWRAP_MAX_AGE_DAYS": str(c.KEY_REWRAP_MAX_AGE_DAYS),
                "KEY_REWRAP_BATCH_SIZE": str(c.KEY_REWRAP_BATCH_SIZE),
            },
        )
        database.grant_proxy_connect(fn)
        audit.allow_publish(fn)
        # ReEncrypt only (the data keys never leave KMS in plaintext), on the field key, for data keys.
        # Keys wrapped under another KMS key (a migration) need ReEncryptFrom on that key as well.
        fn.allow(
            "RewrapFieldDataKeys",
            ["kms:ReEncryptFrom", "kms:ReEncryptTo"],
            [self.field_key.key_arn],
            _FIELD_CONTEXT,
        )
        # The ledger's scopes are in its object keys: listing the prefix is all the job reads.
        fn.allow(
            "ListShredLedger",
            ["s3:ListBucket"],
            [audit.anchor_bucket.bucket_arn],
            {"StringLike": {"s3:prefix": [f"{c.SHRED_LEDGER_PREFIX}*"]}},
        )
        self.rewrap_schedule = events.Rule(
            self,
            "RewrapSchedule",
            description="Daily: re-apply ledgered shreds, then re-wrap data keys under newer key material.",
            schedule=events.Schedule.cron(
                hour=c.KEY_REWRAP_SCHEDULE_HOUR_UTC, minute=c.KEY_REWRAP_SCHEDULE_MINUTE
            ),
            targets=[targets.LambdaFunction(fn.function)],
        )
        self.rewrap = fn
        return fn

    @property
    def shred_ledger_environment(self) -> dict[str, str]:
        """What a function that shreds needs to write the ledger (after :meth:`add_key_job`)."""
        bucket, _ = self._ledger_parts()
        return {
            "SHRED_LEDGER_BUCKET": bucket.bucket_name,
            "SHRED_LEDGER_RETENTION_DAYS": str(c.SHRED_LEDGER_RETENTION_DAYS),
        }

    def allow_record_shreds(self, target: permissions.Allows) -> None:
        """Create-only, locked shred records under ``shreds/`` (PutObject with its Object Lock retention)."""
        bucket, key = self._ledger_parts()
        permissions.use_objects(
            target,
            "RecordShreds",
            bucket,
            c.SHRED_LEDGER_PREFIX,
            ["s3:PutObject", "s3:PutObjectRetention"],
            key,
            ["kms:GenerateDataKey"],
        )

    def _ledger_parts(self) -> tuple[s3.IBucket, kms.IKey]:
        if self._ledger is None:
            raise RuntimeError("DataProtection.add_key_job() must run before the shred ledger is used")
        return self._ledger

    @property
    def environment(self) -> dict[str, str]:
        """What a function using field encryption needs to know (``FieldEncryptionSettings``)."""
        return {"FIELD_KEY_ID": self.field_key.key_arn}

    def allow_encrypt(self, target: permissions.Allows) -> None:
        """New data keys (GenerateDataKey) and unwrapping existing ones (Decrypt)."""
        target.allow(
            "FieldDataKeys",
            ["kms:GenerateDataKey", "kms:Decrypt"],
            [self.field_key.key_arn],
            _FIELD_CONTEXT,
        )

    def allow_decrypt(self, target: permissions.Allows) -> None:
        """Unwrapping data keys only: readers never create keys."""
        target.allow("FieldDataKeysRead", ["kms:Decrypt"], [self.field_key.key_arn], _FIELD_CONTEXT)
