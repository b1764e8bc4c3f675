"""Scheduled (EventBridge, hourly) DSR SLA monitor: alerts on requests close to or past their deadline and
closes verifications whose code expired (compliance.dsr.sla)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.config import DsrSlaSettings, get_settings, init_environment
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.aws.alerts import SnsAlertPublisher
    from compliance.aws.workflow import StepFunctionsWorkflow
    from compliance.db.connection import Database


@functools.cache
def _dependencies() -> tuple[Database, StepFunctionsWorkflow, SnsAlertPublisher]:
    # Built on first use, not at cold start: boto3 and psycopg are heavy imports.
    from compliance.aws.alerts import SnsAlertPublisher
    from compliance.aws.workflow import StepFunctionsWorkflow
    from compliance.db.connection import database_from_settings

    settings = get_settings(DsrSlaSettings)
    return (
        database_from_settings(settings),
        StepFunctionsWorkflow(settings.dsr_state_machine_arn),
        SnsAlertPublisher(settings.dsr_alert_topic_arn),
    )


def _run(now: datetime) -> dict[str, Any]:
    from compliance.dsr.sla import run_sla_monitor

    db, workflow, alerts = _dependencies()
    settings = get_settings(DsrSlaSettings)
    return run_sla_monitor(db, workflow, alerts, now=now, due_soon_days=settings.dsr_due_soon_days).summary()


@init_environment(DsrSlaSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _run(datetime.now(UTC))
