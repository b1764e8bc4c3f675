"""API-key administration for system admins of an organisation; the data catalog for DPOs,
auditors and system admins (it describes the schema, not any organisation's data); the org's
PII settings (system admins and DPOs); stored usage records, decrypted for roles that may read
content (compliance.ingest.records); consent records (the platform's machine key records them as
users accept notices; DPOs and auditors read the history)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.admin import api_keys
from compliance.admin import settings as org_settings
from compliance.api.identity import require
from compliance.api.problems import register_error_handlers
from compliance.audit.emit import RequestOrigin
from compliance.audit.middleware import register_audit_middleware
from compliance.catalog import service as catalog_service
from compliance.config import AdminApiSettings, get_settings, init_environment
from compliance.consent import service as consent_service
from compliance.db.connection import Database, database_from_settings
from compliance.ingest.records import READ_ROLES, read_usage_record
from compliance.models.auth import ApiKeyCreate, ApiKeyOut, Principal, Role
from compliance.models.catalog import (
    TABLE_NAME_MAX_LENGTH,
    TABLE_NAME_PATTERN,
    CatalogOut,
    PersonalDataOut,
)
from compliance.models.consent import ConsentCreate, ConsentHistory, ConsentOut
from compliance.models.settings import PiiSettings
from compliance.models.usage import UsageRecordDetailOut
from compliance.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from compliance.audit.sink import AuditSink
    from compliance.crypto.session import FieldCrypto

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)
Admin = Annotated[Principal, Depends(require(app, {Role.SYSTEM_ADMIN}))]
CatalogReader = Annotated[Principal, Depends(require(app, {Role.DPO, Role.AUDITOR, Role.SYSTEM_ADMIN}))]
SettingsAdmin = Annotated[Principal, Depends(require(app, {Role.SYSTEM_ADMIN, Role.DPO}))]
UsageReader = Annotated[Principal, Depends(require(app, READ_ROLES))]
ConsentWriter = Annotated[Principal, Depends(require(app, {Role.DPO, Role.SYSTEM_ADMIN, Role.INGEST}))]
ConsentReader = Annotated[Principal, Depends(require(app, {Role.DPO, Role.SYSTEM_ADMIN, Role.AUDITOR}))]
SubjectId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:@+=-]{1,128}$", max_length=128)]
RequestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:@+=-]{1,128}$", max_length=128)]
TableName = Annotated[str | None, Query(pattern=TABLE_NAME_PATTERN, max_length=TABLE_NAME_MAX_LENGTH)]


@functools.cache
def _db() -> Database:
    return database_from_settings(get_settings(AdminApiSettings))


@functools.cache
def _sink() -> AuditSink:
    # boto3 behind it: imported on first use, not at cold start.
    from compliance.audit.sqs_sink import audit_sink

    return audit_sink(get_settings(AdminApiSettings).audit_queue_url)


@functools.cache
def _crypto() -> FieldCrypto:
    # boto3 (KMS) behind it: imported on first use, not at cold start.
    from compliance.crypto.session import field_crypto_from_settings

    return field_crypto_from_settings(get_settings(AdminApiSettings))


# Looked up at each call, not bound here: the sink is built on first use (and replaceable in tests).
register_audit_middleware(app, lambda: _sink())


def _origin() -> RequestOrigin:
    return RequestOrigin.from_event(app.current_event.raw_event)


@app.post("/v1/api-keys")
def create_key(request: ApiKeyCreate, principal: Admin) -> Response[str]:
    created = api_keys.create_api_key(
        _db(), principal, request, now=datetime.now(UTC), sink=_sink(), origin=_origin()
    )
    return Response(
        status_code=201,
        content_type="application/json",
        body=created.model_dump_json(),
        headers={"Cache-Control": "no-store"},
    )


@app.get("/v1/api-keys")
def list_keys(principal: Admin) -> dict[str, list[ApiKeyOut]]:
    return {"items": api_keys.list_api_keys(_db(), principal)}


@app.get("/v1/api-keys/<key_id>")
def get_key(key_id: UUID, principal: Admin) -> ApiKeyOut:
    return api_keys.get_api_key(_db(), principal, key_id)


@app.post("/v1/api-keys/<key_id>/revoke")
def revoke_key(key_id: UUID, principal: Admin) -> ApiKeyOut:
    return api_keys.revoke_api_key(
        _db(), principal, key_id, now=datetime.now(UTC), sink=_sink(), origin=_origin()
    )


@app.get("/v1/catalog")
def get_catalog(_reader: CatalogReader) -> CatalogOut:
    return catalog_service.read_catalog(_db())


@app.get("/v1/catalog/personal-data")
def get_personal_data(_reader: CatalogReader, table: TableName = None) -> PersonalDataOut:
    return catalog_service.read_personal_data(_db(), table)


@app.get("/v1/settings/pii")
def get_pii_settings(principal: SettingsAdmin) -> PiiSettings:
    return org_settings.read_pii_settings(_db(), principal)


@app.put("/v1/settings/pii")
def put_pii_settings(request: PiiSettings, principal: SettingsAdmin) -> PiiSettings:
    return org_settings.update_pii_settings(
        _db(), principal, request, now=datetime.now(UTC), sink=_sink(), origin=_origin()
    )


@app.get("/v1/usage/<request_id>")
def get_usage_record(request_id: RequestId, principal: UsageReader) -> Response[str]:
    record: UsageRecordDetailOut = read_usage_record(_db(), _crypto(), principal, request_id)
    # Decrypted content must not be cached by any intermediary.
    return Response(
        status_code=200,
        content_type="application/json",
        body=record.model_dump_json(),
        headers={"Cache-Control": "no-store"},
    )


@app.post("/v1/consents")
def post_consent(request: ConsentCreate, principal: ConsentWriter) -> Response[str]:
    recorded = consent_service.record_consent(
        _db(), principal, request, now=datetime.now(UTC), sink=_sink(), origin=_origin()
    )
    return Response(status_code=201, content_type="application/json", body=recorded.model_dump_json())


@app.post("/v1/consents/<consent_id>/revoke")
def revoke_consent(consent_id: UUID, principal: ConsentWriter) -> ConsentOut:
    return consent_service.revoke_consent(
        _db(), principal, consent_id, now=datetime.now(UTC), sink=_sink(), origin=_origin()
    )


@app.get("/v1/subjects/<subject_id>/consents")
def get_consents(subject_id: SubjectId, principal: ConsentReader) -> ConsentHistory:
    return consent_service.consent_history(_db(), principal, subject_id)


@init_environment(AdminApiSettings)
@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
