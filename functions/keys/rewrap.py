"""Scheduled (EventBridge, daily) key job: re-apply the shreds recorded in the shred ledger to the
database (a restore from a backup must not revive an erased subject), then re-wrap every
organisation's data keys under the field key's newest material (KMS ReEncrypt)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.config import KeyRewrapSettings, get_settings, init_environment
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink
    from compliance.crypto.ledger import S3ShredLedger
    from compliance.crypto.rotation import KmsRewrapper
    from compliance.db.connection import Database


@functools.cache
def _dependencies() -> tuple[Database, KmsRewrapper, S3ShredLedger]:
    # Built on first use, not at cold start: boto3 and psycopg are heavy imports.
    from compliance.aws.clients import client
    from compliance.crypto.ledger import S3ShredLedger
    from compliance.crypto.rotation import KmsRewrapper
    from compliance.db.connection import database_from_settings

    settings = get_settings(KeyRewrapSettings)
    return (
        database_from_settings(settings),
        KmsRewrapper(client("kms"), settings.field_key_id),
        # Listing only: the retention applies to records written, which this job never does.
        S3ShredLedger(client("s3"), settings.shred_ledger_bucket, retention_days=1),
    )


def _sink() -> AuditSink:
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(get_settings(KeyRewrapSettings).audit_queue_url)


def _run(now: datetime) -> dict[str, Any]:
    from compliance.crypto.rotation import run_key_job

    settings = get_settings(KeyRewrapSettings)
    return run_key_job(
        *_dependencies(),
        _sink(),
        now=now,
        max_age=timedelta(days=settings.key_rewrap_max_age_days),
        batch_size=settings.key_rewrap_batch_size,
    ).summary()


@init_environment(KeyRewrapSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _run(datetime.now(UTC))
