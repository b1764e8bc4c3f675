"""Anchoring signed checkpoints outside the database.

A checkpoint kept only in PostgreSQL proves little against whoever controls PostgreSQL. The
anchor writes each one, as published JSON (:func:`compliance.audit.checkpoint.checkpoint_json`),
to an S3 bucket with Object Lock in *compliance* mode: until the retention date nobody, the
account root included, can delete or overwrite that object version.

Object key: ``checkpoints/<org_id>/<number:012d>-<head_hash[:16]>.json``. The number sorts keys in
checkpoint order; the head hash prefix keeps two different heads with one number (see
:mod:`compliance.audit.checkpointing` on commit failures) from landing on one key.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from compliance.audit.checkpoint import SignedCheckpoint, checkpoint_json
from compliance.aws.locked_objects import LockedWriteError, put_locked_json, retain_until
from compliance.errors import DomainError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Anchor", "AnchorError", "S3ObjectLockAnchor", "anchor_key"]


class AnchorError(DomainError):
    """The checkpoint could not be written to its external anchor."""

    status = 503
    title = "Checkpoint anchor unavailable"


class Anchor(Protocol):
    def anchor(self, checkpoint: SignedCheckpoint) -> str:
        """Publish ``checkpoint`` durably and immutably; return where (e.g. the object key).

        Raises :class:`AnchorError` when it could not.
        """
        ...


def anchor_key(checkpoint: SignedCheckpoint) -> str:
    head = checkpoint.head
    return f"checkpoints/{head.org_id}/{head.number:012d}-{checkpoint.head_hash[:16]}.json"


class S3ObjectLockAnchor:
    """Writes checkpoints to an Object Lock bucket, each locked in COMPLIANCE mode for
    ``retention_days`` after its ``issued_at``.

    The bucket must have Object Lock enabled (hence versioning). ``IfNoneMatch="*"`` makes the write
    create-only: a key already present (the same head anchored before) is left as it is and counts
    as anchored. A SHA-256 checksum travels with the body (Object Lock uploads need one) and S3
    checks it.
    """

    def __init__(self, client: S3Client, bucket: str, retention_days: int) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be >= 1")
        self._client = client
        self._bucket = bucket
        self._retention = timedelta(days=retention_days)

    def retain_until(self, checkpoint: SignedCheckpoint) -> datetime:
        """``issued_at`` + retention, rounded up to the second (S3 keeps whole seconds)."""
        return retain_until(checkpoint.head.issued_at, self._retention)

    def anchor(self, checkpoint: SignedCheckpoint) -> str:
        key = anchor_key(checkpoint)
        body = checkpoint_json(checkpoint)
        try:  # already anchored under this key (a retry): it is there, locked
            put_locked_json(self._client, self._bucket, key, body, self.retain_until(checkpoint))
        except LockedWriteError as exc:
            number = checkpoint.head.number
            raise AnchorError(f"could not anchor checkpoint {number} ({exc.code})") from exc
        return key
