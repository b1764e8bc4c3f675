"""The audit API: query, verification, proofs, checkpoints, the signing public key and exports.

Roles ``auditor`` or ``system_admin``; always the caller's own organisation (row-level security),
so another organisation's ids are 404 like unknown ones.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime

from compliance.api.identity import require
from compliance.api.problems import register_error_handlers
from compliance.audit import download_links, export, proofs, query, verification
from compliance.audit.checkpoint import SignedCheckpoint
from compliance.audit.emit import RequestOrigin
from compliance.audit.events import MAX_SEQ
from compliance.audit.middleware import register_audit_middleware
from compliance.config import AuditApiSettings, get_settings, init_environment
from compliance.db.connection import Database, database_from_settings
from compliance.models.audit import (
    DEFAULT_PAGE_LIMIT,
    ActorFilter,
    AuditEventOut,
    CheckpointNumber,
    CheckpointPage,
    ConsistencyProofOut,
    Cursor,
    EventPage,
    EventQuery,
    EventTypeFilter,
    ExportRequest,
    InclusionProofOut,
    PageLimit,
    ResourceFilter,
    Seq,
    VerifyVerdict,
)
from compliance.models.auth import Principal, Role
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)
Auditor = Annotated[Principal, Depends(require(app, {Role.AUDITOR, Role.SYSTEM_ADMIN}))]


@functools.cache
def _db() -> Database:
    return database_from_settings(get_settings(AuditApiSettings))


@functools.cache
def _sink() -> AuditSink:
    # boto3 behind it: imported on first use, not at cold start.
    from compliance.audit.sqs_sink import audit_sink_from_settings

    sink: AuditSink = audit_sink_from_settings(get_settings(AuditApiSettings).audit_queue_url)
    return sink


# Every call is audited (api.request); the sink is looked up per call, built on first use.
register_audit_middleware(app, lambda: _sink())


@functools.cache
def _keys() -> verification.PublicKeySource:
    from compliance.aws.clients import client

    return verification.KmsPublicKeySource(client("kms"), get_settings(AuditApiSettings).audit_signing_key_id)


@functools.cache
def _exports() -> export.ExportStore:
    # Its own client: SigV4, a longer read timeout for multipart parts.
    import boto3
    from botocore.config import Config

    settings = get_settings(AuditApiSettings)
    s3 = boto3.session.Session().client(
        "s3",
        region_name=settings.aws_region,
        config=Config(
            signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=3,
            read_timeout=30,
        ),
    )
    return export.S3ExportStore(s3, settings.exports_bucket)


@functools.cache
def _download_links() -> download_links.LinkSigner:
    # Signs with a session of the download role per export: its end is known, the function's is not.
    from compliance.aws.clients import client

    settings = get_settings(AuditApiSettings)
    return download_links.DownloadSigner(
        client("sts"),
        settings.export_download_role_arn,
        settings.exports_bucket,
        presigner_for=download_links.s3_presigner(settings.aws_region),
    )


@app.get("/v1/audit/events")
def list_events(
    principal: Auditor,
    occurred_from: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    occurred_to: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    actor: Annotated[ActorFilter | None, Query()] = None,
    event_type: Annotated[EventTypeFilter | None, Query()] = None,
    resource: Annotated[ResourceFilter | None, Query()] = None,
    limit: Annotated[PageLimit, Query()] = DEFAULT_PAGE_LIMIT,
    cursor: Annotated[Cursor | None, Query()] = None,
) -> EventPage:
    request = EventQuery.model_validate(
        {
            "from": occurred_from,
            "to": occurred_to,
            "actor": actor,
            "event_type": event_type,
            "resource": resource,
            "limit": limit,
            "cursor": cursor,
        }
    )
    return query.list_events(_db(), principal, request)


@app.get("/v1/audit/events/<event_id>")
def get_event(event_id: UUID, principal: Auditor) -> AuditEventOut:
    return query.get_event(_db(), principal, event_id)


@app.get("/v1/audit/events/<event_id>/proof")
def get_inclusion_proof(
    event_id: UUID,
    principal: Auditor,
    checkpoint: Annotated[CheckpointNumber | None, Query()] = None,
) -> InclusionProofOut:
    return proofs.inclusion_proof(_db(), principal, event_id, checkpoint_number=checkpoint)


@app.get("/v1/audit/verify")
def verify(
    principal: Auditor,
    from_seq: Annotated[Seq | None, Query()] = None,
    to_seq: Annotated[Seq | None, Query()] = None,
) -> VerifyVerdict:
    return verification.verify_range(_db(), principal, _keys(), from_seq=from_seq, to_seq=to_seq)


@app.get("/v1/audit/checkpoints")
def list_checkpoints(
    principal: Auditor,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    limit: Annotated[PageLimit, Query()] = DEFAULT_PAGE_LIMIT,
) -> CheckpointPage:
    return query.list_checkpoints(_db(), principal, after=after, limit=limit)


@app.get("/v1/audit/checkpoints/<number>")
def get_checkpoint(number: Annotated[CheckpointNumber, Path()], principal: Auditor) -> SignedCheckpoint:
    return query.get_checkpoint(_db(), principal, number)


# One name per path level: API Gateway allows a single variable part among siblings ({number}).
@app.get("/v1/audit/checkpoints/<number>/consistency/<to_number>")
def get_consistency_proof(
    number: Annotated[CheckpointNumber, Path()],
    to_number: Annotated[CheckpointNumber, Path()],
    principal: Auditor,
) -> ConsistencyProofOut:
    return proofs.consistency_proof(_db(), principal, number, to_number)


@app.get("/v1/audit/public-key")
def public_key(principal: Auditor) -> Response[str]:
    return Response(
        status_code=200,
        content_type="application/x-pem-file",
        body=verification.public_key_pem(_keys()),
        headers={"Cache-Control": "max-age=3600"},
    )


@app.post("/v1/audit/exports")
def create_export(request: ExportRequest, principal: Auditor) -> Response[str]:
    settings = get_settings(AuditApiSettings)
    created = export.create_export(
        _db(),
        principal,
        request,
        store=_exports(),
        links=_download_links(),
        sink=_sink(),
        url_expiry_s=settings.export_url_expiry_s,
        now=datetime.now(UTC),
        origin=RequestOrigin.from_event(app.current_event.raw_event),
    )
    return Response(
        status_code=201,
        content_type="application/json",
        body=created.model_dump_json(),
        headers={"Cache-Control": "no-store"},
    )


@init_environment(AuditApiSettings)
@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
