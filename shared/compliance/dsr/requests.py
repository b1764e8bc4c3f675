"""Data subject requests within the caller's organisation: create, read, list, extend, cancel, and
the subject's verification (the code is the credential, no principal).

Every change publishes its audit event inside the transaction that makes it (no change without
its event). The workflow is started, stopped and resumed by the request id; the calls that must
not run for a change that did not commit (start, resume) come after the commit.

Responses carry no personal data: the subject is never echoed, only the request's own facts.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID, uuid4

from compliance.audit import emit
from compliance.audit.emit import RequestOrigin
from compliance.audit.sink import AuditSink
from compliance.db.dsr_requests import OpenRequestExistsError
from compliance.dsr import deadlines, verification
from compliance.dsr import status as dsr_status
from compliance.dsr.deadlines import DeadlineConfig, Period
from compliance.dsr.subject_keys import MIN_SECRET_BYTES, subject_key
from compliance.errors import (
    ConfigurationError,
    ConflictError,
    DomainError,
    NotFoundError,
    ValidationFailedError,
)
from compliance.models.auth import Principal
from compliance.models.dsr import (
    MAX_STEPS,
    DsrAccepted,
    DsrCreate,
    DsrExportOut,
    DsrExtend,
    DsrList,
    DsrListQuery,
    DsrOut,
    DsrStatus,
    DsrStep,
    DsrType,
    DsrVerified,
    ExportFormat,
    Regulation,
    StepStatus,
)
from compliance.observability import logger

if TYPE_CHECKING:
    from compliance.aws.workflow import DsrWorkflow
    from compliance.crypto.session import FieldCrypto
    from compliance.db.connection import Database

__all__ = [
    "CORRECTIONS_COLUMN",
    "TABLE",
    "WORKFLOW_NOT_STARTED",
    "EmailLookupUnavailableError",
    "LinkFor",
    "OpenRequestExistsError",
    "RequestNotFoundError",
    "cancel_request",
    "create_request",
    "decode_cursor",
    "encode_cursor",
    "extend_request",
    "get_request",
    "list_requests",
    "read_dsr_secret",
    "verify_request",
]

TABLE: Final = "dsr_requests"
CORRECTIONS_COLUMN: Final = "corrections"
WORKFLOW_NOT_STARTED: Final = "workflow could not start"
CANCEL_CAUSE: Final = "cancelled through the DSR API"
#: (object key, seconds) -> presigned URL of an export object.
LinkFor = Callable[[str, int], str]
DEFAULT_LINK_S: Final = 3600


class RequestNotFoundError(NotFoundError):
    """The organisation has no request with this id (another org's ids look the same)."""


def _subject_by_email(conn: Any, org_id: UUID, email_key: bytes) -> UUID | None:
    """The one subject whose stored address has this key; None when nobody's has it and every
    address of the org is keyed (else the answer could be a false "no data held": 409)."""
    from compliance.db import subjects as subject_repo

    found = subject_repo.by_email_key(conn, org_id, email_key)
    if len(found) > 1:
        raise AmbiguousEmailError(
            "several subjects share this e-mail address; give subject_id", field="email"
        )
    if found:
        return found[0]
    if subject_repo.has_unkeyed_addresses(conn, org_id):
        raise EmailLookupUnavailableError(
            "some addresses are not indexed yet, so an unknown address cannot be told apart from an "
            "unindexed one; give subject_id",
            field="email",
        )
    return None


class AmbiguousEmailError(ConflictError):
    """Two subjects of the organisation report the same address (a shared mailbox): which one?"""

    title = "Ambiguous e-mail address"


class EmailLookupUnavailableError(ConflictError):
    """Some of the organisation's stored addresses have no look-up key yet (stored before migration 0012
    or without the DSR secret; ingest keys them as they next arrive): an address found nowhere might be
    one of them, so the request must name the subject id."""

    title = "Look-up not available"


def read_dsr_secret(client: Any, secret_arn: str) -> bytes:
    """The DSR secret from Secrets Manager (JSON ``{"key": "<hex of >= 32 random bytes>"}``): keys the
    subject keys and the verification codes' hashes (domain-separated HMACs). Read once per process."""
    from compliance.aws.secrets import read_json_secret

    value = read_json_secret(client, secret_arn).get("key")
    try:
        key = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        key = b""
    if len(key) < MIN_SECRET_BYTES:
        # Name the ARN only: never echo the value.
        raise ConfigurationError(
            f"secret {secret_arn}: 'key' must be hex of at least {MIN_SECRET_BYTES} bytes"
        )
    return key


def _locked(conn: Any, org_id: UUID, request_id: UUID) -> dict[str, Any]:
    """The request row, locked until the transaction ends; 404 when the org has no such request."""
    from compliance.db import dsr_requests as repo

    row = repo.get_request(conn, org_id, request_id, for_update=True)
    if row is None:
        raise _not_found()
    return row


def _not_found() -> RequestNotFoundError:
    return RequestNotFoundError("no data subject request with this id")


# ---------------------------------------------------------------------------- create


def create_request(
    db: Database,
    principal: Principal,
    request: DsrCreate,
    *,
    now: datetime,
    sink: AuditSink,
    workflow: DsrWorkflow,
    secret: bytes,
    origin: RequestOrigin,
    deadline_config: DeadlineConfig | None = None,
    crypto: FieldCrypto | None = None,
) -> DsrAccepted:
    """Record the request (status ``received``, deadline by its regulation), audit ``dsr.received``,
    then start its workflow. 409 :class:`OpenRequestExistsError` when the subject has an open one of
    the type; 422 for a look-up by e-mail; 503 when the workflow cannot start (the request is then
    closed as failed, audited, so it neither blocks a retry nor runs its clock).

    Rectification seals the corrections with ``crypto`` under the subject's data key (the org's when
    the subject is unknown), so the subject's erasure shreds them."""
    from compliance.db import dsr_collect
    from compliance.db import dsr_requests as repo

    if request.corrections is not None and crypto is None:
        raise ValueError("rectification needs field crypto to seal the corrections")
    org_id = principal.org_id
    rule = (deadline_config or DeadlineConfig()).rule_for(request.regulation)
    clock = deadlines.start(now, rule)
    request_id = uuid4()
    row: dict[str, Any] = {
        "id": request_id,
        "type": request.type.value,
        "regulation": request.regulation.value,
        "status": DsrStatus.RECEIVED.value,
        # For an address this is also the subjects' look-up key (subjects.email_key): one function.
        "subject_key": subject_key(secret, org_id, subject_id=request.subject_id, email=request.email),
        "export_formats": [f.value for f in request.export_formats] if request.export_formats else None,
        "received_at": clock.received_at,
        "deadline": clock.due_at,
    }

    def store(conn: Any, seal: Callable[[str, UUID | None], str] | None) -> None:
        if request.subject_id is not None:
            subject = dsr_collect.find_subject(conn, org_id, external_id=request.subject_id)
        else:
            subject = _subject_by_email(conn, org_id, row["subject_key"])
        corrections = None
        if request.corrections is not None and seal is not None:
            corrections = seal(request.corrections.model_dump_json(exclude_none=True), subject)
        repo.insert_request(conn, org_id, {**row, "subject_id": subject, "corrections": corrections})
        event = emit.dsr_received(
            principal=principal,
            request_id=request_id,
            dsr_type=request.type.value,
            regulation=request.regulation.value,
            subject_id=subject,
            deadline=clock.due_at,
            occurred_at=now,
            origin=origin,
        )
        emit.publish(sink, [event])

    if request.corrections is not None and crypto is not None:
        from compliance.crypto.context import EncryptionContext

        with crypto.tenant(db, org_id, sink=sink, origin=origin) as (conn, encryptor):

            def seal(plaintext: str, subject: UUID | None) -> str:
                context = EncryptionContext(org_id, TABLE, CORRECTIONS_COLUMN, subject)
                return encryptor.encrypt(plaintext, context)

            store(conn, seal)
    else:
        with db.tenant(org_id) as conn:
            store(conn, None)

    try:
        arn = workflow.start(request_id, {"request_id": str(request_id), "org_id": str(org_id)})
    except DomainError as exc:
        _close_unstarted(db, sink, principal, request_id, now, exc)
        raise
    _record_execution(db, org_id, request_id, arn)
    return DsrAccepted(id=request_id, status=DsrStatus.RECEIVED, deadline=clock.due_at)


def _close_unstarted(
    db: Database, sink: AuditSink, principal: Principal, request_id: UUID, now: datetime, exc: DomainError
) -> None:
    """The request was stored but its workflow never ran: close it as failed (audited), so it does
    not hold the open-request slot nor count down a deadline nobody works on."""
    from compliance.db import dsr_requests as repo

    org_id = principal.org_id
    with db.tenant(org_id) as conn:
        repo.update_request(
            conn,
            org_id,
            request_id,
            status=dsr_status.transition(DsrStatus.RECEIVED, DsrStatus.FAILED).value,
            failure={"error": type(exc).__name__, "cause": WORKFLOW_NOT_STARTED},
            completed_at=now,
        )
        event = emit.dsr_status_changed(
            actor=emit.key_actor(principal.key_id),
            org_id=org_id,
            request_id=request_id,
            from_status=DsrStatus.RECEIVED.value,
            to_status=DsrStatus.FAILED.value,
            step="start",
            details={"cause": WORKFLOW_NOT_STARTED},
            occurred_at=now,
        )
        emit.publish(sink, [event])


def _record_execution(db: Database, org_id: UUID, request_id: UUID, arn: str) -> None:
    """Keep the execution's ARN for cancel. Best effort: the execution runs either way, and its
    ARN follows from the state machine and the request id (compliance.aws.workflow.execution_arn)."""
    from compliance.db import dsr_requests as repo

    try:
        with db.tenant(org_id) as conn:
            repo.update_request(conn, org_id, request_id, execution_arn=arn)
    except DomainError as exc:
        logger.warning("execution arn not recorded", extra={"error_type": type(exc).__name__})


# ---------------------------------------------------------------------------- read


def get_request(
    db: Database,
    principal: Principal,
    request_id: UUID,
    *,
    now: datetime,
    link_for: LinkFor | None = None,
    link_seconds: int = DEFAULT_LINK_S,
) -> DsrOut:
    """The request as the API shows it; export links (``link_for``) only while the export is kept."""
    from compliance.db import dsr_requests as repo

    with db.tenant(principal.org_id) as conn:
        row = repo.get_request(conn, principal.org_id, request_id)
    if row is None:
        raise _not_found()
    return to_out(row, now, link_for=link_for, link_seconds=link_seconds)


def list_requests(db: Database, principal: Principal, query: DsrListQuery, *, now: datetime) -> DsrList:
    """A page of the org's requests, newest first; ``next_cursor`` while more may follow. Items
    carry no export links (open one request for its link)."""
    from compliance.db import dsr_requests as repo

    after = decode_cursor(query.cursor) if query.cursor is not None else None
    with db.tenant(principal.org_id) as conn:
        rows = repo.list_requests(
            conn,
            principal.org_id,
            status=query.status.value if query.status else None,
            type=query.type.value if query.type else None,
            limit=query.limit + 1,  # one more: tells whether there is a next page
            after=after,
        )
    page = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:
        last = page[-1]
        next_cursor = encode_cursor(last["received_at"], last["id"])
    return DsrList(items=[to_out(row, now) for row in page], next_cursor=next_cursor)


def encode_cursor(received_at: datetime, request_id: UUID) -> str:
    """The opaque keyset position: base64url (unpadded) of ``<received_at ISO>|<uuid>``."""
    raw = f"{deadlines.as_utc(received_at).isoformat()}|{request_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The position of :func:`encode_cursor`; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        at_text, _, id_text = raw.partition("|")
        at = datetime.fromisoformat(at_text)
        request_id = UUID(id_text)
        if at.tzinfo is None:
            raise ValueError("naive")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailedError("the cursor is not valid", field="cursor") from exc
    return at, request_id


def to_out(
    row: dict[str, Any], now: datetime, *, link_for: LinkFor | None = None, link_seconds: int = DEFAULT_LINK_S
) -> DsrOut:
    """The API view of a stored row (no subject, no code state, no token)."""
    linkable = (
        link_for is not None
        and row.get("export_expires_at") is not None
        and deadlines.as_utc(row["export_expires_at"]) > deadlines.as_utc(now)
    )
    exports = []
    for item in row.get("export_objects") or []:
        url = None
        if linkable:
            assert link_for is not None
            remaining = int(
                (deadlines.as_utc(row["export_expires_at"]) - deadlines.as_utc(now)).total_seconds()
            )
            url = link_for(str(item["key"]), max(1, min(link_seconds, remaining)))
        exports.append(
            DsrExportOut(
                format=ExportFormat(item["format"]),
                bytes=int(item["bytes"]),
                sha256=str(item["sha256"]),
                large=bool(item.get("large", False)),
                url=url,
            )
        )
    first = exports[0] if exports else None
    steps = [DsrStep.model_validate(step) for step in row.get("steps") or []][-MAX_STEPS:]
    return DsrOut(
        id=row["id"],
        type=DsrType(row["type"]),
        status=DsrStatus(row["status"]),
        regulation=Regulation(row["regulation"]),
        received_at=row["received_at"],
        deadline=row["deadline"],
        days_left=deadlines.days_left(row["deadline"], now),
        extended=row.get("extended_at") is not None,
        extension_reason=row.get("extension_reason"),
        export_formats=[ExportFormat(f) for f in row["export_formats"]]
        if row.get("export_formats")
        else None,
        steps=steps,
        export_url=first.url if first else None,
        export_expires_at=row.get("export_expires_at") if first else None,
        export_sha256=first.sha256 if first else None,
        export_bytes=first.bytes if first else None,
        exports=exports,
        outcome=row.get("outcome"),
        completed_at=row.get("completed_at"),
    )


# ---------------------------------------------------------------------------- extend, cancel


def extend_request(
    db: Database,
    principal: Principal,
    request_id: UUID,
    body: DsrExtend,
    *,
    now: datetime,
    sink: AuditSink,
    origin: RequestOrigin,
    deadline_config: DeadlineConfig | None = None,
) -> DsrOut:
    """Extend the deadline once, within the regulation's limit (409 otherwise, and for a closed
    request); ``body.days`` in days, default the regulation's full extension."""
    from compliance.db import dsr_requests as repo

    org_id = principal.org_id
    with db.tenant(org_id) as conn:
        row = _locked(conn, org_id, request_id)
        current = DsrStatus(row["status"])
        if current in dsr_status.TERMINAL_STATUSES:
            raise dsr_status.InvalidTransitionError(
                f"a {current.value} request cannot be extended", current=current.value
            )
        rule = (deadline_config or DeadlineConfig()).rule_for(Regulation(row["regulation"]))
        clock = deadlines.Deadline(
            received_at=row["received_at"],
            due_at=row["deadline"],
            extended=row["extended_at"] is not None,
            extension_reason=row["extension_reason"],
        )
        by = Period.days(body.days) if body.days is not None else None
        extended = deadlines.extend(clock, rule, body.reason, now, by=by)
        days = (deadlines.as_utc(extended.due_at).date() - deadlines.as_utc(clock.due_at).date()).days
        updated = repo.update_request(
            conn,
            org_id,
            request_id,
            deadline=extended.due_at,
            extended_at=now,
            extension_days=days,
            extension_reason=extended.extension_reason,
        )
        event = emit.dsr_extended(
            principal=principal,
            request_id=request_id,
            previous_deadline=clock.due_at,
            deadline=extended.due_at,
            extension_days=days,
            occurred_at=now,
            origin=origin,
        )
        emit.publish(sink, [event])
    assert updated is not None
    return to_out(updated, now)


def cancel_request(
    db: Database,
    principal: Principal,
    request_id: UUID,
    *,
    now: datetime,
    sink: AuditSink,
    workflow: DsrWorkflow,
    origin: RequestOrigin,
) -> DsrOut:
    """Cancel an open request (409 for a closed one) and stop its execution.

    The stop runs inside the transaction, before the audit event and the commit: if Step Functions
    refuses, nothing changes and a retry is clean; if the commit then fails, the execution is
    stopped and a retried cancel finds it so (a stop of a stopped execution is no error)."""
    from compliance.db import dsr_requests as repo

    org_id = principal.org_id
    with db.tenant(org_id) as conn:
        row = _locked(conn, org_id, request_id)
        previous = DsrStatus(row["status"])
        target = dsr_status.transition(previous, DsrStatus.CANCELLED)
        updated = repo.update_request(
            conn, org_id, request_id, status=target.value, completed_at=now, task_token=None
        )
        stopped = False
        if row["execution_arn"]:
            workflow.stop(row["execution_arn"], CANCEL_CAUSE)
            stopped = True
        event = emit.dsr_cancelled(
            principal=principal,
            request_id=request_id,
            previous_status=previous.value,
            execution_stopped=stopped,
            occurred_at=now,
            origin=origin,
        )
        emit.publish(sink, [event])
    assert updated is not None
    return to_out(updated, now)


def lift_restriction(
    db: Database,
    principal: Principal,
    request_id: UUID,
    *,
    now: datetime,
    sink: AuditSink,
    origin: RequestOrigin,
) -> DsrOut:
    """End the restriction of processing a completed restriction request set (GDPR Art. 18(3): the
    subject is told before, by the controller). 409 for another type, an unfinished request, or a
    restriction no longer in force (lifted already, or the subject erased)."""
    from compliance.db import dsr_requests as repo
    from compliance.db import subjects as subject_repo

    org_id = principal.org_id
    with db.tenant(org_id) as conn:
        row = _locked(conn, org_id, request_id)
        if row["type"] != DsrType.RESTRICTION or row["status"] != DsrStatus.COMPLETED:
            raise ConflictError(
                "only a completed restriction request can be lifted", request_id=str(request_id)
            )
        subject = row["subject_id"]
        if subject is None or not subject_repo.lift_restriction(conn, org_id, subject, request_id):
            raise ConflictError("this restriction is not in force", request_id=str(request_id))
        repo.append_step(
            conn, org_id, request_id, "lift", StepStatus.SUCCEEDED, now, {"lifted_by": "api_key"}
        )
        updated = repo.update_request(conn, org_id, request_id, outcome="lifted")
        event = emit.subject_restriction_changed(
            actor=emit.key_actor(principal.key_id),
            org_id=org_id,
            subject_id=subject,
            request_id=request_id,
            restricted=False,
            occurred_at=now,
            origin=origin,
        )
        emit.publish(sink, [event])
    assert updated is not None
    return to_out(updated, now)


# ---------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class _Attempt:
    result: verification.AttemptResult
    status: DsrStatus
    task_token: str | None
    error: DomainError | None = None


def verify_request(
    db: Database,
    sink: AuditSink,
    workflow: DsrWorkflow,
    request_id: UUID,
    code: str,
    *,
    secret: bytes,
    now: datetime,
    origin: RequestOrigin | None = None,
) -> DsrVerified:
    """Check the subject's code. No principal: the request's org is found by its id (404 unknown).

    Every attempt is stored (counter, verification time) and audited in one transaction that
    commits before the error is raised: 403 wrong (with the attempts left) or locked, 410 expired,
    409 already verified or not awaiting verification. A right code moves the request to
    ``verified`` and, after the commit, resumes the execution waiting on the task token."""
    from compliance.db import dsr_requests as repo

    origin = origin or RequestOrigin()
    with db.unscoped() as conn:
        org_id = repo.request_org(conn, request_id)
    if org_id is None:
        raise _not_found()
    with db.tenant(org_id) as conn:
        row = _locked(conn, org_id, request_id)
        attempt = _attempt(
            conn, row, org_id, request_id, code, secret=secret, now=now, sink=sink, origin=origin
        )
    if attempt.error is not None:
        raise attempt.error
    verification.raise_for(attempt.result)
    if attempt.task_token is not None:
        workflow.resume(attempt.task_token, {"verified": True})
    else:
        logger.warning("verified request without a task token")
    return DsrVerified(id=request_id, status=attempt.status)


def _attempt(
    conn: Any,
    row: dict[str, Any],
    org_id: UUID,
    request_id: UUID,
    code: str,
    *,
    secret: bytes,
    now: datetime,
    sink: AuditSink,
    origin: RequestOrigin,
) -> _Attempt:
    from compliance.db import dsr_requests as repo

    current = DsrStatus(row["status"])
    if row["verified_at"] is not None or current is DsrStatus.VERIFIED:
        result = verification.AttemptResult(verification.Outcome.ALREADY_VERIFIED, 0)
        _publish_failed(sink, org_id, request_id, result, now, origin)
        return _Attempt(result, current, None)
    if current is not DsrStatus.AWAITING_VERIFICATION or row["code_hash"] is None:
        # Audited too: every attempt is evidence, also one at the wrong time.
        emit.publish(
            sink,
            [
                emit.dsr_verification_failed(
                    org_id=org_id,
                    request_id=request_id,
                    outcome="not_awaiting_verification",
                    attempts_left=0,
                    occurred_at=now,
                    origin=origin,
                )
            ],
        )
        error = _NotAwaitingVerificationError(
            "this request is not awaiting verification", current=current.value
        )
        return _Attempt(verification.AttemptResult(verification.Outcome.WRONG, 0), current, None, error)
    state = verification.VerificationState(
        request_id=request_id,
        code_hash=bytes(row["code_hash"]),
        issued_at=row["code_issued_at"],
        expires_at=row["code_expires_at"],
        max_attempts=row["max_attempts"],
        failed_attempts=row["failed_attempts"],
        verified_at=row["verified_at"],
    )
    new_state, result = verification.attempt(state, code, secret, now)
    fields: dict[str, Any] = {}
    if new_state.failed_attempts != state.failed_attempts:
        fields["failed_attempts"] = new_state.failed_attempts
    status: DsrStatus = current
    if result.outcome is verification.Outcome.VERIFIED:
        status = dsr_status.transition(current, DsrStatus.VERIFIED)
        fields.update(verified_at=new_state.verified_at, status=status.value)
    if fields:
        repo.update_request(conn, org_id, request_id, **fields)
    if result.outcome is verification.Outcome.VERIFIED:
        event = emit.dsr_verified(
            org_id=org_id,
            request_id=request_id,
            failed_attempts=new_state.failed_attempts,
            occurred_at=now,
            origin=origin,
        )
        emit.publish(sink, [event])
        return _Attempt(result, status, row["task_token"])
    _publish_failed(sink, org_id, request_id, result, now, origin)
    return _Attempt(result, status, None)


class _NotAwaitingVerificationError(ConflictError):
    title = "Not awaiting verification"


def _publish_failed(
    sink: AuditSink,
    org_id: UUID,
    request_id: UUID,
    result: verification.AttemptResult,
    now: datetime,
    origin: RequestOrigin,
) -> None:
    event = emit.dsr_verification_failed(
        org_id=org_id,
        request_id=request_id,
        outcome=result.outcome.value,
        attempts_left=result.attempts_left,
        occurred_at=now,
        origin=origin,
    )
    emit.publish(sink, [event])
