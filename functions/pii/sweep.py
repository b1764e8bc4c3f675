"""Scheduled (EventBridge, daily) PII sweep: samples every organisation's columns that the data
catalog says hold no personal data, scans them, and reports what it finds as counts (one
``pii.sweep_completed`` audit event per organisation, metric ``PiiSweepFindings``)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.config import PiiSweepSettings, get_settings, init_environment
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink
    from compliance.db.connection import Database


@functools.cache
def _database() -> Database:
    # Built on first use, not at cold start: psycopg and boto3 are heavy imports.
    from compliance.db.connection import database_from_settings

    return database_from_settings(get_settings(PiiSweepSettings))


@functools.cache
def _sink() -> AuditSink:
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(get_settings(PiiSweepSettings).audit_queue_url)


@init_environment(PiiSweepSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from compliance.pii.sweep import SweepLimits, run_id_of, sweep_all

    return sweep_all(
        _database(),
        _sink(),
        run_id=run_id_of(event),
        now=datetime.now(UTC),
        limits=SweepLimits.from_settings(get_settings(PiiSweepSettings)),
        time_left_ms=context.get_remaining_time_in_millis,
    ).summary()
