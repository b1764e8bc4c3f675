"""The Lambda tasks of the data subject request state machine (infra/constructs/dsr.py): one handler per
step, each its own function and role. The logic is compliance.dsr.workflow; each handler parses the
task's input and calls one step."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.config import DsrWorkflowSettings, get_settings, init_environment
from compliance.dsr.workflow import StepContext, StepInput
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink
    from compliance.aws.email import EmailSender
    from compliance.aws.exports import ExportStore
    from compliance.crypto.ledger import ShredLedger
    from compliance.crypto.session import FieldCrypto
    from compliance.db.connection import Database


def _settings() -> DsrWorkflowSettings:
    return get_settings(DsrWorkflowSettings)


# Collaborators are built on first use, not at cold start (boto3 and psycopg are heavy imports).
@functools.cache
def _db() -> Database:
    from compliance.db.connection import database_from_settings

    return database_from_settings(_settings())


@functools.cache
def _crypto() -> FieldCrypto:
    from compliance.crypto.session import field_crypto_from_settings

    return field_crypto_from_settings(_settings())


@functools.cache
def _sink() -> AuditSink:
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(_settings().audit_queue_url)


@functools.cache
def _sender() -> EmailSender:
    from compliance.aws.email import SesEmailSender

    return SesEmailSender(_settings().dsr_sender)


@functools.cache
def _exports() -> ExportStore:
    from compliance.aws.exports import export_store

    settings = _settings()
    return export_store(
        settings.exports_bucket, settings.exports_key_id, signer_secret_arn=settings.export_signer_secret_arn
    )


@functools.cache
def _ledger() -> ShredLedger:
    from compliance.aws.clients import client
    from compliance.crypto.ledger import S3ShredLedger

    settings = _settings()
    return S3ShredLedger(client("s3"), settings.shred_ledger_bucket, settings.shred_ledger_retention_days)


@functools.cache
def _verification_key() -> bytes:
    from compliance.aws.clients import client
    from compliance.dsr.requests import read_dsr_secret

    return read_dsr_secret(client("secretsmanager"), _settings().dsr_secret_arn)


def _ctx() -> StepContext:
    return StepContext(db=_db(), sink=_sink(), now=datetime.now(UTC))


@init_environment(DsrWorkflowSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def record(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from compliance.dsr.workflow import run_status_step

    return run_status_step(_ctx(), StepInput.model_validate(event))


@init_environment(DsrWorkflowSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def verification(event: dict[str, Any], context: LambdaContext) -> None:
    from compliance.dsr.workflow import send_verification

    step = StepInput.model_validate(event)
    send_verification(
        _ctx(),
        _crypto(),
        _sender(),
        step.org_id,
        step.request_id,
        step.required_token(),
        key=_verification_key(),
        policy=_settings().verification_policy(),
    )


@init_environment(DsrWorkflowSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def export(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from compliance.dsr.workflow import run_export

    step = StepInput.model_validate(event)
    return run_export(_ctx(), _crypto(), _exports(), step.org_id, step.request_id)


@init_environment(DsrWorkflowSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def erasure(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from compliance.dsr.workflow import run_erasure

    step = StepInput.model_validate(event)
    return run_erasure(_ctx(), _crypto(), _ledger(), _exports(), _sender(), step.org_id, step.request_id)


@init_environment(DsrWorkflowSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def change(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from compliance.dsr.workflow import run_change_step

    step = StepInput.model_validate(event)
    return run_change_step(_ctx(), _crypto(), step, email_key_secret=_verification_key())


@init_environment(DsrWorkflowSettings)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def notify(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from compliance.dsr.workflow import notify_and_close

    step = StepInput.model_validate(event)
    return notify_and_close(
        _ctx(),
        _crypto(),
        _sender(),
        _exports(),
        step.org_id,
        step.request_id,
        link_ttl_s=_settings().dsr_export_link_ttl_s,
    )
