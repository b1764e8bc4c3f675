"""The steps of the data subject request state machine (infra/constructs/dsr.py), one function each.

Every step runs in one tenant transaction on the request row (locked ``FOR UPDATE``), mirrors the
execution into the row (status and the step with its time) and writes an audit event before the
commit. Steps are safe to retry (Step Functions retries them): a step whose work is recorded as
done answers as before without doing it again.

What goes back into the execution (and so into the Step Functions console and its history) is ids,
types and flags only: never an address, a code, a link or a value of the subject.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from compliance.audit import emit
from compliance.crypto.context import EncryptionContext
from compliance.db import dsr_requests as repo
from compliance.db import usage as usage_repo
from compliance.dsr import messages
from compliance.dsr import verification as codes
from compliance.dsr.status import TERMINAL_STATUSES, transition
from compliance.dsr.subject_keys import subject_key
from compliance.errors import ConflictError, DomainError, NotFoundError
from compliance.models.dsr import EXPORTING_TYPES, DsrStatus, DsrType, StepStatus
from compliance.observability import metrics

if TYPE_CHECKING:
    import psycopg

    from compliance.audit.sink import AuditSink
    from compliance.aws.email import EmailSender
    from compliance.aws.exports import ExportStore
    from compliance.crypto.fields import FieldEncryptor
    from compliance.crypto.ledger import ShredLedger
    from compliance.crypto.session import FieldCrypto
    from compliance.db.connection import Database

ACTOR = "system:dsr-workflow"
# The longest a presigned export link may live (SigV4's limit).
MAX_LINK_TTL_S = 7 * 24 * 3600


class NoContactAddressError(DomainError):
    """The subject has no stored e-mail address to send the code or the answer to."""

    status = 422
    title = "No contact address"


@dataclass(frozen=True)
class StepContext:
    """What every step needs besides its own collaborators."""

    db: Database
    sink: AuditSink
    now: datetime


class StepInput(BaseModel):
    """A task's input as the state machine builds it (ids, the task token, a caught error)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: UUID
    org_id: UUID
    action: Literal["record", "close_no_data", "expire", "fail", "rectify", "restrict"] | None = None
    task_token: str | None = Field(default=None, min_length=1, max_length=4096, repr=False)
    error: dict[str, Any] | None = None

    def required_token(self) -> str:
        if self.task_token is None:
            raise ValueError("this step needs the task token (waitForTaskToken)")
        return self.task_token


def run_status_step(ctx: StepContext, step: StepInput) -> dict[str, Any]:
    """The steps that only move the request's status (one function serves them)."""
    match step.action:
        case "record":
            return record(ctx, step.org_id, step.request_id)
        case "close_no_data":
            return close_no_data(ctx, step.org_id, step.request_id)
        case "expire":
            return expire(ctx, step.org_id, step.request_id)
        case "fail":
            return fail(ctx, step.org_id, step.request_id, step.error)
        case _:
            raise ValueError("unknown status step")


def _load(conn: psycopg.Connection[Any], org_id: UUID, request_id: UUID) -> dict[str, Any]:
    row = repo.get_request(conn, org_id, request_id, for_update=True)
    if row is None:
        raise NotFoundError("no such data subject request", request_id=str(request_id))
    return row


def _move(
    conn: psycopg.Connection[Any],
    ctx: StepContext,
    row: dict[str, Any],
    target: DsrStatus,
    step: str,
    *,
    detail: Mapping[str, Any] | None = None,
    fields: Mapping[str, Any] | None = None,
) -> None:
    """Record ``step`` (succeeded), move the status (when it changes) and audit it, in ``conn``."""
    current = DsrStatus(row["status"])
    if target is not current:
        transition(current, target)
    changes = dict(fields or {})
    if target is not current:
        changes["status"] = target.value
    if changes:
        repo.update_request(conn, row["org_id"], row["id"], **changes)
    repo.append_step(conn, row["org_id"], row["id"], step, StepStatus.SUCCEEDED, ctx.now, dict(detail or {}))
    event = emit.dsr_status_changed(
        actor=ACTOR,
        org_id=row["org_id"],
        request_id=row["id"],
        subject_id=row["subject_id"],
        from_status=current.value,
        to_status=target.value,
        step=step,
        details=dict(detail or {}),
        occurred_at=ctx.now,
    )
    emit.publish(ctx.sink, [event])


def _output(row: Mapping[str, Any], **flags: Any) -> dict[str, Any]:
    return {"request_id": str(row["id"]), "org_id": str(row["org_id"]), "type": row["type"], **flags}


def _done(row: Mapping[str, Any], step: str) -> bool:
    return any(s.get("name") == step and s.get("status") == StepStatus.SUCCEEDED for s in row["steps"] or ())


def _address(
    conn: psycopg.Connection[Any], encryptor: FieldEncryptor, org_id: UUID, subject_id: UUID | None
) -> str:
    """The subject's e-mail address, decrypted (held in memory for the step only)."""
    stored = (
        None if subject_id is None else usage_repo.stored_emails(conn, org_id, [subject_id]).get(subject_id)
    )
    if stored is None:
        raise NoContactAddressError("the subject has no e-mail address to answer to")
    if not stored.startswith("enc:"):
        return stored
    return encryptor.decrypt(stored, EncryptionContext(org_id, "subjects", "email", subject_id))


def _stored_address(
    conn: psycopg.Connection[Any], encryptor: FieldEncryptor, org_id: UUID, subject_id: UUID
) -> str | None:
    try:
        return _address(conn, encryptor, org_id, subject_id)
    except NoContactAddressError:
        return None


# --- 1. record ---------------------------------------------------------------------------------------


def record(ctx: StepContext, org_id: UUID, request_id: UUID) -> dict[str, Any]:
    """Check the request and decide the path: a subject the org holds nothing of needs no
    verification (nothing would be disclosed or changed): the request is answered "no data held"."""
    with ctx.db.tenant(org_id) as conn:
        row = _load(conn, org_id, request_id)
        status = DsrStatus(row["status"])
        if status in TERMINAL_STATUSES:
            raise ConflictError(f"the request is {status.value}", request_id=str(request_id))
        no_data = row["subject_id"] is None
        if not _done(row, "record"):
            _move(conn, ctx, row, status, "record", detail={"no_data_held": no_data})
    return _output(row, verify=not no_data, no_data_held=no_data)


def close_no_data(ctx: StepContext, org_id: UUID, request_id: UUID) -> dict[str, Any]:
    with ctx.db.tenant(org_id) as conn:
        row = _load(conn, org_id, request_id)
        if DsrStatus(row["status"]) is not DsrStatus.COMPLETED:
            _move(
                conn,
                ctx,
                row,
                DsrStatus.COMPLETED,
                "close",
                detail={"outcome": "no_data_held"},
                fields={"outcome": "no_data_held", "completed_at": ctx.now},
            )
    return _output(row, outcome="no_data_held")


# --- 2. verification ---------------------------------------------------------------------------------


def send_verification(
    ctx: StepContext,
    crypto: FieldCrypto,
    sender: EmailSender,
    org_id: UUID,
    request_id: UUID,
    task_token: str,
    *,
    key: bytes,
    policy: codes.VerificationPolicy,
) -> None:
    """Issue a code, store its hash and the task token, then e-mail the code. A retry issues a new
    code (the last one e-mailed is the one stored). The execution waits until the verify route
    answers the token, or the verification expires."""
    with crypto.tenant(ctx.db, org_id) as (conn, encryptor):
        row = _load(conn, org_id, request_id)
        address = _address(conn, encryptor, org_id, row["subject_id"])
        issued = codes.issue(request_id, key, ctx.now, policy)
        state = issued.state
        _move(
            conn,
            ctx,
            row,
            DsrStatus.AWAITING_VERIFICATION,
            "send_verification",
            detail={"expires_at": state.expires_at.isoformat()},
            fields={
                "code_hash": state.code_hash,
                "code_issued_at": state.issued_at,
                "code_expires_at": state.expires_at,
                "failed_attempts": 0,
                "max_attempts": state.max_attempts,
                "task_token": task_token,
            },
        )
    subject, body = messages.verification(request_id, codes.display(issued.code), state.expires_at)
    sender.send(address, subject, body)


def expire(ctx: StepContext, org_id: UUID, request_id: UUID) -> dict[str, Any]:
    """The code was not confirmed in time: the request closes as unverified."""
    with ctx.db.tenant(org_id) as conn:
        row = _load(conn, org_id, request_id)
        if DsrStatus(row["status"]) is not DsrStatus.EXPIRED:
            _move(
                conn,
                ctx,
                row,
                DsrStatus.EXPIRED,
                "expire",
                fields={"task_token": None, "completed_at": ctx.now, "outcome": "unverified"},
            )
    return _output(row, outcome="unverified")


# --- 3. the answer -----------------------------------------------------------------------------------


def run_export(
    ctx: StepContext, crypto: FieldCrypto, store: ExportStore, org_id: UUID, request_id: UUID
) -> dict[str, Any]:
    """Access and portability: every catalogued personal field of the subject, its audit events and
    consent history, in each requested format, uploaded KMS-encrypted. The link is made when the
    subject is told (notify), never stored."""
    from compliance.dsr.export import export_subject

    with ctx.db.tenant(org_id) as conn:
        row = _load(conn, org_id, request_id)
        if DsrType(row["type"]) not in EXPORTING_TYPES:
            raise ConflictError("only access and portability requests are exported")
        if _done(row, "export"):
            return _output(row, objects=len(row["export_objects"] or ()))
        _move(conn, ctx, row, DsrStatus.RUNNING, "start")
    outcome = export_subject(
        ctx.db,
        crypto,
        store,
        org_id,
        row["subject_id"],
        request_id=request_id,
        regulation=row["regulation"],
        formats=list(row["export_formats"] or ["json"]),
        now=ctx.now,
    )
    objects = outcome.objects
    with ctx.db.tenant(org_id) as conn:
        row = _load(conn, org_id, request_id)
        large = any(o.get("large") for o in objects)
        _move(
            conn,
            ctx,
            row,
            DsrStatus.RUNNING,
            "export",
            detail={
                "rows": outcome.rows,
                "objects": len(objects),
                "bytes": sum(o["bytes"] for o in objects),
                "large": large,
                "no_data_held": outcome.no_data_held,
            },
            fields={"export_objects": [dict(o) for o in objects]},
        )
    return _output(row, objects=len(objects), large=large)


def run_erasure(
    ctx: StepContext,
    crypto: FieldCrypto,
    ledger: ShredLedger,
    store: ExportStore,
    sender: EmailSender,
    org_id: UUID,
    request_id: UUID,
) -> dict[str, Any]:
    """Erasure: earlier exports of the subject deleted, then the catalog's plan and the key shred in
    one transaction (compliance.dsr.erase) that also stores the receipt on the request, verified
    afterwards. The subject is told here, with the address read before it is erased (in memory only).

    Resumable: the subject's pseudonymous id is recorded when the step starts (the erasure clears the
    request's link to it), and a retry after the erasure committed verifies again and completes the
    receipt; the subject can then no longer be told (their address is gone), which the receipt says."""
    from compliance.aws.exports import subject_prefix
    from compliance.catalog.model import Catalog
    from compliance.db.catalog import list_entries
    from compliance.dsr.erase import ErasureIncompleteError, erase_subject, verify_erased
    from compliance.dsr.export import delete_subject_exports

    with crypto.tenant(ctx.db, org_id) as (conn, encryptor):
        row = _load(conn, org_id, request_id)
        if DsrType(row["type"]) is not DsrType.ERASURE:
            raise ConflictError("only erasure requests erase")
        if (row["receipt"] or {}).get("verification", {}).get("verified") is True:
            return _output(row, erased=True)
        subject_id = row["subject_id"] or _started_subject(row)
        if subject_id is None:
            raise ConflictError("the request names no subject to erase")
        address = _stored_address(conn, encryptor, org_id, subject_id)
        # The erasure plan reads the entries only; retention is the policy engine's.
        catalog = Catalog(entries=tuple(list_entries(conn)), retention_policies={})
        if not _done(row, "start"):
            _move(conn, ctx, row, DsrStatus.RUNNING, "start", detail={"subject": str(subject_id)})
    exports_deleted = delete_subject_exports(store, org_id, str(subject_id))

    def record_receipt(tx: psycopg.Connection[Any], receipt: dict[str, Any]) -> None:
        locked = _load(tx, org_id, request_id)
        detail = {"rows_total": receipt.get("rows_total"), "exports_deleted": exports_deleted}
        _move(tx, ctx, locked, DsrStatus.RUNNING, "erase", detail=detail, fields={"receipt": _json(receipt)})

    if row["receipt"] is None:
        receipt = erase_subject(
            ctx.db,
            ctx.sink,
            ledger,
            org_id,
            subject_id,
            catalog=catalog,
            crypto=crypto,
            actor=ACTOR,
            now=ctx.now,
            request_id=request_id,
            within=record_receipt,
        )
    else:  # erased and recorded by an earlier attempt that stopped before the check
        verification = verify_erased(ctx.db, crypto, org_id, subject_id, catalog)
        if not verification["verified"]:
            raise ErasureIncompleteError(
                f"the erasure of request {request_id} left data of the subject readable"
            )
        receipt = {**row["receipt"], "verification": verification}
    # No export of the subject may be left either (every version was deleted by key and version id).
    remaining = len(store.keys(subject_prefix(org_id, str(subject_id))))
    receipt["verification"] = {**receipt["verification"], "exports_remaining": remaining}
    if remaining:
        receipt["verification"]["verified"] = False
        with ctx.db.tenant(org_id) as conn:
            repo.update_request(conn, org_id, request_id, receipt=_json(receipt))
        raise ErasureIncompleteError(f"the erasure of request {request_id} left {remaining} export object(s)")
    receipt = {**receipt, "exports_deleted": exports_deleted, "subject_notified": address is not None}
    if address is not None:
        subject, body = messages.erased(request_id, receipt)
        sender.send(address, subject, body)
    with ctx.db.tenant(org_id) as conn:
        repo.update_request(conn, org_id, request_id, receipt=_json(receipt))
    return _output(row, erased=True)


def _started_subject(row: Mapping[str, Any]) -> UUID | None:
    for step in row["steps"] or ():
        subject = (step.get("detail") or {}).get("subject")
        if step.get("name") == "start" and subject:
            return UUID(str(subject))
    return None


def _json(value: Mapping[str, Any]) -> Any:
    """A receipt as JSON-able data (uuids and times as strings)."""
    return json.loads(json.dumps(value, default=str))


def _begin_change(
    conn: psycopg.Connection[Any], ctx: StepContext, org_id: UUID, request_id: UUID, kind: DsrType, step: str
) -> tuple[dict[str, Any], UUID] | None:
    """Lock a verified ``kind`` request, mark it running and return it with its subject; None when
    ``step`` is already recorded (a retry: nothing to do again)."""
    row = _load(conn, org_id, request_id)
    if DsrType(row["type"]) is not kind:
        raise ConflictError(f"only {kind.value} requests {step}")
    if _done(row, step):
        return None
    subject = row["subject_id"]
    if subject is None:
        raise ConflictError("the request has no subject")
    _move(conn, ctx, row, DsrStatus.RUNNING, "start")
    row["status"] = DsrStatus.RUNNING.value
    return row, subject


def run_rectification(
    ctx: StepContext,
    crypto: FieldCrypto,
    org_id: UUID,
    request_id: UUID,
    *,
    email_key_secret: bytes | None = None,
) -> dict[str, Any]:
    """Rectification (Art. 16): the corrected fields applied to the subject, sealed as the catalog says,
    with the before and after values in the audit trail as ciphertext under the subject's own key."""
    from compliance.db import subjects as subject_repo
    from compliance.models.dsr import DsrCorrections

    with crypto.tenant(ctx.db, org_id, sink=ctx.sink, actor=ACTOR) as (conn, encryptor):
        begun = _begin_change(conn, ctx, org_id, request_id, DsrType.RECTIFICATION, "rectify")
        if begun is None:
            return _output(_load(conn, org_id, request_id), rectified=True)
        row, subject = begun
        if row["corrections"] is None:
            raise ConflictError("the request has no corrections")
        context = EncryptionContext(org_id, "dsr_requests", "corrections", subject)
        corrections = DsrCorrections.model_validate_json(encryptor.decrypt(row["corrections"], context))
        changes: dict[str, dict[str, str | None]] = {}
        trail = EncryptionContext(org_id, "audit_events", "details", subject)
        if corrections.email is not None:
            before = _stored_address(conn, encryptor, org_id, subject)
            after = str(corrections.email)
            # The look-up key follows the address (compliance.dsr.subject_keys), or goes with the old one.
            key = None if email_key_secret is None else subject_key(email_key_secret, org_id, email=after)
            sealed_after = encryptor.encrypt(after, EncryptionContext(org_id, "subjects", "email", subject))
            subject_repo.set_email(conn, org_id, subject, sealed_after, key)
            changes["email"] = {
                "before": None if before is None else encryptor.encrypt(before, trail),
                "after": encryptor.encrypt(after, trail),
            }
        event = emit.subject_rectified(
            actor=ACTOR,
            org_id=org_id,
            subject_id=subject,
            request_id=request_id,
            changes=changes,
            occurred_at=ctx.now,
        )
        emit.publish(ctx.sink, [event])
        _move(conn, ctx, row, DsrStatus.RUNNING, "rectify", detail={"fields": sorted(changes)})
    return _output(row, rectified=True)


def run_restriction(ctx: StepContext, org_id: UUID, request_id: UUID) -> dict[str, Any]:
    """Restriction (Art. 18): from the commit on, the processor keeps only billing figures for the
    subject, until a DPO lifts it (``POST /v1/dsr/{id}/lift``)."""
    from compliance.db import subjects as subject_repo

    with ctx.db.tenant(org_id) as conn:
        begun = _begin_change(conn, ctx, org_id, request_id, DsrType.RESTRICTION, "restrict")
        if begun is None:
            return _output(_load(conn, org_id, request_id), restricted=True)
        row, subject = begun
        newly = subject_repo.restrict(conn, org_id, subject, request_id, ctx.now)
        if newly:
            event = emit.subject_restriction_changed(
                actor=ACTOR,
                org_id=org_id,
                subject_id=subject,
                request_id=request_id,
                restricted=True,
                occurred_at=ctx.now,
            )
            emit.publish(ctx.sink, [event])
        _move(conn, ctx, row, DsrStatus.RUNNING, "restrict", detail={"already_restricted": not newly})
    return _output(row, restricted=True)


def run_change_step(
    ctx: StepContext, crypto: FieldCrypto, step: StepInput, *, email_key_secret: bytes | None = None
) -> dict[str, Any]:
    """The steps that change the subject's data in place (one function serves them)."""
    match step.action:
        case "rectify":
            return run_rectification(
                ctx, crypto, step.org_id, step.request_id, email_key_secret=email_key_secret
            )
        case "restrict":
            return run_restriction(ctx, step.org_id, step.request_id)
        case _:
            raise ValueError("unknown change step")


# --- 4. notify and close -----------------------------------------------------------------------------


def notify_and_close(
    ctx: StepContext,
    crypto: FieldCrypto,
    sender: EmailSender,
    store: ExportStore,
    org_id: UUID,
    request_id: UUID,
    *,
    link_ttl_s: int,
) -> dict[str, Any]:
    """Tell the subject (export links, made now and only e-mailed) and close the request."""
    ttl = max(1, min(link_ttl_s, MAX_LINK_TTL_S))
    with crypto.tenant(ctx.db, org_id) as (conn, encryptor):
        row = _load(conn, org_id, request_id)
        if DsrStatus(row["status"]) is DsrStatus.COMPLETED:
            return _output(row, outcome=row["outcome"])
        kind = DsrType(row["type"])
        expires_at = None
        if kind in EXPORTING_TYPES:
            objects = row["export_objects"] or []
            links = {o["format"]: store.presign(o["key"], ttl) for o in objects}
            expires_at = ctx.now + timedelta(seconds=ttl)
            subject, body = messages.export_ready(request_id, links, expires_at)
            sender.send(_address(conn, encryptor, org_id, row["subject_id"]), subject, body)
        elif kind is DsrType.RECTIFICATION:
            # The corrected address, read back: the confirmation goes where the subject now is.
            subject, body = messages.rectified(request_id)
            sender.send(_address(conn, encryptor, org_id, row["subject_id"]), subject, body)
        elif kind is DsrType.RESTRICTION:
            subject, body = messages.restricted(request_id)
            sender.send(_address(conn, encryptor, org_id, row["subject_id"]), subject, body)
        _move(
            conn,
            ctx,
            row,
            DsrStatus.COMPLETED,
            "close",
            detail={"outcome": "answered"},
            fields={"outcome": "answered", "completed_at": ctx.now, "export_expires_at": expires_at},
        )
    return _output(row, outcome="answered")


def fail(ctx: StepContext, org_id: UUID, request_id: UUID, error: Mapping[str, Any] | None) -> dict[str, Any]:
    """The failure path: the request row says failed, with the error name and a bounded cause."""
    name = str((error or {}).get("Error") or "Unknown")[:128]
    cause = _cause(str((error or {}).get("Cause") or ""))
    with ctx.db.tenant(org_id) as conn:
        row = _load(conn, org_id, request_id)
        if DsrStatus(row["status"]) not in TERMINAL_STATUSES:
            _move(
                conn,
                ctx,
                row,
                DsrStatus.FAILED,
                "fail",
                detail={"error": name},
                fields={"failure": {"error": name, "cause": cause}, "task_token": None},
            )
            metrics.add_metric(name="DsrFailed", unit="Count", value=1)
    return _output(row, error=name)


def _cause(raw: str) -> str:
    """A Lambda error's message (not its stack trace), bounded: the causes are our own exceptions'."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw[:500]
    if isinstance(parsed, dict):
        return str(parsed.get("errorMessage") or parsed.get("errorType") or "")[:500]
    return raw[:500]
