"""Ingest-queue consumer: stores each queued slice of usage records exactly once, personal fields sealed."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.config import ProcessorSettings, get_settings, init_environment
from compliance.db.connection import database_from_settings
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

    from compliance.audit.sink import AuditSink
    from compliance.crypto.session import FieldCrypto
    from compliance.ingest.processor import UsageQueueConsumer


@functools.cache
def _sink() -> AuditSink:
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(get_settings(ProcessorSettings).audit_queue_url)


@functools.cache
def _crypto() -> FieldCrypto:
    from compliance.crypto.session import field_crypto_from_settings

    return field_crypto_from_settings(get_settings(ProcessorSettings))


@functools.cache
def _email_key_secret() -> bytes | None:
    """The DSR secret, when the stack gives it: addresses get their look-up keys (DSR by e-mail)."""
    arn = get_settings(ProcessorSettings).dsr_secret_arn
    if arn is None:
        return None
    from compliance.aws.clients import client
    from compliance.dsr.requests import read_dsr_secret

    return read_dsr_secret(client("secretsmanager"), arn)


@functools.cache
def _consumer() -> UsageQueueConsumer:
    # Imported on first use, not at cold start: Powertools batch/idempotency bring in boto3 (~200 ms).
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from compliance.ingest.processor import UsageQueueConsumer

    settings = get_settings(ProcessorSettings)
    return UsageQueueConsumer(
        db=database_from_settings(settings),
        crypto=_crypto(),
        sink=_sink(),
        persistence=DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name),
        idempotency_ttl_s=settings.idempotency_ttl_s,
        email_key_secret=_email_key_secret,
    )


@init_environment(ProcessorSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return _consumer().process(event, context)
