"""Builders for the audit events producers emit: one place that fixes their vocabulary and shape.

- ``actor``: ``api_key:<key_id>`` for an authenticated caller, ``anonymous`` when unknown.
- ``resource``: ``route:<METHOD>:<template>`` for an API route (path parameters as ``:name``: the
  event format admits no braces or spaces), ``api_key:<key_id>`` for a key, ``subject:<uuid>``
  (``org:<uuid>`` for org-level secrets) for the data keys of a subject (a pseudonymous id).
- ``result``: from the HTTP status (:func:`result_for_status`).
- ``details``: ids, counts and fixed codes only, never personal data, key material or raw input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from uuid import UUID, uuid4

from compliance.audit.events import SYSTEM_ORG_ID, AuditEventIn, AuditResult
from compliance.audit.sink import AuditSink
from compliance.errors import AuditUnavailableError
from compliance.models.auth import Principal, Role
from compliance.observability import logger, metrics

API_REQUEST = "api.request"
AUTH_FAILURE = "auth.failure"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"
KEY_CREATED = "key.created"
KEY_SHREDDED = "key.shredded"

ANONYMOUS = "anonymous"
UNMATCHED_ROUTE = "*"
AUDIT_PUBLISH_FAILED = "AuditPublishFailed"

_METHOD = re.compile(r"^[A-Z]{1,16}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/@+=-]{1,128}$")
# A route template as Powertools ("<key_id>") or API Gateway ("{key_id}") writes it.
_TEMPLATE = re.compile(r"^/[A-Za-z0-9._/<>{}+-]{0,200}$")
_PARAMETER = re.compile(r"[<{]([A-Za-z0-9_]+)\+?[>}]")


def publish(sink: AuditSink, events: Sequence[AuditEventIn]) -> None:
    """Publish, or log, count (metric ``AuditPublishFailed``) and raise AuditUnavailableError.

    Any other exception from the sink counts as unavailability too: the caller fails closed.
    """
    try:
        sink.publish(events)
    except Exception as exc:
        metrics.add_metric(name=AUDIT_PUBLISH_FAILED, unit="Count", value=1)
        logger.error("audit publish failed", extra={"error_type": type(exc).__name__, "events": len(events)})
        if isinstance(exc, AuditUnavailableError):
            raise
        raise AuditUnavailableError("the audit trail is unavailable") from exc


def new_event_id() -> UUID:
    return uuid4()


def key_actor(key_id: UUID | None) -> str:
    return ANONYMOUS if key_id is None else f"api_key:{key_id}"


def key_resource(key_id: UUID) -> str:
    return f"api_key:{key_id}"


def http_method(method: str | None) -> str:
    """The method if it looks like one, else ``OTHER`` (it becomes part of a resource name)."""
    method = (method or "").upper()
    return method if _METHOD.match(method) else "OTHER"


def route_template(template: str | None) -> str:
    """API Gateway style (``/v1/api-keys/{key_id}``); :data:`UNMATCHED_ROUTE` if not a template."""
    if not template or not _TEMPLATE.match(template):
        return UNMATCHED_ROUTE
    return _PARAMETER.sub(r"{\1}", template)


def route_resource(method: str, template: str) -> str:
    """``route:POST:/v1/api-keys/:key_id`` for ``POST /v1/api-keys/{key_id}``."""
    return f"route:{http_method(method)}:" + _PARAMETER.sub(r":\1", route_template(template))


def result_for_status(status: int) -> AuditResult:
    if status >= 500:
        return AuditResult.ERROR
    if status in (401, 403):
        return AuditResult.DENIED
    if status >= 400:
        return AuditResult.FAILURE
    return AuditResult.SUCCESS


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from, as API Gateway reports it (never taken from the request body)."""

    ip_address: IPv4Address | IPv6Address | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> RequestOrigin:
        """From an API Gateway proxy or REQUEST-authorizer event; anything malformed is left out."""
        context = event.get("requestContext") or {}
        identity = context.get("identity") or {}
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        source_ip = identity.get("sourceIp")
        request_id = context.get("requestId")
        user_agent = identity.get("userAgent") or headers.get("user-agent")
        return cls(
            ip_address=_parse_ip(source_ip),
            user_agent=user_agent if isinstance(user_agent, str) else None,  # clipped by the model
            request_id=request_id if isinstance(request_id, str) and _REQUEST_ID.match(request_id) else None,
        )


def _parse_ip(value: object) -> IPv4Address | IPv6Address | None:
    if not isinstance(value, str):
        return None
    try:
        return ip_address(value)
    except ValueError:
        return None


def _event(
    *,
    event_type: str,
    occurred_at: datetime,
    actor: str,
    org_id: UUID,
    resource: str,
    action: str,
    result: AuditResult,
    origin: RequestOrigin,
    details: dict[str, Any],
) -> AuditEventIn:
    return AuditEventIn(
        event_id=new_event_id(),
        occurred_at=occurred_at,
        event_type=event_type,
        actor=actor,
        org_id=org_id,
        resource=resource,
        action=action,
        result=result,
        ip_address=origin.ip_address,
        user_agent=origin.user_agent,
        request_id=origin.request_id,
        details=details,
    )


def api_request(
    *,
    principal: Principal | None,
    method: str,
    route: str | None,
    status: int,
    origin: RequestOrigin,
    occurred_at: datetime,
) -> AuditEventIn:
    """One API call: who, which route (the template, never the raw path), and how it ended."""
    template = route_template(route)
    return _event(
        event_type=API_REQUEST,
        occurred_at=occurred_at,
        actor=key_actor(principal.key_id if principal else None),
        org_id=principal.org_id if principal else SYSTEM_ORG_ID,
        resource=route_resource(method, template),
        action=http_method(method).lower(),
        result=result_for_status(status),
        origin=origin,
        details={"method": http_method(method), "route": template, "status": status},
    )


def auth_failure(
    *,
    reason: str,
    org_id: UUID | None,
    key_id: UUID | None,
    key_prefix: str | None,
    method: str,
    route: str | None,
    origin: RequestOrigin,
    occurred_at: datetime,
) -> AuditEventIn:
    """A refused credential. ``org_id``/``key_id`` only when the presented prefix named a stored key;
    ``key_prefix`` only once it parsed as one (the public part of a key, never the secret)."""
    details: dict[str, Any] = {"reason": reason}
    if key_prefix is not None:
        details["key_prefix"] = key_prefix
    if key_id is not None:
        details["key_id"] = str(key_id)
    return _event(
        event_type=AUTH_FAILURE,
        occurred_at=occurred_at,
        actor=ANONYMOUS,
        org_id=org_id or SYSTEM_ORG_ID,
        resource=route_resource(method, route_template(route)),
        action="authenticate",
        result=AuditResult.DENIED,
        origin=origin,
        details=details,
    )


def api_key_created(
    *,
    principal: Principal,
    key_id: UUID,
    roles: Iterable[Role],
    expires_at: datetime | None,
    origin: RequestOrigin,
    occurred_at: datetime,
) -> AuditEventIn:
    # The key's name is free text (it may name a person): only ids, roles and the expiry go in.
    return _event(
        event_type=API_KEY_CREATED,
        occurred_at=occurred_at,
        actor=key_actor(principal.key_id),
        org_id=principal.org_id,
        resource=key_resource(key_id),
        action="create",
        result=AuditResult.SUCCESS,
        origin=origin,
        details={
            "roles": sorted(Role(r).value for r in roles),
            "expires_at": None if expires_at is None else expires_at.isoformat(),
        },
    )


def api_key_revoked(
    *, principal: Principal, key_id: UUID, origin: RequestOrigin, occurred_at: datetime
) -> AuditEventIn:
    return _event(
        event_type=API_KEY_REVOKED,
        occurred_at=occurred_at,
        actor=key_actor(principal.key_id),
        org_id=principal.org_id,
        resource=key_resource(key_id),
        action="revoke",
        result=AuditResult.SUCCESS,
        origin=origin,
        details={},
    )


# At most this many key ids are listed in a key.shredded event (its details are bounded at 8 kB);
# ``count`` is always exact and the shred receipt has every id.
MAX_LISTED_KEY_IDS = 100


def key_scope_resource(org_id: UUID, subject_id: UUID | None) -> str:
    """``subject:<uuid>`` for a subject's data keys, ``org:<uuid>`` for the org-level key."""
    return f"org:{org_id}" if subject_id is None else f"subject:{subject_id}"


def key_created(
    *,
    actor: str,
    org_id: UUID,
    subject_id: UUID | None,
    key_id: UUID,
    kms_key_id: str,
    occurred_at: datetime,
    origin: RequestOrigin | None = None,
) -> AuditEventIn:
    """A new data key was stored for a scope: its id and wrapping KMS key, never key material."""
    return _event(
        event_type=KEY_CREATED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, subject_id),
        action="create",
        result=AuditResult.SUCCESS,
        origin=origin or RequestOrigin(),
        details={"key_id": str(key_id), "kms_key_id": kms_key_id},
    )


def key_shredded(
    *,
    actor: str,
    org_id: UUID,
    subject_id: UUID | None,
    key_ids: Sequence[UUID],
    occurred_at: datetime,
    origin: RequestOrigin | None = None,
) -> AuditEventIn:
    """A scope's data keys were destroyed (crypto-shredding); ``count`` 0 records a repeated shred."""
    listed = [str(k) for k in key_ids[:MAX_LISTED_KEY_IDS]]
    details: dict[str, Any] = {"key_ids": listed, "count": len(key_ids)}
    if len(key_ids) > len(listed):
        details["key_ids_truncated"] = True
    return _event(
        event_type=KEY_SHREDDED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, subject_id),
        action="shred",
        result=AuditResult.SUCCESS,
        origin=origin or RequestOrigin(),
        details=details,
    )


# --- Usage ingest and organisation settings (issue 4) ----------------------------------------------

USAGE_RECORDS_REJECTED = "usage.records_rejected"
ORG_SETTINGS_CHANGED = "org.settings_changed"
INGEST_ACTOR = "system:ingest"
# At most this many request ids are listed in one usage.records_rejected event (details <= 8 kB).
MAX_LISTED_REQUEST_IDS = 100


def usage_records_rejected(
    *,
    event_id: UUID,
    org_id: UUID,
    batch_id: UUID,
    request_ids: Sequence[str],
    finding_counts: Mapping[str, int],
    occurred_at: datetime,
) -> AuditEventIn:
    """The ingest processor refused records whose text holds personal data (org PII mode
    "reject"): their request ids and the finding counts by type, never a found value.
    ``event_id`` is derived from the queued message, so a redelivery records it once."""
    listed = list(request_ids[:MAX_LISTED_REQUEST_IDS])
    details: dict[str, Any] = {
        "request_ids": listed,
        "count": len(request_ids),
        # A list, not an object keyed by type: detail keys are a fixed vocabulary (no "email").
        "findings": [{"type": t, "count": n} for t, n in sorted(finding_counts.items())],
        "reason": "personal data in text (pii mode reject)",
    }
    if len(request_ids) > len(listed):
        details["request_ids_truncated"] = True
    event = _event(
        event_type=USAGE_RECORDS_REJECTED,
        occurred_at=occurred_at,
        actor=INGEST_ACTOR,
        org_id=org_id,
        resource=f"usage_batch:{batch_id}",
        action="reject",
        result=AuditResult.DENIED,
        origin=RequestOrigin(),
        details=details,
    )
    return event.model_copy(update={"event_id": event_id})


def org_settings_changed(
    *,
    principal: Principal,
    setting: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    occurred_at: datetime,
    origin: RequestOrigin,
) -> AuditEventIn:
    """A configuration change: which setting, its value before and after (settings hold no
    personal data: modes and region codes)."""
    return _event(
        event_type=ORG_SETTINGS_CHANGED,
        occurred_at=occurred_at,
        actor=key_actor(principal.key_id),
        org_id=principal.org_id,
        resource=f"settings:{setting}",
        action="update",
        result=AuditResult.SUCCESS,
        origin=origin,
        details={"setting": setting, "before": dict(before), "after": dict(after)},
    )


# --- Key rotation (compliance.crypto.rotation, compliance.crypto.ledger) ---------------------------

KEY_REWRAPPED = "key.rewrapped"
KEY_REKEY_STARTED = "key.rekey_started"
KEY_REKEY_COMPLETED = "key.rekey_completed"


def _listed_key_ids(key_ids: Sequence[UUID]) -> dict[str, Any]:
    listed = [str(k) for k in key_ids[:MAX_LISTED_KEY_IDS]]
    details: dict[str, Any] = {"key_ids": listed, "count": len(key_ids)}
    if len(key_ids) > len(listed):
        details["key_ids_truncated"] = True
    return details


def key_rewrapped(
    *, actor: str, org_id: UUID, key_ids: Sequence[UUID], kms_key_id: str, occurred_at: datetime
) -> AuditEventIn:
    """A batch of an org's data keys was re-wrapped (KMS ReEncrypt) under ``kms_key_id``'s newest
    material: same data keys, new wrapped form. Ids and count only."""
    return _event(
        event_type=KEY_REWRAPPED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, None),
        action="rewrap",
        result=AuditResult.SUCCESS,
        origin=RequestOrigin(),
        details={**_listed_key_ids(key_ids), "kms_key_id": kms_key_id},
    )


def key_rekey_started(
    *, actor: str, org_id: UUID, run_id: UUID, keys_retired: int, occurred_at: datetime
) -> AuditEventIn:
    """A re-key run began: the org's current data keys were retired (new values take new keys)."""
    return _event(
        event_type=KEY_REKEY_STARTED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, None),
        action="rekey",
        result=AuditResult.SUCCESS,
        origin=RequestOrigin(),
        details={"run_id": str(run_id), "keys_retired": keys_retired},
    )


def key_rekey_completed(
    *,
    actor: str,
    org_id: UUID,
    run_id: UUID,
    rows: int,
    values_rekeyed: int,
    values_skipped: int,
    occurred_at: datetime,
) -> AuditEventIn:
    """A re-key run finished: every encrypted value of the org it could read is under a new key."""
    return _event(
        event_type=KEY_REKEY_COMPLETED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, None),
        action="rekey",
        result=AuditResult.SUCCESS,
        origin=RequestOrigin(),
        details={
            "run_id": str(run_id),
            "rows": rows,
            "values_rekeyed": values_rekeyed,
            "values_skipped": values_skipped,
        },
    )


def key_shred_reapplied(
    *, actor: str, org_id: UUID, subject_id: UUID, key_ids: Sequence[UUID], occurred_at: datetime
) -> AuditEventIn:
    """A shred recorded in the shred ledger was applied again to a database restored from a backup
    taken before it (``key.shredded`` with ``reapplied: true``)."""
    return _event(
        event_type=KEY_SHREDDED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, subject_id),
        action="shred",
        result=AuditResult.SUCCESS,
        origin=RequestOrigin(),
        details={**_listed_key_ids(key_ids), "reapplied": True},
    )


# --- PII sweep (issue 4) --------------------------------------------------------------------------

PII_SWEEP_COMPLETED = "pii.sweep_completed"
PII_SWEEP_ACTOR = "system:pii-sweep"
# At most this many (table, column, type) rows are listed in one event (details <= 8 kB); the
# totals are always exact.
MAX_LISTED_SWEEP_FINDINGS = 40


def pii_sweep_completed(
    *,
    event_id: UUID,
    org_id: UUID,
    run_id: UUID,
    result: AuditResult,
    columns_scanned: int,
    rows_sampled: int,
    bytes_sampled: int,
    findings: Sequence[Mapping[str, Any]],
    occurred_at: datetime,
    extra: Mapping[str, Any] | None = None,
) -> AuditEventIn:
    """One organisation's sweep of the columns catalogued as holding no personal data: what was
    sampled and the findings per (table, column, type) as counts, never a value or a row.
    ``event_id`` is derived from the run, so a repeated delivery of one run is recorded once."""
    listed = [dict(f) for f in findings[:MAX_LISTED_SWEEP_FINDINGS]]
    details: dict[str, Any] = {
        "run_id": str(run_id),
        "columns_scanned": columns_scanned,
        "rows_sampled": rows_sampled,
        "bytes_sampled": bytes_sampled,
        "findings_total": sum(int(f["count"]) for f in findings),
        "findings": listed,
        **(extra or {}),
    }
    if len(findings) > len(listed):
        details["findings_truncated"] = True
    event = _event(
        event_type=PII_SWEEP_COMPLETED,
        occurred_at=occurred_at,
        actor=PII_SWEEP_ACTOR,
        org_id=org_id,
        resource=f"org:{org_id}",
        action="scan",
        result=result,
        origin=RequestOrigin(),
        details=details,
    )
    return event.model_copy(update={"event_id": event_id})


# --- Data subject erasure (issue 5) ---------------------------------------------------------------

SUBJECT_ERASED = "subject.erased"


def subject_erased(
    *,
    actor: str,
    org_id: UUID,
    subject_id: UUID,
    request_id: UUID,
    tables: Sequence[Mapping[str, Any]],
    rows_total: int,
    key_ids: Sequence[UUID],
    retained: Sequence[Mapping[str, Any]],
    occurred_at: datetime,
    origin: RequestOrigin | None = None,
) -> AuditEventIn:
    """A data subject was erased (GDPR Art. 17): the receipt. ``tables``: per linked table its
    action, row count and columns per catalog strategy (names only); ``retained``: tables kept
    under a legal basis; the data keys destroyed. Ids, counts, names and bases, never a value."""
    return _event(
        event_type=SUBJECT_ERASED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, subject_id),
        action="erase",
        result=AuditResult.SUCCESS,
        origin=origin or RequestOrigin(),
        details={
            "request_id": str(request_id),
            "tables": [dict(t) for t in tables],
            "rows_total": rows_total,
            "keys_shredded": _listed_key_ids(key_ids),
            "retained": [dict(r) for r in retained],
        },
    )


# --- Consent (issue 5) -------------------------------------------------------------------------------

CONSENT_GRANTED = "consent.granted"
CONSENT_REVOKED = "consent.revoked"


def consent_changed(
    *,
    event_type: str,
    principal: Principal,
    consent_id: UUID,
    subject_id: UUID,
    purpose: str,
    legal_basis: str,
    notice_version: str,
    occurred_at: datetime,
    origin: RequestOrigin,
) -> AuditEventIn:
    """A consent record was granted or revoked: the record, the subject's pseudonymous id, purpose,
    basis and notice version (no personal value: the platform's own subject id is never copied)."""
    return _event(
        event_type=event_type,
        occurred_at=occurred_at,
        actor=key_actor(principal.key_id),
        org_id=principal.org_id,
        resource=f"consent:{consent_id}",
        action="grant" if event_type == CONSENT_GRANTED else "revoke",
        result=AuditResult.SUCCESS,
        origin=origin,
        details={
            "subject": f"subject:{subject_id}",
            "purpose": purpose,
            "legal_basis": legal_basis,
            "notice_version": notice_version,
        },
    )


# --- Data subject requests (issue 5) ----------------------------------------------------------------

DSR_RECEIVED = "dsr.received"
DSR_EXTENDED = "dsr.extended"
DSR_CANCELLED = "dsr.cancelled"
DSR_VERIFICATION_FAILED = "dsr.verification_failed"
DSR_VERIFIED = "dsr.verified"
DSR_STATUS_CHANGED = "dsr.status_changed"
DSR_STEP_RECORDED = "dsr.step_recorded"
#: The verify route has no API key: the code is the credential, held by the data subject.
DSR_SUBJECT_ACTOR = "dsr_subject"


def dsr_resource(request_id: UUID) -> str:
    return f"dsr:{request_id}"


def _dsr_subject(subject_id: UUID | None) -> str | None:
    return None if subject_id is None else f"subject:{subject_id}"


def dsr_received(
    *,
    principal: Principal,
    request_id: UUID,
    dsr_type: str,
    regulation: str,
    subject_id: UUID | None,
    deadline: datetime,
    occurred_at: datetime,
    origin: RequestOrigin,
) -> AuditEventIn:
    """A data subject request was received: its type, law, deadline and the subject's pseudonymous
    id when the org holds the subject (``None``: nothing held under the id given)."""
    return _event(
        event_type=DSR_RECEIVED,
        occurred_at=occurred_at,
        actor=key_actor(principal.key_id),
        org_id=principal.org_id,
        resource=dsr_resource(request_id),
        action="create",
        result=AuditResult.SUCCESS,
        origin=origin,
        details={
            "type": dsr_type,
            "regulation": regulation,
            "subject": _dsr_subject(subject_id),
            "deadline": deadline.isoformat(),
        },
    )


def dsr_extended(
    *,
    principal: Principal,
    request_id: UUID,
    previous_deadline: datetime,
    deadline: datetime,
    extension_days: int,
    occurred_at: datetime,
    origin: RequestOrigin,
) -> AuditEventIn:
    """The deadline was extended (once). The reason is free text for the subject: not copied here."""
    return _event(
        event_type=DSR_EXTENDED,
        occurred_at=occurred_at,
        actor=key_actor(principal.key_id),
        org_id=principal.org_id,
        resource=dsr_resource(request_id),
        action="extend",
        result=AuditResult.SUCCESS,
        origin=origin,
        details={
            "previous_deadline": previous_deadline.isoformat(),
            "deadline": deadline.isoformat(),
            "extension_days": extension_days,
        },
    )


def dsr_cancelled(
    *,
    principal: Principal,
    request_id: UUID,
    previous_status: str,
    execution_stopped: bool,
    occurred_at: datetime,
    origin: RequestOrigin,
) -> AuditEventIn:
    return _event(
        event_type=DSR_CANCELLED,
        occurred_at=occurred_at,
        actor=key_actor(principal.key_id),
        org_id=principal.org_id,
        resource=dsr_resource(request_id),
        action="cancel",
        result=AuditResult.SUCCESS,
        origin=origin,
        details={"previous_status": previous_status, "execution_stopped": execution_stopped},
    )


def dsr_verification_failed(
    *,
    org_id: UUID,
    request_id: UUID,
    outcome: str,
    attempts_left: int,
    occurred_at: datetime,
    origin: RequestOrigin,
) -> AuditEventIn:
    """A verification attempt that did not verify (wrong, locked, expired, already verified): the
    outcome and the attempts left, never the code."""
    return _event(
        event_type=DSR_VERIFICATION_FAILED,
        occurred_at=occurred_at,
        actor=DSR_SUBJECT_ACTOR,
        org_id=org_id,
        resource=dsr_resource(request_id),
        action="verify",
        result=AuditResult.DENIED,
        origin=origin,
        details={"outcome": outcome, "attempts_left": attempts_left},
    )


def dsr_verified(
    *,
    org_id: UUID,
    request_id: UUID,
    failed_attempts: int,
    occurred_at: datetime,
    origin: RequestOrigin,
) -> AuditEventIn:
    return _event(
        event_type=DSR_VERIFIED,
        occurred_at=occurred_at,
        actor=DSR_SUBJECT_ACTOR,
        org_id=org_id,
        resource=dsr_resource(request_id),
        action="verify",
        result=AuditResult.SUCCESS,
        origin=origin,
        details={"failed_attempts": failed_attempts},
    )


def dsr_status_changed(
    *,
    actor: str,
    org_id: UUID,
    request_id: UUID,
    subject_id: UUID | None = None,
    from_status: str,
    to_status: str,
    step: str | None = None,
    details: Mapping[str, Any] | None = None,
    occurred_at: datetime,
    origin: RequestOrigin | None = None,
) -> AuditEventIn:
    """The request moved from ``from_status`` to ``to_status`` (or stayed, when a step only ran).
    ``details``: fixed codes, flags and counts of the step (e.g. a cause), never input or values."""
    return _event(
        event_type=DSR_STATUS_CHANGED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=dsr_resource(request_id),
        action="update",
        result=AuditResult.SUCCESS,
        origin=origin or RequestOrigin(),
        details={
            "subject": _dsr_subject(subject_id),
            "from_status": from_status,
            "to_status": to_status,
            "step": step,
            "details": dict(details or {}),
        },
    )


def dsr_step_recorded(
    *,
    actor: str,
    org_id: UUID,
    request_id: UUID,
    step: str,
    status: str,
    occurred_at: datetime,
    detail: Mapping[str, Any] | None = None,
    origin: RequestOrigin | None = None,
) -> AuditEventIn:
    """One workflow step of the request ran (or failed, or was skipped); ``detail``: fixed codes,
    flags and counts."""
    return _event(
        event_type=DSR_STEP_RECORDED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=dsr_resource(request_id),
        action="step",
        result=AuditResult.FAILURE if status == "failed" else AuditResult.SUCCESS,
        origin=origin or RequestOrigin(),
        details={"step": step, "status": status, "detail": dict(detail or {})},
    )


# --- Rectification and restriction of a subject (issue 5) ---------------------------------------------

SUBJECT_RECTIFIED = "subject.rectified"
SUBJECT_RESTRICTED = "subject.restricted"
SUBJECT_RESTRICTION_LIFTED = "subject.restriction_lifted"


def subject_rectified(
    *,
    actor: str,
    org_id: UUID,
    subject_id: UUID,
    request_id: UUID,
    changes: Mapping[str, Mapping[str, str | None]],
    occurred_at: datetime,
    origin: RequestOrigin | None = None,
) -> AuditEventIn:
    """Fields of a subject were corrected (GDPR Art. 16). ``changes``: per field its ``before`` and
    ``after`` as field ciphertext under the subject's own key (never plaintext): the trail proves what
    changed, and the subject's erasure makes both values unreadable with everything else of theirs."""
    for change in changes.values():
        for value in change.values():
            if value is not None and not value.startswith("enc:"):
                raise ValueError("rectified values must be field ciphertext")
    return _event(
        event_type=SUBJECT_RECTIFIED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, subject_id),
        action="rectify",
        result=AuditResult.SUCCESS,
        origin=origin or RequestOrigin(),
        # A list of {"field": ...}: field names are values here, never keys (keys like "email" are refused).
        details={
            "request_id": str(request_id),
            "changes": [{"field": name, **dict(change)} for name, change in sorted(changes.items())],
        },
    )


def subject_restriction_changed(
    *,
    actor: str,
    org_id: UUID,
    subject_id: UUID,
    request_id: UUID,
    restricted: bool,
    occurred_at: datetime,
    origin: RequestOrigin | None = None,
) -> AuditEventIn:
    """Processing of a subject was restricted (GDPR Art. 18) by ``request_id``, or that restriction lifted."""
    return _event(
        event_type=SUBJECT_RESTRICTED if restricted else SUBJECT_RESTRICTION_LIFTED,
        occurred_at=occurred_at,
        actor=actor,
        org_id=org_id,
        resource=key_scope_resource(org_id, subject_id),
        action="restrict" if restricted else "lift_restriction",
        result=AuditResult.SUCCESS,
        origin=origin or RequestOrigin(),
        details={"request_id": str(request_id)},
    )
