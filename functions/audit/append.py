"""Audit FIFO consumer: appends each batch of queued audit events in one transaction."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.config import AuditAppendSettings, get_settings, init_environment
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.append_consumer import AuditAppendConsumer


@functools.cache
def _consumer() -> AuditAppendConsumer:
    # Imported on first use, not at cold start: boto3 and the database driver are heavy.
    from compliance.audit.append_consumer import AuditAppendConsumer, DatabaseAppendStore, SqsDeadLetterSender
    from compliance.aws.clients import client
    from compliance.db.connection import database_from_settings

    settings = get_settings(AuditAppendSettings)
    return AuditAppendConsumer(
        store=DatabaseAppendStore(database_from_settings(settings)),
        dead_letters=SqsDeadLetterSender(client("sqs"), settings.audit_dead_letter_queue_url),
    )


@init_environment(AuditAppendSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    return _consumer().process(event)
