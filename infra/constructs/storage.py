"""S3: the shared server-access-log bucket, and the one way this app defines a data bucket.

Data buckets are private (block public access, owner-enforced objects), TLS-only, versioned, encrypted
with the stack's CMK (bucket key on, so S3 asks KMS once per bucket key, not per object) and log every
request to the access-log bucket. S3 only delivers server access logs to a bucket with SSE-S3 (AWS
documents that SSE-KMS targets are not supported), so that one bucket is the exception.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c


class AccessLogs(Construct):
    """The target of every bucket's server access logs (one per stack)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=c.ACCESS_LOGS_EXPIRY,
                    noncurrent_version_expiration=c.ACCESS_LOGS_EXPIRY,
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )


def data_bucket(
    scope: Construct,
    construct_id: str,
    *,
    key: kms.IKey,
    access_logs: AccessLogs,
    access_logs_prefix: str,
    lifecycle_rules: Sequence[s3.LifecycleRule] = (),
    object_lock_retention: s3.ObjectLockRetention | None = None,
) -> s3.Bucket:
    return s3.Bucket(
        scope,
        construct_id,
        encryption=s3.BucketEncryption.KMS,
        encryption_key=key,
        bucket_key_enabled=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        versioned=True,
        server_access_logs_bucket=access_logs.bucket,
        server_access_logs_prefix=access_logs_prefix,
        lifecycle_rules=list(lifecycle_rules) or None,
        object_lock_enabled=object_lock_retention is not None,
        object_lock_default_retention=object_lock_retention,
        removal_policy=RemovalPolicy.RETAIN,
    )


def expiring_objects(rule_id: str, expiration: Duration) -> s3.LifecycleRule:
    """For objects rebuilt on request (exports): gone after ``expiration``, a replaced version a day
    later, an unfinished multipart upload after a day."""
    return s3.LifecycleRule(
        id=rule_id,
        expiration=expiration,
        noncurrent_version_expiration=Duration.days(1),
        abort_incomplete_multipart_upload_after=Duration.days(1),
    )
