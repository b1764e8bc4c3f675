"""POST /v1/pii/scan: find personal data and secrets in texts; optionally return them redacted.

Roles: ``dpo`` (investigations, checking what a text holds), ``system_admin`` and ``cost_admin`` (they
run the usage pipeline and check what the org's redaction would do to their prompts). The call reads
and stores nothing: it discloses no data the caller did not send. ``ingest`` keys are machine keys and
``auditor``/``cost_viewer`` are read-only roles over stored data: none of them needs it.

The response carries spans and, on request, the redacted text, never a found value; nothing about the
texts is logged. The scanner (phonenumbers' metadata included) loads at cold start, on purpose: it is
this function's only job, and Lambda's init phase pays it instead of the first request.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.api.identity import require
from compliance.api.problems import register_error_handlers
from compliance.audit.middleware import register_audit_middleware
from compliance.config import PiiApiSettings, get_settings, init_environment
from compliance.models.auth import Principal, Role
from compliance.models.pii import PiiScanIn
from compliance.observability import logger, metrics, tracer
from compliance.pii.service import scan_request

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink

SCAN_ROLES = frozenset({Role.DPO, Role.SYSTEM_ADMIN, Role.COST_ADMIN})

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)
Scanner = Annotated[Principal, Depends(require(app, SCAN_ROLES))]


@functools.cache
def _sink() -> AuditSink:
    # boto3 behind it: imported on first use, not at cold start.
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(get_settings(PiiApiSettings).audit_queue_url)


# Looked up at each call, not bound here: the sink is built on first use (and replaceable in tests).
register_audit_middleware(app, lambda: _sink())


@app.post("/v1/pii/scan")
def post_scan(request: PiiScanIn, _caller: Scanner) -> Response[str]:
    result = scan_request(request)
    # The redacted text may still be sensitive in context: no cache keeps it.
    return Response(
        status_code=200,
        content_type="application/json",
        body=result.model_dump_json(),
        headers={"Cache-Control": "no-store"},
    )


@init_environment(PiiApiSettings)
@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
