"""Data subject requests (GDPR Art. 12 to 22): DPOs and system admins of an organisation create,
read, list, extend and cancel them, and lift a restriction of processing; the subject verifies a
request with the e-mailed code, on a route without an authorizer (the code is the credential)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.api.identity import require
from compliance.api.problems import register_error_handlers
from compliance.audit.emit import RequestOrigin
from compliance.audit.middleware import register_audit_middleware
from compliance.config import DsrApiSettings, get_settings, init_environment
from compliance.db.connection import Database, database_from_settings
from compliance.dsr import requests as dsr_requests
from compliance.models.auth import Principal, Role
from compliance.models.dsr import (
    DEFAULT_PAGE_LIMIT,
    MAX_CURSOR_CHARS,
    MAX_PAGE_LIMIT,
    DsrCreate,
    DsrExtend,
    DsrList,
    DsrListQuery,
    DsrOut,
    DsrStatus,
    DsrType,
    DsrVerified,
    DsrVerify,
)
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink
    from compliance.aws.exports import ExportStore
    from compliance.aws.workflow import DsrWorkflow
    from compliance.crypto.session import FieldCrypto

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)
DsrManager = Annotated[Principal, Depends(require(app, {Role.DPO, Role.SYSTEM_ADMIN}))]
StatusFilter = Annotated[DsrStatus | None, Query()]
TypeFilter = Annotated[DsrType | None, Query()]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)]
PageCursor = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]+$", max_length=MAX_CURSOR_CHARS)]


@functools.cache
def _db() -> Database:
    return database_from_settings(get_settings(DsrApiSettings))


@functools.cache
def _sink() -> AuditSink:
    # boto3 behind it: imported on first use, not at cold start.
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(get_settings(DsrApiSettings).audit_queue_url)


@functools.cache
def _crypto() -> FieldCrypto:
    from compliance.crypto.session import field_crypto_from_settings

    return field_crypto_from_settings(get_settings(DsrApiSettings))


@functools.cache
def _workflow() -> DsrWorkflow:
    from compliance.aws.workflow import StepFunctionsWorkflow

    return StepFunctionsWorkflow(get_settings(DsrApiSettings).dsr_state_machine_arn)


@functools.cache
def _secret() -> bytes:
    """The DSR secret, read once per process."""
    from compliance.aws.clients import client

    return dsr_requests.read_dsr_secret(client("secretsmanager"), get_settings(DsrApiSettings).dsr_secret_arn)


@functools.cache
def _exports() -> ExportStore:
    # boto3 (S3) behind it: only a request with a ready export signs a link.
    from compliance.aws.exports import export_store

    settings = get_settings(DsrApiSettings)
    return export_store(
        settings.exports_bucket, settings.exports_key_id, signer_secret_arn=settings.export_signer_secret_arn
    )


def _link_for(key: str, seconds: int) -> str:
    return _exports().presign(key, seconds)


# Looked up at each call, not bound here: the sink is built on first use (and replaceable in tests).
register_audit_middleware(app, lambda: _sink())


def _origin() -> RequestOrigin:
    return RequestOrigin.from_event(app.current_event.raw_event)


@app.post("/v1/dsr")
def create_dsr(request: DsrCreate, principal: DsrManager) -> Response[str]:
    accepted = dsr_requests.create_request(
        _db(),
        principal,
        request,
        now=datetime.now(UTC),
        sink=_sink(),
        workflow=_workflow(),
        secret=_secret(),
        origin=_origin(),
        crypto=_crypto() if request.corrections is not None else None,
    )
    return Response(status_code=202, content_type="application/json", body=accepted.model_dump_json())


@app.get("/v1/dsr")
def list_dsr(
    principal: DsrManager,
    status: StatusFilter = None,
    type: TypeFilter = None,
    limit: Limit = DEFAULT_PAGE_LIMIT,
    cursor: PageCursor = None,
) -> DsrList:
    query = DsrListQuery(status=status, type=type, limit=limit, cursor=cursor)
    return dsr_requests.list_requests(_db(), principal, query, now=datetime.now(UTC))


@app.get("/v1/dsr/<request_id>")
def get_dsr(request_id: UUID, principal: DsrManager) -> Response[str]:
    found: DsrOut = dsr_requests.get_request(
        _db(),
        principal,
        request_id,
        now=datetime.now(UTC),
        link_for=_link_for,
        link_seconds=get_settings(DsrApiSettings).dsr_export_link_s,
    )
    # A presigned link is a bearer credential for the export: no intermediary may keep it.
    return Response(
        status_code=200,
        content_type="application/json",
        body=found.model_dump_json(),
        headers={"Cache-Control": "no-store"},
    )


@app.post("/v1/dsr/<request_id>/extend")
def extend_dsr(request_id: UUID, request: DsrExtend, principal: DsrManager) -> DsrOut:
    return dsr_requests.extend_request(
        _db(), principal, request_id, request, now=datetime.now(UTC), sink=_sink(), origin=_origin()
    )


@app.post("/v1/dsr/<request_id>/cancel")
def cancel_dsr(request_id: UUID, principal: DsrManager) -> DsrOut:
    return dsr_requests.cancel_request(
        _db(),
        principal,
        request_id,
        now=datetime.now(UTC),
        sink=_sink(),
        workflow=_workflow(),
        origin=_origin(),
    )


@app.post("/v1/dsr/<request_id>/lift")
def lift_dsr_restriction(request_id: UUID, principal: DsrManager) -> DsrOut:
    return dsr_requests.lift_restriction(
        _db(), principal, request_id, now=datetime.now(UTC), sink=_sink(), origin=_origin()
    )


# No principal: API Gateway has no authorizer on this route; the one-time code is the credential.
@app.post("/v1/dsr/<request_id>/verify")
def verify_dsr(request_id: UUID, request: DsrVerify) -> DsrVerified:
    return dsr_requests.verify_request(
        _db(),
        _sink(),
        _workflow(),
        request_id,
        request.code,
        secret=_secret(),
        now=datetime.now(UTC),
        origin=_origin(),
    )


@init_environment(DsrApiSettings)
@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
