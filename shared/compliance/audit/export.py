"""Audit exports: a ``seq`` range of the caller's log, streamed to the exports bucket as JSON Lines
or CSV with its ``checkpoints.json``, handed out as presigned SigV4 GET URLs.

Objects: ``audit-exports/<org_id>/<export_id>/events.<jsonl|csv>`` and ``.../checkpoints.json``
(formats: :mod:`compliance.audit.export_format`). The bucket's default encryption (SSE-KMS with the
bucket key) applies; no SSE headers are sent. The function only writes exports: the download links
are signed by a session of the export download role (:mod:`compliance.audit.download_links`), whose
end is known, not with the function's own credentials, whose end is not.

Events are read a page at a time and uploaded in multipart parts of :data:`PART_SIZE` bytes, so an
export of any size runs in bounded memory. Creating an export is itself audited
(``audit.export_created``) before the URL is returned: if the audit trail cannot take the event
the export is refused (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID, uuid4

from compliance.audit import emit, export_format
from compliance.audit.checkpoint import SignedCheckpoint
from compliance.audit.download_links import LinkSigner
from compliance.audit.events import AuditEventIn, AuditResult, StoredAuditEvent
from compliance.audit.sink import AuditSink
from compliance.db import audit_checkpoints, audit_query
from compliance.db.connection import Database
from compliance.errors import DomainError, ValidationFailedError
from compliance.models.audit import ExportFormat, ExportOut, ExportRequest, event_record
from compliance.models.auth import Principal
from compliance.observability import logger

if TYPE_CHECKING:
    import psycopg
    from mypy_boto3_s3 import S3Client

PART_SIZE = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB except the last
PAGE_SIZE = 1000
EVENT_TYPE = "audit.export_created"
_CONTENT_TYPES = {ExportFormat.JSONL: "application/x-ndjson", ExportFormat.CSV: "text/csv; charset=utf-8"}


class ExportStoreError(DomainError):
    status = 503
    title = "Export storage unavailable"


class ExportStore(Protocol):
    def upload(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> None:
        """Store the concatenation of ``chunks`` under ``key`` (all or nothing)."""
        ...


class S3ExportStore:
    """:class:`ExportStore` on an S3 bucket (write only: links come from a :class:`LinkSigner`)."""

    def __init__(self, client: S3Client, bucket: str, *, part_size: int = PART_SIZE) -> None:
        self._s3 = client
        self._bucket = bucket
        self._part_size = part_size

    def upload(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> None:
        parts = _rechunk(chunks, self._part_size)
        try:
            first = next(parts, b"")
            second = next(parts, None)
            if second is None:  # small object: one request
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=first, ContentType=content_type)
                return
            self._multipart(key, [first, second], parts, content_type)
        except DomainError:
            raise
        except Exception as exc:  # botocore ClientError / connection errors
            raise ExportStoreError("could not write the export") from exc

    def _multipart(self, key: str, head: list[bytes], rest: Iterator[bytes], content_type: str) -> None:
        upload_id = self._s3.create_multipart_upload(Bucket=self._bucket, Key=key, ContentType=content_type)[
            "UploadId"
        ]
        try:
            done: list[dict[str, Any]] = []
            for number, body in _numbered(head, rest):
                etag = self._s3.upload_part(
                    Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                )["ETag"]
                done.append({"PartNumber": number, "ETag": etag})
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},  # type: ignore[typeddict-item]
            )
        except BaseException:
            try:
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
            except Exception:  # the original error matters; lifecycle rules reap what is left
                logger.warning("could not abort a multipart upload", extra={"key": key})
            raise


def _numbered(head: list[bytes], rest: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    number = 0
    for body in head:
        number += 1
        yield number, body
    for body in rest:
        number += 1
        yield number, body


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Chunks of exactly ``size`` bytes (the last one shorter), from chunks of any size."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def object_keys(org_id: UUID, export_id: UUID, fmt: ExportFormat) -> tuple[str, str]:
    prefix = f"audit-exports/{org_id}/{export_id}/"
    return prefix + f"events.{fmt.value}", prefix + "checkpoints.json"


def export_lines(events: Iterable[StoredAuditEvent], fmt: ExportFormat) -> Iterator[bytes]:
    """The bytes of an export file of ``events`` in ``fmt``, line by line."""
    if fmt is ExportFormat.CSV:
        yield export_format.csv_header()
        for event in events:
            yield export_format.csv_line(event_record(event))
    else:
        for event in events:
            yield export_format.jsonl_line(event_record(event))


class _Counter:
    """Counts the events passing through (the upload consumes the iterator)."""

    def __init__(self, events: Iterable[StoredAuditEvent]) -> None:
        self.count = 0
        self._events = events

    def __iter__(self) -> Iterator[StoredAuditEvent]:
        for event in self._events:
            self.count += 1
            yield event


def create_export(
    db: Database,
    principal: Principal,
    request: ExportRequest,
    *,
    store: ExportStore,
    links: LinkSigner,
    sink: AuditSink,
    url_expiry_s: int,
    now: datetime,
    origin: emit.RequestOrigin | None = None,
    page_size: int = PAGE_SIZE,
) -> ExportOut:
    """Write the export of ``request``'s range and return its URLs (400 for a bad range)."""
    export_id = uuid4()
    events_key, checkpoints_key = object_keys(principal.org_id, export_id, request.format)
    with db.tenant(principal.org_id) as conn:
        current = audit_query.head(conn)
        last = 0 if current is None else current.seq
        from_seq, to_seq = _range(request, last)
        counter = _Counter(
            audit_query.read_range(conn, from_seq=from_seq, to_seq=to_seq, page_size=page_size)
            if to_seq >= from_seq
            else ()
        )
        store.upload(
            events_key, export_lines(counter, request.format), content_type=_CONTENT_TYPES[request.format]
        )
        manifest = export_format.ExportManifest(
            export_id=export_id,
            org_id=principal.org_id,
            events_format=request.format.value,
            from_seq=from_seq,
            to_seq=to_seq,
            events=counter.count,
            created_at=now,
            checkpoints=covering_checkpoints(conn, from_seq=from_seq, to_seq=to_seq),
        )
    store.upload(
        checkpoints_key, [manifest.model_dump_json(indent=2).encode()], content_type="application/json"
    )
    # Signed before the event is published, so the trail records only exports that could be handed
    # out; the URLs are returned only once the event is taken (fail closed).
    # ``now`` is the request's start, before the upload: the stated expiry errs early, never late.
    signed = links.sign(export_id, [events_key, checkpoints_key], expires_in=url_expiry_s, now=now)
    url, checkpoints_url = signed.urls
    origin = origin or emit.RequestOrigin()
    emit.publish(
        sink,
        [
            AuditEventIn(
                event_id=emit.new_event_id(),
                occurred_at=now,
                event_type=EVENT_TYPE,
                actor=emit.key_actor(principal.key_id),
                org_id=principal.org_id,
                resource=f"audit_export:{export_id}",
                action="create",
                result=AuditResult.SUCCESS,
                ip_address=origin.ip_address,
                user_agent=origin.user_agent,
                request_id=origin.request_id,
                details={
                    "format": request.format.value,
                    "from_seq": from_seq,
                    "to_seq": to_seq,
                    "events": counter.count,
                },
            )
        ],
    )
    logger.info("audit export created", extra={"export_id": str(export_id), "events": counter.count})
    return ExportOut(
        export_id=export_id,
        format=request.format,
        events=counter.count,
        from_seq=from_seq,
        to_seq=to_seq,
        url=url,
        checkpoints_url=checkpoints_url,
        expires_at=signed.expires_at,
    )


def _range(request: ExportRequest, last: int) -> tuple[int, int]:
    from_seq = request.from_seq or 1
    to_seq = last if request.to_seq is None else request.to_seq
    if request.to_seq is not None and to_seq > last:
        raise ValidationFailedError(f"to_seq is beyond the last event ({last})")
    if request.from_seq is not None and from_seq > last:
        raise ValidationFailedError(f"from_seq is beyond the last event ({last})")
    if from_seq > to_seq and not (last == 0 and request.from_seq is None and request.to_seq is None):
        raise ValidationFailedError("from_seq must not exceed to_seq")
    return from_seq, to_seq


def covering_checkpoints(
    conn: psycopg.Connection[Any], *, from_seq: int, to_seq: int, page_size: int = 500
) -> list[SignedCheckpoint]:
    """Checkpoints with ``tree_size`` in ``from_seq - 1 .. to_seq``, plus the first one beyond.

    Tree sizes only grow with the checkpoint number, so the scan stops at the first checkpoint
    at or past ``to_seq``.
    """
    covering: list[SignedCheckpoint] = []
    after = 0
    while True:
        page = audit_checkpoints.list_checkpoints(conn, after_number=after, limit=page_size)
        for checkpoint in page:
            size = checkpoint.head.tree_size
            if size >= from_seq - 1:
                covering.append(checkpoint)
            if size >= to_seq:
                return covering
        if len(page) < page_size:
            return covering
        after = page[-1].head.number
