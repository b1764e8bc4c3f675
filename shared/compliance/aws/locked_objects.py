"""Create-only JSON objects under S3 Object Lock (COMPLIANCE mode): checkpoint anchors, shred records.

The bucket must have Object Lock enabled (hence versioning). ``IfNoneMatch="*"`` makes each write
create-only: a key already present (a retry of the same write) is left as it is. A SHA-256 checksum
travels with the body (Object Lock uploads need one) and S3 checks it.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from compliance.aws.clients import error_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_ALREADY_THERE = frozenset({"PreconditionFailed", "412"})


class LockedWriteError(Exception):
    """S3 refused the write; ``code`` is the AWS error code (safe to log and show)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def retain_until(start: datetime, retention: timedelta) -> datetime:
    """``start`` + ``retention``, rounded up to the second (S3 keeps whole seconds)."""
    until = start + retention
    return until.replace(microsecond=0) + timedelta(seconds=1 if until.microsecond else 0)


def put_locked_json(client: S3Client, bucket: str, key: str, body: bytes, until: datetime) -> None:
    """Write ``body`` at ``key``, locked in COMPLIANCE mode until ``until``; an object already at
    ``key`` counts as written. Any other failure raises :class:`LockedWriteError`."""
    try:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode("ascii"),
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=until,
            IfNoneMatch="*",
        )
    except Exception as exc:  # botocore ClientError / BotoCoreError alike
        code = error_code(exc)
        if code not in _ALREADY_THERE:
            raise LockedWriteError(code) from exc
