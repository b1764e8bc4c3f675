"""API Gateway REQUEST authorizer: bearer API key -> IAM policy with the caller's org and roles."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.auth.authorizer import authorize_request
from compliance.config import AuthorizerSettings, get_settings, init_environment
from compliance.db.connection import Database, database_from_settings
from compliance.observability import logger, metrics, tracer


@functools.cache
def _db() -> Database:
    return database_from_settings(get_settings(AuthorizerSettings))


@init_environment(AuthorizerSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize_request(event, db=_db(), now=datetime.now(UTC))
