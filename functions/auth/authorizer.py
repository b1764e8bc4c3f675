"""API Gateway REQUEST authorizer: bearer API key -> IAM policy with the caller's org and roles."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.auth.authorizer import authorize_request
from compliance.config import AuthorizerSettings, get_settings, init_environment
from compliance.db.connection import Database, database_from_settings
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink


@functools.cache
def _db() -> Database:
    return database_from_settings(get_settings(AuthorizerSettings))


@functools.cache
def _audit_sink() -> AuditSink:
    # boto3 behind it: imported when the first key is refused, not at cold start.
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(get_settings(AuthorizerSettings).audit_queue_url)


@init_environment(AuthorizerSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize_request(event, db=_db(), audit_sink=lambda: _audit_sink(), now=datetime.now(UTC))
