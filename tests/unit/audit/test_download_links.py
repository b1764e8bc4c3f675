"""Export download links: signed by a download-role session named after the export, never promised
beyond that session's end; STS and signing failures are the typed 503."""

# ruff: noqa: N803 - the fakes take boto3's argument names

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from compliance.audit import download_links
from compliance.audit.download_links import DownloadLinkError, DownloadSigner, SessionCredentials

ROLE = "arn:aws:iam::123456789012:role/export-download"
BUCKET = "exports"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEYS = ["audit-exports/o/e/events.jsonl", "audit-exports/o/e/checkpoints.json"]


class FakeSts:
    """STS whose sessions last ``lasts_s`` seconds from NOW (a shorter one than asked for if set)."""

    def __init__(self, *, lasts_s: int | None = None, error: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.lasts_s = lasts_s
        self.error = error

    def assume_role(self, *, RoleArn: str, RoleSessionName: str, DurationSeconds: int) -> Mapping[str, Any]:
        self.calls.append(
            {"RoleArn": RoleArn, "RoleSessionName": RoleSessionName, "DurationSeconds": DurationSeconds}
        )
        if self.error is not None:
            raise self.error
        lasts = DurationSeconds if self.lasts_s is None else self.lasts_s
        return {
            "Credentials": {
                "AccessKeyId": "ASIASESSION",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": NOW + timedelta(seconds=lasts),
            }
        }


class FakePresigner:
    def __init__(self, credentials: SessionCredentials, *, error: Exception | None = None) -> None:
        self.credentials = credentials
        self.error = error

    def generate_presigned_url(self, ClientMethod: str, Params: Mapping[str, Any], ExpiresIn: int) -> str:
        if self.error is not None:
            raise self.error
        return f"https://s3.example/{Params['Bucket']}/{Params['Key']}?by={self.credentials.access_key_id}&exp={ExpiresIn}"


def signer(sts: FakeSts, *, presign_error: Exception | None = None) -> DownloadSigner:
    return DownloadSigner(
        sts, ROLE, BUCKET, presigner_for=lambda creds: FakePresigner(creds, error=presign_error)
    )


@pytest.mark.parametrize(("expires_in", "duration"), [(60, 900), (900, 900), (1800, 1800), (3600, 3600)])
def test_one_session_per_export_named_after_it_lasting_at_least_the_expiry(
    expires_in: int, duration: int
) -> None:
    # Given a signer on the download role
    sts = FakeSts()
    export_id = uuid4()
    # When the links of one export are signed
    links = signer(sts).sign(export_id, KEYS, expires_in=expires_in, now=NOW)
    # Then the role was assumed once, the session named after the export, for max(900, expiry) seconds
    assert sts.calls == [
        {"RoleArn": ROLE, "RoleSessionName": f"audit-export-{export_id}", "DurationSeconds": duration}
    ]
    # And every key is presigned with that session's credentials, for the asked expiry, in order
    assert links.urls == tuple(
        f"https://s3.example/{BUCKET}/{key}?by=ASIASESSION&exp={expires_in}" for key in KEYS
    )
    assert links.expires_at == NOW + timedelta(seconds=expires_in)


@pytest.mark.parametrize("lasts_s", [1, 300, 899, 900])
def test_expires_at_is_never_after_the_sessions_end(lasts_s: int) -> None:
    # Given STS handing out a session that ends before (or when) the URLs would
    sts = FakeSts(lasts_s=lasts_s)
    # When links valid 900 s are signed
    links = signer(sts).sign(uuid4(), KEYS, expires_in=900, now=NOW)
    # Then the stated expiry is the session's end
    assert links.expires_at == NOW + timedelta(seconds=lasts_s)


def test_a_session_already_over_is_refused() -> None:
    with pytest.raises(DownloadLinkError):
        signer(FakeSts(lasts_s=-5)).sign(uuid4(), KEYS, expires_in=900, now=NOW)


def test_sts_errors_are_the_typed_503() -> None:
    # Given STS refusing (AccessDenied, throttling, no endpoint...)
    cause = RuntimeError("AccessDenied")
    # When links are signed, Then a DownloadLinkError (503) chained to the driver error is raised
    with pytest.raises(DownloadLinkError) as raised:
        signer(FakeSts(error=cause)).sign(uuid4(), KEYS, expires_in=900, now=NOW)
    assert raised.value.status == 503 and raised.value.__cause__ is cause


def test_a_malformed_sts_answer_is_the_typed_503() -> None:
    class NoCredentials(FakeSts):
        def assume_role(
            self, *, RoleArn: str, RoleSessionName: str, DurationSeconds: int
        ) -> Mapping[str, Any]:
            return {}

    with pytest.raises(DownloadLinkError) as raised:
        signer(NoCredentials()).sign(uuid4(), KEYS, expires_in=900, now=NOW)
    assert isinstance(raised.value.__cause__, KeyError)


def test_signing_errors_are_the_typed_503() -> None:
    cause = ValueError("bad endpoint")
    with pytest.raises(DownloadLinkError) as raised:
        signer(FakeSts(), presign_error=cause).sign(uuid4(), KEYS, expires_in=900, now=NOW)
    assert raised.value.__cause__ is cause


@pytest.mark.parametrize("expires_in", [0, 3601])
def test_expiry_outside_what_a_chained_session_can_cover_is_a_programming_error(expires_in: int) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        signer(FakeSts()).sign(uuid4(), KEYS, expires_in=expires_in, now=NOW)


def test_naive_and_string_expirations_are_utc() -> None:
    assert download_links._aware(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert download_links._aware("2026-01-01T12:00:00Z") == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_s3_presigner_signs_sigv4_with_the_sessions_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the process's own credentials in the environment and no endpoint override
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFUNCTIONROLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "function-secret")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    credentials = SessionCredentials("ASIADOWNLOAD", "session-secret", "session-token", NOW)
    # When the real boto3 client built from a session's credentials presigns (no request is made)
    presigner = download_links.s3_presigner("eu-west-1")(credentials)
    url = presigner.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": KEYS[0]}, ExpiresIn=900
    )
    # Then it is SigV4, signed by the session (its key and token), not by the process's credentials
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["900"]
    assert (
        query["X-Amz-Credential"][0].startswith("ASIADOWNLOAD/")
        and "/eu-west-1/s3/" in query["X-Amz-Credential"][0]
    )
    assert query["X-Amz-Security-Token"] == ["session-token"]
