"""Explicit IAM statements for what the roles here do, replacing CDK's grant methods (see roles.py).

Each function names the exact actions; KMS use is bound to the one service that calls KMS on the
role's behalf (kms:ViaService), so holding a statement for the queue does not let a role decrypt a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aws_cdk import Aws, Fn
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs


class Allows(Protocol):
    def allow(
        self,
        sid: str,
        actions: Sequence[str],
        resources: Sequence[str],
        conditions: Mapping[str, Any] | None = None,
    ) -> None: ...


def _via(service: str) -> dict[str, Any]:
    return {"StringEquals": {"kms:ViaService": f"{service}.{Aws.REGION}.amazonaws.com"}}


def send_to_queue(target: Allows, queue: sqs.IQueue, key: kms.IKey, *, name: str = "Queue") -> None:
    """sqs:SendMessage (SendMessageBatch is authorised as it) on one queue; ``name`` keeps Sids unique."""
    target.allow(f"SendTo{name}", ["sqs:SendMessage"], [queue.queue_arn])
    # SSE-KMS producers generate the data key and may need to decrypt a cached one.
    target.allow(f"{name}KeyForSend", ["kms:GenerateDataKey", "kms:Decrypt"], [key.key_arn], _via("sqs"))


def consume_queue(target: Allows, queue: sqs.IQueue, key: kms.IKey) -> None:
    """What the Lambda SQS event source mapping does with the function's role."""
    target.allow(
        "ConsumeQueue",
        [
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
        ],
        [queue.queue_arn],
    )
    target.allow("QueueKeyForReceive", ["kms:Decrypt"], [key.key_arn], _via("sqs"))


def use_objects(
    target: Allows,
    sid: str,
    bucket: s3.IBucket,
    prefix: str,
    actions: Sequence[str],
    key: kms.IKey,
    key_actions: Sequence[str],
) -> None:
    """Object actions under one prefix of one bucket, and the bucket key for them (SSE-KMS, via S3 only).

    PutObject needs kms:GenerateDataKey; GetObject and multipart uploads need kms:Decrypt.
    """
    target.allow(sid, actions, [bucket.arn_for_objects(f"{prefix}*")])
    target.allow(f"{sid}Key", key_actions, [key.key_arn], _via("s3"))


def use_idempotency_table(target: Allows, table: dynamodb.ITable, key: kms.IKey) -> None:
    """Powertools idempotency: get, put (conditional), update and delete records; nothing else."""
    target.allow(
        "IdempotencyRecords",
        ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
        [table.table_arn],
    )
    target.allow(
        "IdempotencyTableKey",
        ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
        [key.key_arn],
        _via("dynamodb"),
    )


def read_secrets(target: Allows, secrets: Sequence[secretsmanager.ISecret], key: kms.IKey) -> None:
    target.allow(
        "ReadSecrets",
        ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
        [secret.secret_arn for secret in secrets],
    )
    target.allow("SecretsKey", ["kms:Decrypt"], [key.key_arn], _via("secretsmanager"))


def connect_through_proxy(target: Allows, proxy: rds.IDatabaseProxy, db_user: str) -> None:
    """rds-db:connect as one database user through one proxy (IAM auth)."""
    # The proxy's resource id (prx-...) is the last field of its ARN; the dbuser ARN is built from it.
    proxy_resource_id = Fn.select(6, Fn.split(":", proxy.db_proxy_arn))
    target.allow(
        "ConnectThroughProxy",
        ["rds-db:connect"],
        [f"arn:{Aws.PARTITION}:rds-db:{Aws.REGION}:{Aws.ACCOUNT_ID}:dbuser:{proxy_resource_id}/{db_user}"],
    )
