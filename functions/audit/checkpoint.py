"""Scheduled (EventBridge) signer of audit checkpoints: one signed, anchored tree head per
organisation whose audit log grew since its latest checkpoint."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.config import AuditCheckpointSettings, get_settings, init_environment
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.anchor import S3ObjectLockAnchor
    from compliance.audit.checkpoint import KmsSigner
    from compliance.db.connection import Database


@functools.cache
def _dependencies() -> tuple[Database, KmsSigner, S3ObjectLockAnchor]:
    # Built on first use, not at cold start: boto3 and psycopg are heavy imports.
    from compliance.audit.anchor import S3ObjectLockAnchor
    from compliance.audit.checkpoint import KmsSigner
    from compliance.aws.clients import client
    from compliance.db.connection import database_from_settings

    settings = get_settings(AuditCheckpointSettings)
    return (
        database_from_settings(settings),
        KmsSigner(client("kms"), settings.audit_signing_key_id),
        S3ObjectLockAnchor(client("s3"), settings.audit_anchor_bucket, settings.audit_anchor_retention_days),
    )


@init_environment(AuditCheckpointSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from compliance.audit.checkpointing import checkpoint_all

    return checkpoint_all(*_dependencies(), now=datetime.now(UTC)).summary()
