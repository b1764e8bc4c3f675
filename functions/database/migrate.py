"""Applies database migrations; a CDK trigger runs it on every deploy that changes it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.config import MigrationSettings, get_settings, init_environment
from compliance.deploy import apply_migrations
from compliance.observability import logger, metrics, tracer


@init_environment(MigrationSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return apply_migrations(get_settings(MigrationSettings)).model_dump(mode="json")
