"""Where DSR exports are kept: an S3 bucket, KMS-encrypted, handed out as presigned SigV4 links.

Keys are ``<org_id>/<subject_ref>/<request_id>/export.<ext>`` (:func:`export_key`); ``subject_ref``
is the subject's pseudonymous uuid, so the erasure of a subject deletes everything under
``<org_id>/<subject_ref>/`` (:func:`subject_prefix`), every version of it in a versioned bucket.

Presigned links and credentials: a SigV4 URL stops working when the credentials that signed it
expire, whatever its ``X-Amz-Expires`` says. A Lambda role's session lasts hours, so a 7-day link
must be signed with long-lived credentials: pass ``signing_client``, an S3 client built from the
keys of a dedicated IAM user allowed only ``s3:GetObject`` on the bucket and ``kms:Decrypt`` on
its key, kept in Secrets Manager and rotated (or put CloudFront with signed URLs in front).
Without it, links are signed with the function's role and last at most as long as its session.

boto3 is imported only when a client is first built (cold starts of handlers that never export
stay light). AWS failures leave as :class:`ExportStoreUnavailableError` (503) naming only the AWS
error code; nothing here logs or echoes an object's contents.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Final, Protocol
from uuid import UUID

from compliance.aws.clients import error_code
from compliance.errors import ConfigurationError, DomainError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "MAX_PRESIGN_S",
    "SINGLE_PUT_MAX_BYTES",
    "ExportStore",
    "ExportStoreUnavailableError",
    "S3ExportStore",
    "check_prefix",
    "check_presign",
    "export_key",
    "sigv4_client",
    "subject_prefix",
]

#: SigV4 query signatures are valid for at most 7 days.
MAX_PRESIGN_S: Final = 7 * 24 * 3600
#: Up to this size one PutObject (with a SHA-256 S3 checks); above it a multipart upload.
SINGLE_PUT_MAX_BYTES: Final = 16 * 1024 * 1024
_PART_BYTES: Final = 8 * 1024 * 1024  # 10,000 parts at most: exports up to 80 GB
_UPLOAD_THREADS: Final = 4
_DELETE_BATCH: Final = 1000  # DeleteObjects takes at most 1,000 keys
_SHA256_METADATA: Final = "sha256"  # x-amz-meta-sha256: the whole object's digest, hex


class ExportStoreUnavailableError(DomainError):
    """S3 failed or refused (outage, throttling, access denied, KMS key disabled): retry later."""

    status = 503
    title = "Export storage unavailable"


def subject_prefix(org_id: UUID, subject_ref: str) -> str:
    """Everything of one subject's exports is under this prefix (what erasure deletes)."""
    if not subject_ref or "/" in subject_ref:
        raise ValueError("subject_ref must be a pseudonymous id without '/'")
    return f"{org_id}/{subject_ref}/"


def export_key(org_id: UUID, subject_ref: str, request_id: UUID, extension: str) -> str:
    """The object key of one export file."""
    if not extension.isalnum():
        raise ValueError("extension must be alphanumeric")
    return f"{subject_prefix(org_id, subject_ref)}{request_id}/export.{extension}"


class ExportStore(Protocol):
    def put(self, key: str, body: IO[bytes], *, content_type: str, size: int, sha256_hex: str) -> None:
        """Upload ``size`` bytes read from ``body`` (from its current position)."""
        ...

    def presign(self, key: str, expires_in_s: int) -> str:
        """A GET link to ``key`` valid for ``expires_in_s`` seconds (at most :data:`MAX_PRESIGN_S`)."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object (every version) under ``prefix``; the number deleted."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """The current keys under ``prefix``, sorted."""
        ...


def check_presign(expires_in_s: int) -> None:
    if not 0 < expires_in_s <= MAX_PRESIGN_S:
        raise ValueError(f"a presigned link lasts between 1 s and {MAX_PRESIGN_S} s")


def check_prefix(prefix: str) -> None:
    # A prefix without its closing "/" would also match a sibling (".../subject-1" and "...-10").
    if not prefix.endswith("/") or prefix.strip("/") == "":
        raise ValueError("a deletion prefix must name a folder (end with '/', not the bucket root)")


def sigv4_client(
    *,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    region: str | None = None,
) -> S3Client:
    """An S3 client that presigns with SigV4 (regional endpoint). With keys: a dedicated signing
    user's, for links that outlive the function's role session; without: the default credentials."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        aws_access_key_id=aws_access_key_id, aws_secret_access_key=aws_secret_access_key, region_name=region
    )
    return session.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))


class S3ExportStore:
    """:class:`ExportStore` on an S3 bucket, every object SSE-KMS under ``kms_key_id``.

    ``client`` does the uploads, listings and deletions (default: the process's shared client);
    ``signing_client`` signs the links (default: :func:`sigv4_client` on the default
    credentials); it must sign with SigV4 (``Config(signature_version="s3v4")``). See the module
    docstring on how long links last."""

    def __init__(
        self,
        bucket: str,
        kms_key_id: str,
        client: S3Client | None = None,
        *,
        signing_client: S3Client | None = None,
    ) -> None:
        self.bucket = bucket
        self.kms_key_id = kms_key_id
        self._client = client
        self._signing_client = signing_client

    def __repr__(self) -> str:
        return f"S3ExportStore(bucket={self.bucket!r}, kms_key_id={self.kms_key_id!r})"

    @property
    def client(self) -> S3Client:
        if self._client is None:
            from compliance.aws.clients import client

            self._client = client("s3")
        return self._client

    def put(self, key: str, body: IO[bytes], *, content_type: str, size: int, sha256_hex: str) -> None:
        digest = bytes.fromhex(sha256_hex)
        if len(digest) != 32:
            raise ValueError("sha256_hex must be a SHA-256 digest in hex")
        extra: dict[str, Any] = {
            "ContentType": content_type,
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": self.kms_key_id,
            # Kept whatever the upload path: a multipart upload's S3 checksum is a checksum of
            # the parts' checksums, not the file's digest a person can compare with the manifest.
            "Metadata": {_SHA256_METADATA: sha256_hex},
        }
        with _aws_errors("upload the export"):
            if size <= SINGLE_PUT_MAX_BYTES:
                # S3 recomputes the SHA-256 and refuses the object if it differs.
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
                    **extra,
                )
            else:
                # Multipart, part by part from the file: memory stays bounded whatever the size
                # (about concurrency x part size of buffers: 32 MiB, within a Lambda's budget).
                from boto3.s3.transfer import TransferConfig

                config = TransferConfig(
                    multipart_threshold=SINGLE_PUT_MAX_BYTES,
                    multipart_chunksize=_PART_BYTES,
                    max_concurrency=_UPLOAD_THREADS,
                )
                self.client.upload_fileobj(
                    body, self.bucket, key, ExtraArgs=extra | {"ChecksumAlgorithm": "SHA256"}, Config=config
                )

    def presign(self, key: str, expires_in_s: int) -> str:
        check_presign(expires_in_s)
        if self._signing_client is None:
            self._signing_client = sigv4_client()
        with _aws_errors("sign the export link"):
            url: str = self._signing_client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in_s
            )
        # botocore may presign S3 with the legacy SigV2 query form (no expiry cap, deprecated):
        # refuse a link that is not SigV4 rather than hand it out.
        if "X-Amz-Algorithm=AWS4-HMAC-SHA256" not in url:
            raise ConfigurationError("the export signing client must use signature_version='s3v4'")
        return url

    def delete_prefix(self, prefix: str) -> int:
        check_prefix(prefix)
        deleted = 0
        with _aws_errors("delete exports"):
            paginator = self.client.get_paginator("list_object_versions")
            batch: list[dict[str, str]] = []
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                # Versions and delete markers alike: nothing of the subject may linger as an
                # older version in a versioned bucket.
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    batch.append({"Key": item["Key"], "VersionId": item.get("VersionId") or "null"})
                    if len(batch) == _DELETE_BATCH:
                        deleted += self._delete(batch)
                        batch = []
            if batch:
                deleted += self._delete(batch)
        return deleted

    def _delete(self, batch: list[dict[str, str]]) -> int:
        response = self.client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": batch, "Quiet": True},  # type: ignore[typeddict-item]
        )
        errors = response.get("Errors", [])
        if errors:
            raise ExportStoreUnavailableError(
                f"S3 could not delete {len(errors)} export object(s) ({errors[0].get('Code', 'unknown')})"
            )
        return len(batch)

    def keys(self, prefix: str) -> list[str]:
        found: list[str] = []
        with _aws_errors("list exports"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)


@contextmanager
def _aws_errors(action: str) -> Iterator[None]:
    """botocore and boto3 failures as :class:`ExportStoreUnavailableError`, AWS error code only."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError, Boto3Error) as exc:
        raise ExportStoreUnavailableError(f"S3 could not {action} ({error_code(exc)})") from exc


def signing_client_from_secret(secrets_client: Any, secret_arn: str, region: str | None = None) -> S3Client:
    """The SigV4 client of the export link signer whose access key is kept in Secrets Manager as JSON
    ``{"access_key_id", "secret_access_key"}`` (infra: ``Dsr.link_signer``): links it signs live as
    long as they say (at most 7 days), not as long as a role session."""
    from compliance.aws.secrets import read_json_secret
    from compliance.errors import ConfigurationError

    document = read_json_secret(secrets_client, secret_arn)
    key_id, secret = document.get("access_key_id"), document.get("secret_access_key")
    if not isinstance(key_id, str) or not isinstance(secret, str) or not key_id or not secret:
        raise ConfigurationError(f"secret {secret_arn}: access_key_id and secret_access_key are required")
    return sigv4_client(aws_access_key_id=key_id, aws_secret_access_key=secret, region=region)


def export_store(
    bucket: str, kms_key_id: str, *, signer_secret_arn: str | None = None, region: str | None = None
) -> S3ExportStore:
    """The exports bucket as the DSR functions use it; links signed by the dedicated signer when the
    deployment has one, else by the function's own credentials (links then die with its session)."""
    signing_client = None
    if signer_secret_arn:
        from compliance.aws.clients import client

        signing_client = signing_client_from_secret(client("secretsmanager"), signer_secret_arn, region)
    return S3ExportStore(bucket, kms_key_id, signing_client=signing_client)
