"""The exports bucket through S3ExportStore, on moto's in-process S3 and KMS (no network): keys,
SSE-KMS and checksums on upload, SigV4 links signed by the signing client, erasure of every
version under a subject's prefix, and AWS failures as a 503 that never echoes an object."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from compliance.aws import exports
from compliance.aws.exports import (
    MAX_PRESIGN_S,
    ExportStoreUnavailableError,
    S3ExportStore,
    export_key,
    subject_prefix,
)
from tests.aws_fixtures import REGION
from tests.unit.dsr.fakes_exports import MemoryExportStore

ORG = uuid.UUID("7a0c1a52-1f55-4bd3-9a57-0d5e4e1c3b01")
SUBJECT = "5d1e9b0c-3a4b-4c5d-8e6f-7a8b9c0d1e2f"
REQUEST = uuid.UUID("0b7f3c1e-7d7a-4f55-9a39-2f1f0c3a9d11")
BUCKET = "dsr-exports-test"
SECRET_BODY = b'{"data":{"contact":[{"subjects.email":"ada@example.com"}]}}'


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def s3(aws: None) -> Any:
    import boto3

    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def kms_key(aws: None) -> str:
    import boto3

    return str(boto3.client("kms", region_name=REGION).create_key()["KeyMetadata"]["Arn"])


@pytest.fixture
def store(s3: Any, kms_key: str) -> S3ExportStore:
    return S3ExportStore(BUCKET, kms_key, s3)


def put(store: exports.ExportStore, key: str, body: bytes = SECRET_BODY) -> None:
    store.put(key, io.BytesIO(body), content_type="application/json", size=len(body), sha256_hex=sha(body))


def test_export_keys_group_a_subject_s_exports_under_one_prefix() -> None:
    key = export_key(ORG, SUBJECT, REQUEST, "zip")
    assert key == f"{ORG}/{SUBJECT}/{REQUEST}/export.zip"
    assert key.startswith(subject_prefix(ORG, SUBJECT))
    for bad_ref in ("", "a/b"):
        with pytest.raises(ValueError):
            subject_prefix(ORG, bad_ref)
    with pytest.raises(ValueError):
        export_key(ORG, SUBJECT, REQUEST, "../x")


def test_an_upload_is_kms_encrypted_with_its_checksum_and_content_type(
    store: S3ExportStore, s3: Any, kms_key: str
) -> None:
    # When an export is uploaded
    key = export_key(ORG, SUBJECT, REQUEST, "json")
    put(store, key)
    # Then S3 holds it under the KMS key, with its SHA-256 (checked by S3 and kept as metadata)
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(kms_key.split("/")[-1])
    assert head["ContentType"] == "application/json"
    assert head["Metadata"]["sha256"] == sha(SECRET_BODY)
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(SECRET_BODY).digest()).decode()
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == SECRET_BODY
    assert store.keys(subject_prefix(ORG, SUBJECT)) == [key]


def test_a_large_upload_goes_multipart_from_the_file(
    store: S3ExportStore, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a body above the single-PUT limit (lowered for the test) and above boto3's multipart threshold
    monkeypatch.setattr(exports, "SINGLE_PUT_MAX_BYTES", 1024)
    body = bytes(range(256)) * (9 * 1024 * 1024 // 256)
    key = export_key(ORG, SUBJECT, REQUEST, "zip")
    # When it is uploaded
    put(store, key, body)
    # Then the object is whole, KMS-encrypted, with the file's digest in its metadata
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == len(body) and head["Metadata"]["sha256"] == sha(body)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body


def test_a_link_is_sigv4_for_the_asked_lifetime_and_downloads_the_file(store: S3ExportStore) -> None:
    import requests

    key = export_key(ORG, SUBJECT, REQUEST, "json")
    put(store, key)
    # When a 7-day link is made
    url = store.presign(key, MAX_PRESIGN_S)
    # Then it is a SigV4 query signature for exactly that long, and it fetches the file
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == [str(MAX_PRESIGN_S)]
    response = requests.get(url, timeout=10)  # moto answers in-process
    assert response.status_code == 200 and response.content == SECRET_BODY
    # And SigV4 cannot sign beyond 7 days, nor zero
    for bad in (0, MAX_PRESIGN_S + 1):
        with pytest.raises(ValueError):
            store.presign(key, bad)


def test_links_are_signed_by_the_signing_client_when_one_is_given(s3: Any, kms_key: str) -> None:
    # Given a signing client with a dedicated IAM user's long-lived keys
    signer = exports.sigv4_client(
        aws_access_key_id="AKIASIGNINGUSER00001", aws_secret_access_key="signing-user-secret", region=REGION
    )
    store = S3ExportStore(BUCKET, kms_key, s3, signing_client=signer)
    url = store.presign(export_key(ORG, SUBJECT, REQUEST, "xml"), 3600)
    # Then the link names that user's key, not the function's session, and carries no session token
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Credential"][0].startswith("AKIASIGNINGUSER00001/")
    assert "X-Amz-Security-Token" not in query


def test_a_signing_client_that_is_not_sigv4_is_refused(s3: Any, kms_key: str) -> None:
    import boto3
    from botocore.config import Config

    from compliance.errors import ConfigurationError

    legacy = boto3.client("s3", region_name=REGION, config=Config(signature_version="s3"))
    store = S3ExportStore(BUCKET, kms_key, s3, signing_client=legacy)
    with pytest.raises(ConfigurationError):
        store.presign(export_key(ORG, SUBJECT, REQUEST, "xml"), 3600)


@pytest.fixture
def versioned(store: S3ExportStore, s3: Any) -> Iterator[S3ExportStore]:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield store


def test_erasure_deletes_every_version_under_the_subject_prefix_and_nothing_else(
    versioned: S3ExportStore, s3: Any
) -> None:
    # Given two exports of the subject, one overwritten (two versions) and one deleted (a marker),
    # and the export of a subject whose id starts with the same characters
    mine = [export_key(ORG, SUBJECT, uuid.uuid4(), "json") for _ in range(2)]
    sibling = export_key(ORG, SUBJECT[:-1] + "0", REQUEST, "json")
    sibling_prefix_lookalike = export_key(ORG, SUBJECT + "0", REQUEST, "json")
    put(versioned, mine[0])
    put(versioned, mine[0], b"second version")
    put(versioned, mine[1])
    s3.delete_object(Bucket=BUCKET, Key=mine[1])
    put(versioned, sibling)
    put(versioned, sibling_prefix_lookalike)

    # When the subject's prefix is deleted
    deleted = versioned.delete_prefix(subject_prefix(ORG, SUBJECT))

    # Then every version and marker of the subject is gone (3 versions + 1 marker), others stay
    assert deleted == 4
    listed = s3.list_object_versions(Bucket=BUCKET, Prefix=subject_prefix(ORG, SUBJECT))
    assert not listed.get("Versions") and not listed.get("DeleteMarkers")
    assert versioned.keys(f"{ORG}/") == sorted([sibling, sibling_prefix_lookalike])
    # And deleting again finds nothing (idempotent)
    assert versioned.delete_prefix(subject_prefix(ORG, SUBJECT)) == 0


def test_erasure_deletes_in_batches_of_1000(
    store: S3ExportStore, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given more objects than one DeleteObjects call takes (batch lowered to keep the test quick)
    monkeypatch.setattr(exports, "_DELETE_BATCH", 10)
    calls: list[int] = []
    original = s3.delete_objects

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Delete"]["Objects"]))
        return original(**kwargs)

    monkeypatch.setattr(s3, "delete_objects", counting)
    for n in range(25):
        put(store, export_key(ORG, SUBJECT, uuid.UUID(int=n), "json"))
    assert store.delete_prefix(subject_prefix(ORG, SUBJECT)) == 25
    assert calls == [10, 10, 5]
    assert store.keys(subject_prefix(ORG, SUBJECT)) == []


def test_a_prefix_that_is_not_a_folder_is_refused(store: S3ExportStore) -> None:
    for bad in ("", "/", f"{ORG}/{SUBJECT}"):
        with pytest.raises(ValueError):
            store.delete_prefix(bad)


def test_s3_failures_are_a_503_naming_the_aws_code_only(s3: Any, kms_key: str) -> None:
    # Given a bucket that does not exist (as access denied or an outage would fail)
    store = S3ExportStore("no-such-bucket", kms_key, s3)
    key = export_key(ORG, SUBJECT, REQUEST, "json")
    # When each operation runs / Then a typed 503 with the AWS code, caused by the boto error
    for call in (
        lambda: put(store, key),
        lambda: store.keys(f"{ORG}/"),
        lambda: store.delete_prefix(subject_prefix(ORG, SUBJECT)),
    ):
        with pytest.raises(ExportStoreUnavailableError) as caught:
            call()
        assert caught.value.status == 503
        assert "NoSuchBucket" in caught.value.detail
        assert caught.value.__cause__ is not None
        assert "ada@example.com" not in caught.value.detail


def test_the_memory_fake_behaves_as_the_bucket_for_what_tests_rely_on() -> None:
    fake = MemoryExportStore()
    key = export_key(ORG, SUBJECT, REQUEST, "json")
    put(fake, key)
    assert fake.keys(subject_prefix(ORG, SUBJECT)) == [key]
    with pytest.raises(ExportStoreUnavailableError):
        fake.put(key, io.BytesIO(b"x"), content_type="application/json", size=1, sha256_hex=sha(b"y"))
    assert fake.delete_prefix(subject_prefix(ORG, SUBJECT)) == 1
    with pytest.raises(ValueError):
        fake.presign(key, MAX_PRESIGN_S + 1)
