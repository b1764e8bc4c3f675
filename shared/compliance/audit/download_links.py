"""Download links of audit exports, signed by a role session whose end is known.

A presigned URL stops working when the credentials that signed it expire, whatever its
``X-Amz-Expires`` says, and a Lambda execution role's session has no documented remaining lifetime.
So each export's links are signed with a fresh session of the export download role (only
``s3:GetObject`` under ``audit-exports/``), named after the export and assumed for at least the URL
expiry; the ``expires_at`` handed out is never after that session's ``Expiration``.
"""

# ruff: noqa: N803 - the Protocols take boto3's argument names

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from compliance.errors import DomainError

MIN_SESSION_S = 900  # STS AssumeRole minimum DurationSeconds
MAX_SESSION_S = 3600  # role chaining (a Lambda role assuming a role) caps the session at 1 h
SESSION_PREFIX = "audit-export-"


class DownloadLinkError(DomainError):
    """STS or the URL signer failed: the export exists but no usable link can be handed out."""

    status = 503
    title = "Export download links unavailable"


@dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime  # aware, UTC


@dataclass(frozen=True)
class DownloadLinks:
    urls: tuple[str, ...]  # in the order of the keys asked for
    expires_at: datetime  # every URL works at least until then


class StsClient(Protocol):
    """The one boto3 STS call used here."""

    def assume_role(
        self, *, RoleArn: str, RoleSessionName: str, DurationSeconds: int
    ) -> Mapping[str, Any]: ...


class UrlPresigner(Protocol):
    """The one boto3 S3 client call used here (a client built from the session's credentials)."""

    def generate_presigned_url(
        self,
        ClientMethod: str,
        Params: Mapping[str, Any],
        ExpiresIn: int,
    ) -> str: ...


class LinkSigner(Protocol):
    def sign(self, export_id: UUID, keys: Sequence[str], *, expires_in: int, now: datetime) -> DownloadLinks:
        """GET URLs of ``keys`` valid ``expires_in`` seconds from ``now`` (raises DownloadLinkError)."""
        ...


class DownloadSigner:
    """:class:`LinkSigner` that assumes ``role_arn`` once per export and presigns with that session."""

    def __init__(
        self,
        sts: StsClient,
        role_arn: str,
        bucket: str,
        *,
        presigner_for: Callable[[SessionCredentials], UrlPresigner],
    ) -> None:
        self._sts = sts
        self._role_arn = role_arn
        self._bucket = bucket
        self._presigner_for = presigner_for

    def sign(self, export_id: UUID, keys: Sequence[str], *, expires_in: int, now: datetime) -> DownloadLinks:
        if not 0 < expires_in <= MAX_SESSION_S:
            raise ValueError(f"expires_in must be in 1..{MAX_SESSION_S} s, got {expires_in}")
        credentials = self._assume(export_id, duration_s=max(MIN_SESSION_S, expires_in))
        try:
            presigner = self._presigner_for(credentials)
            urls = tuple(
                presigner.generate_presigned_url(
                    "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
                )
                for key in keys
            )
        except Exception as exc:  # botocore errors (e.g. a bad endpoint configuration)
            raise DownloadLinkError("could not sign the export download links") from exc
        expires_at = min(now + timedelta(seconds=expires_in), credentials.expiration)
        if expires_at <= now:  # a session that is already over signs dead links
            raise DownloadLinkError("the download role session expired before the links were signed")
        return DownloadLinks(urls=urls, expires_at=expires_at)

    def _assume(self, export_id: UUID, *, duration_s: int) -> SessionCredentials:
        try:
            response = self._sts.assume_role(
                RoleArn=self._role_arn,
                # The session name is the export id: CloudTrail ties each download to its export.
                RoleSessionName=f"{SESSION_PREFIX}{export_id}",
                DurationSeconds=duration_s,
            )
            raw = response["Credentials"]
            return SessionCredentials(
                access_key_id=str(raw["AccessKeyId"]),
                secret_access_key=str(raw["SecretAccessKey"]),
                session_token=str(raw["SessionToken"]),
                expiration=_aware(raw["Expiration"]),
            )
        except Exception as exc:  # botocore ClientError / connection errors / a malformed answer
            raise DownloadLinkError("could not assume the export download role") from exc


def _aware(value: Any) -> datetime:
    """botocore parses ``Expiration`` to an aware datetime; a naive one is UTC (ISO 8601 ``Z``)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"Expiration is not a timestamp: {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def s3_presigner(region: str) -> Callable[[SessionCredentials], UrlPresigner]:
    """Builds SigV4 S3 clients from a session's credentials (KMS-encrypted objects need SigV4).

    Same configuration as the other clients: the region of the function and, in the local runtime,
    the endpoint boto3 reads from ``AWS_ENDPOINT_URL``. Presigning makes no request.
    """

    def build(credentials: SessionCredentials) -> UrlPresigner:
        import boto3  # heavy: imported on first use, not at cold start
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            region_name=region,
        )
        client: UrlPresigner = session.client("s3", config=Config(signature_version="s3v4"))
        return client

    return build
