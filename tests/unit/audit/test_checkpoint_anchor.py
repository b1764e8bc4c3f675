"""compliance.audit.anchor: what goes to S3 Object Lock, and how failures surface (fake client)."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from compliance.audit.anchor import AnchorError, S3ObjectLockAnchor, anchor_key
from compliance.audit.checkpoint import LocalSigner, parse_checkpoint_json, sign_head
from tests.unit.audit.test_checkpoint import HEAD, KEY_ARN


class FakeS3:
    def __init__(self, error_code: str | None = None) -> None:
        self.error_code = error_code
        self.puts: list[dict[str, Any]] = []

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self.puts.append(kwargs)
        if self.error_code:
            raise ClientError({"Error": {"Code": self.error_code, "Message": "x"}}, "PutObject")
        return {"VersionId": "v1"}


CHECKPOINT = sign_head(HEAD, LocalSigner.generate(KEY_ARN))


def test_a_checkpoint_is_written_locked_in_compliance_mode() -> None:
    # Given an anchor keeping objects for 30 days
    s3 = FakeS3()
    anchor = S3ObjectLockAnchor(s3, "anchor-bucket", 30)  # type: ignore[arg-type]

    # When a checkpoint is anchored
    key = anchor.anchor(CHECKPOINT)

    # Then one create-only PUT carries the published JSON, COMPLIANCE retention from issued_at and
    # the body's SHA-256 checksum, under the documented key
    assert key == f"checkpoints/{HEAD.org_id}/000000000002-{CHECKPOINT.head_hash[:16]}.json"
    assert key == anchor_key(CHECKPOINT)
    [put] = s3.puts
    assert put["Bucket"] == "anchor-bucket" and put["Key"] == key
    assert parse_checkpoint_json(put["Body"]) == CHECKPOINT
    assert put["ObjectLockMode"] == "COMPLIANCE"
    # (rounded up to the second: S3 keeps whole seconds, the lock must not end early)
    assert put["ObjectLockRetainUntilDate"] == HEAD.issued_at.replace(microsecond=0) + timedelta(
        days=30, seconds=1
    )
    assert put["ChecksumAlgorithm"] == "SHA256"
    assert put["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(put["Body"]).digest()).decode()
    assert put["IfNoneMatch"] == "*"


def test_an_s3_failure_is_an_anchor_error() -> None:
    anchor = S3ObjectLockAnchor(FakeS3("AccessDenied"), "anchor-bucket", 30)  # type: ignore[arg-type]
    with pytest.raises(AnchorError, match="AccessDenied") as caught:
        anchor.anchor(CHECKPOINT)
    assert caught.value.status == 503


def test_a_key_already_written_counts_as_anchored() -> None:
    # Given the object exists (S3 refuses the create-only PUT) / Then anchoring is a no-op
    anchor = S3ObjectLockAnchor(FakeS3("PreconditionFailed"), "anchor-bucket", 30)  # type: ignore[arg-type]
    assert anchor.anchor(CHECKPOINT) == anchor_key(CHECKPOINT)


def test_retention_must_be_positive() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        S3ObjectLockAnchor(FakeS3(), "anchor-bucket", 0)  # type: ignore[arg-type]
