"""POST /v1/usage: validate a batch of usage records, queue it, answer 202."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import uuid4

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.api.identity import require
from compliance.api.problems import register_error_handlers
from compliance.audit.middleware import register_audit_middleware
from compliance.aws.clients import client
from compliance.aws.queues import SqsSender
from compliance.config import IngestApiSettings, get_settings, init_environment
from compliance.ingest.accept import accept_batch
from compliance.models.auth import Principal, Role
from compliance.models.usage import UsageBatchIn
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)
ingester = require(app, {Role.INGEST, Role.SYSTEM_ADMIN})


@functools.cache
def _sender() -> SqsSender:
    return SqsSender(client("sqs"), get_settings(IngestApiSettings).ingest_queue_url)


@functools.cache
def _sink() -> AuditSink:
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(get_settings(IngestApiSettings).audit_queue_url)


# Looked up at each call, not bound here: the sink is built on first use (and replaceable in tests).
register_audit_middleware(app, lambda: _sink())


@app.post("/v1/usage")
def post_usage(batch: UsageBatchIn, principal: Annotated[Principal, Depends(ingester)]) -> Response[str]:
    # The batch is queued before its api.request event is published. If the audit trail then refuses
    # the event, the caller gets a 503 and retries: the processor stores each request_id once, and
    # the retry's event records the call.
    accepted = accept_batch(
        batch, org_id=principal.org_id, sender=_sender(), received_at=datetime.now(UTC), batch_id=uuid4()
    )
    return Response(status_code=202, content_type="application/json", body=accepted.model_dump_json())


@init_environment(IngestApiSettings)
@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
