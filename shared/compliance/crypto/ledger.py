"""The shred ledger: a record of every crypto-shred kept outside the database, so that shreds
reach databases restored from backups taken before them.

A backup of ``data_keys`` taken before a shred still holds the subject's wrapped keys; restoring
it would revive the erased values. :func:`compliance.crypto.shredding.shred` therefore writes one
immutable record per shred to the ledger before its transaction commits, and
:func:`compliance.crypto.rotation.reapply_shreds` (run first by the daily key job, and by
``compliance keys reapply-shreds`` in the restore runbook) destroys every scope the ledger names
that the database holds live again.

Records hold ids and times only (org, the subject's pseudonymous uuid, key ids): no personal value.
:class:`S3ShredLedger` writes them to the audit anchor bucket (S3 Object Lock, COMPLIANCE mode,
create-only) under ``shreds/<org_id>/<subject_id>/<time>-<hash>.json``; the scope is in the object
key, so re-applying lists the prefix and reads no object.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, Protocol
from uuid import UUID

from compliance.aws.clients import error_code
from compliance.aws.locked_objects import LockedWriteError, put_locked_json, retain_until
from compliance.errors import DomainError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "LEDGER_FORMAT",
    "LEDGER_PREFIX",
    "MemoryShredLedger",
    "S3ShredLedger",
    "ShredLedger",
    "ShredLedgerError",
    "ShredRecord",
    "ShreddedScope",
    "record_json",
    "record_key",
]

LEDGER_PREFIX = "shreds/"
LEDGER_FORMAT = "compliance.shred/v1"


class ShredLedgerError(DomainError):
    """The shred ledger could not be written or read: the shred is not done (retry)."""

    status = 503
    title = "Shred ledger unavailable"


class ShredRecord(NamedTuple):
    org_id: UUID
    subject_id: UUID
    key_ids: tuple[UUID, ...]
    shredded_at: datetime


class ShreddedScope(NamedTuple):
    """A (org, subject) scope the ledger says was shredded."""

    org_id: UUID
    subject_id: UUID


class ShredLedger(Protocol):
    def record(self, record: ShredRecord) -> str:
        """Store ``record`` durably and immutably; where (e.g. the object key). Raises
        :class:`ShredLedgerError` when it could not."""
        ...

    def scopes(self) -> Iterator[ShreddedScope]:
        """Every scope with a record (a scope shredded twice may appear twice)."""
        ...


def record_json(record: ShredRecord) -> bytes:
    return json.dumps(
        {
            "format": LEDGER_FORMAT,
            "org_id": str(record.org_id),
            "subject_id": str(record.subject_id),
            "key_ids": [str(k) for k in record.key_ids],
            "shredded_at": record.shredded_at.astimezone(UTC).isoformat(),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode("utf-8")


def record_key(record: ShredRecord) -> str:
    """``shreds/<org>/<subject>/<UTC time, sortable>-<body hash[:16]>.json``: one key per distinct
    record, so a retried write of the same record lands on the same key."""
    when = record.shredded_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    digest = hashlib.sha256(record_json(record)).hexdigest()[:16]
    return f"{LEDGER_PREFIX}{record.org_id}/{record.subject_id}/{when}-{digest}.json"


def scope_of_key(key: str) -> ShreddedScope | None:
    """The scope an object key names; ``None`` for anything else under the prefix."""
    parts = key.removeprefix(LEDGER_PREFIX).split("/")
    if not key.startswith(LEDGER_PREFIX) or len(parts) != 3 or not parts[2].endswith(".json"):
        return None
    try:
        return ShreddedScope(UUID(parts[0]), UUID(parts[1]))
    except ValueError:
        return None


class MemoryShredLedger:
    """A :class:`ShredLedger` in a list (tests); ``fail=True`` refuses every write."""

    def __init__(self, *, fail: bool = False) -> None:
        self.records: list[ShredRecord] = []
        self.fail = fail
        self._lock = threading.Lock()

    def record(self, record: ShredRecord) -> str:
        if self.fail:
            raise ShredLedgerError("the shred ledger refused the record")
        with self._lock:
            self.records.append(record)
        return record_key(record)

    def scopes(self) -> Iterator[ShreddedScope]:
        with self._lock:
            found = list(self.records)
        return iter([ShreddedScope(r.org_id, r.subject_id) for r in found])


class S3ShredLedger:
    """Shred records in an S3 Object Lock bucket, each locked in COMPLIANCE mode for
    ``retention_days`` after the shred (as :class:`compliance.audit.anchor.S3ObjectLockAnchor`
    anchors checkpoints): nobody, the account root included, deletes or overwrites one before then.
    The retention must outlast every database backup. ``IfNoneMatch="*"``: create-only."""

    def __init__(self, client: S3Client, bucket: str, retention_days: int) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be >= 1")
        self._client = client
        self._bucket = bucket
        self._retention = timedelta(days=retention_days)

    def __repr__(self) -> str:
        return f"S3ShredLedger(bucket={self._bucket!r})"

    def retain_until(self, record: ShredRecord) -> datetime:
        return retain_until(record.shredded_at, self._retention)

    def record(self, record: ShredRecord) -> str:
        key = record_key(record)
        try:  # a record written before (a retry) is there, locked: that counts as written
            put_locked_json(self._client, self._bucket, key, record_json(record), self.retain_until(record))
        except LockedWriteError as exc:
            raise ShredLedgerError(f"could not write the shred record ({exc.code})") from exc
        return key

    def scopes(self) -> Iterator[ShreddedScope]:
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=LEDGER_PREFIX
            )
            for page in pages:
                for item in page.get("Contents", []):
                    scope = scope_of_key(item["Key"])
                    if scope is not None:
                        yield scope
        except Exception as exc:  # botocore ClientError / BotoCoreError alike
            raise ShredLedgerError(f"could not list the shred ledger ({error_code(exc)})") from exc
