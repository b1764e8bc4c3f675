"""The export step on PostgreSQL, moto's KMS and S3: one read of the subject streamed into every
format, the same bytes as the in-memory collection gives, uploaded KMS-encrypted under the
subject's prefix, downloadable through its link; an unknown subject still answered; erasure's S3
step removes the subject's exports and only theirs."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from datetime import timedelta
from typing import Any

import pytest

from compliance.aws.exports import (
    MAX_PRESIGN_S,
    ExportStoreUnavailableError,
    S3ExportStore,
    export_key,
    subject_prefix,
)
from compliance.crypto.session import FieldCrypto
from compliance.dsr.collect import NO_SUBJECT_REF, collect_subject_data, spool_subject_data
from compliance.dsr.export import delete_subject_exports, export_subject
from compliance.dsr.export_format import FORMATS, write_export
from compliance.errors import ValidationFailedError
from tests.aws_fixtures import REGION
from tests.conftest import ProvisionedDatabase
from tests.integration.dsr.conftest import T0, Seeded, append_subject_events, seed_subject
from tests.unit.dsr.fakes_exports import MemoryExportStore

BUCKET = "dsr-exports-it"
REQUEST = uuid.UUID("00000000-0000-4000-8000-000000000042")
PROMPT = "Summarise the quarterly report for Ada"


@pytest.fixture
def world(migrated_db: ProvisionedDatabase, writer: FieldCrypto) -> dict[str, Seeded]:
    org = migrated_db.create_org("Org A")
    ada = seed_subject(
        migrated_db,
        writer,
        org,
        "user-1",
        email="ada.lovelace@example.com",
        records=[("req-1", PROMPT, "Revenue grew 4 %", "203.0.113.7"), ("req-2", None, None, None)],
    )
    bob = seed_subject(
        migrated_db,
        writer,
        org,
        "user-2",
        email="bob@example.com",
        records=[("req-b", "Bob's secret", "ok", None)],
    )
    append_subject_events(migrated_db, org, ada.subject_id)
    return {"ada": ada, "bob": bob}


@pytest.fixture
def bucket(kms_key: str) -> S3ExportStore:
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    return S3ExportStore(BUCKET, kms_key, s3)


def export(
    db: ProvisionedDatabase, crypto: FieldCrypto, store: Any, org: uuid.UUID, subject: Any, **kw: Any
) -> Any:
    return export_subject(
        db.app,
        crypto,
        store,
        org,
        subject,
        request_id=REQUEST,
        regulation="gdpr",
        formats=kw.pop("formats", FORMATS),
        now=T0,
        link_ttl_s=kw.pop("link_ttl_s", MAX_PRESIGN_S),
        **kw,
    )


def test_an_export_uploads_every_format_once_and_its_links_download_it(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded], bucket: S3ExportStore
) -> None:
    import requests

    ada = world["ada"]
    # When Ada's data is exported in all three formats
    outcome = export(migrated_db, reader, bucket, ada.org_id, ada.subject_id)

    # Then one object per format is under her prefix, with its size and checksum
    assert [o["format"] for o in outcome.objects] == ["json", "csv", "xml"]
    assert bucket.keys(subject_prefix(ada.org_id, str(ada.subject_id))) == sorted(
        export_key(ada.org_id, str(ada.subject_id), REQUEST, ext) for ext in ("json", "zip", "xml")
    )
    assert outcome.rows > 0 and outcome.no_data_held is False and outcome.subject_ref == str(ada.subject_id)
    assert outcome.expires_at == T0 + timedelta(days=7)
    # And each link downloads exactly the file described
    files = {}
    for obj in outcome.objects:
        body = requests.get(outcome.links[obj["format"]], timeout=10).content
        assert len(body) == obj["bytes"] and hashlib.sha256(body).hexdigest() == obj["sha256"]
        assert obj["large"] is False
        files[obj["format"]] = body
    # And it is her data, decrypted, and nothing of Bob
    document = json.loads(files["json"])
    assert document["manifest"]["subject"] == str(ada.subject_id)
    prompts = [r.get("usage_records.prompt_text") for r in document["data"]["content"]]
    assert prompts == [PROMPT]
    for body in (files["json"], files["xml"], *_unzipped(files["csv"])):
        assert b"Bob's secret" not in body and b"bob@example.com" not in body and b"enc:v1:" not in body
    assert b"ada.lovelace@example.com" in files["xml"]


def _unzipped(data: bytes) -> list[bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [archive.read(name) for name in archive.namelist()]


def test_the_streamed_files_are_the_bytes_of_the_in_memory_collection(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded]
) -> None:
    ada = world["ada"]
    store = MemoryExportStore()
    # Given the in-memory collection of the same subject (the reference writer)
    collected = collect_subject_data(
        migrated_db.app,
        reader,
        ada.org_id,
        ada.subject_id,
        request_id=REQUEST,
        regulation="gdpr",
        generated_at=T0,
    )
    # When the streaming export runs, reading 1 row at a time
    outcome = export(migrated_db, reader, store, ada.org_id, ada.subject_id, batch_size=1)
    # Then every format has the same bytes
    for obj in outcome.objects:
        expected = io.BytesIO()
        write_export(collected, obj["format"], expected)
        assert store.objects[obj["key"]].body == expected.getvalue(), obj["format"]
    assert outcome.rows == sum(len(category.rows) for _, category in collected.held())


@pytest.mark.parametrize("subject", [None, uuid.UUID(int=7)], ids=["no-subject", "unknown-uuid"])
def test_a_subject_nobody_holds_still_gets_an_export_saying_no_data_held(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded], subject: uuid.UUID | None
) -> None:
    store = MemoryExportStore()
    outcome = export(migrated_db, reader, store, world["ada"].org_id, subject, formats=["json", "json"])
    assert outcome.no_data_held is True and outcome.rows == 0 and outcome.subject_ref == NO_SUBJECT_REF
    ((key, stored),) = store.objects.items()  # a format asked twice is written once
    assert key == export_key(world["ada"].org_id, NO_SUBJECT_REF, REQUEST, "json")
    document = json.loads(stored.body)
    assert document["manifest"]["no_data_held"] is True and document["data"] == {}


def test_the_export_reads_in_one_read_only_snapshot(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded]
) -> None:
    # Given the database as the export step has it, recording how its transactions are opened
    class Recording:
        def __init__(self, db: Any) -> None:
            self.db, self.snapshots = db, []

        def tenant(self, org_id: Any, *, snapshot: bool = False) -> Any:
            self.snapshots.append(snapshot)
            return self.db.tenant(org_id, snapshot=snapshot)

    db = Recording(migrated_db.app)
    ada = world["ada"]
    # When Ada's data is spooled
    with spool_subject_data(
        db,  # type: ignore[arg-type]
        reader,
        ada.org_id,
        ada.subject_id,
        request_id=REQUEST,
        regulation="gdpr",
        generated_at=T0,
    ) as spooled:
        assert spooled.rows_total > 0
    # Then every table was read in one transaction on one snapshot, read-only (what a snapshot
    # transaction guarantees: tests/integration/db/test_db_connection.py)
    assert db.snapshots == [True]


def test_bad_formats_and_link_lifetimes_are_refused_before_any_read(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded]
) -> None:
    store = MemoryExportStore()
    ada = world["ada"]
    kws: list[dict[str, Any]] = [
        {"formats": ["pdf"]},
        {"formats": []},
        {"link_ttl_s": 0},
        {"link_ttl_s": MAX_PRESIGN_S + 1},
    ]
    for kw in kws:
        with pytest.raises(ValidationFailedError):
            export(migrated_db, reader, store, ada.org_id, ada.subject_id, **kw)
    assert store.objects == {}


def test_an_s3_outage_fails_the_step_with_a_503_and_leaves_no_link(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded]
) -> None:
    store = MemoryExportStore(fail=True)
    with pytest.raises(ExportStoreUnavailableError) as caught:
        export(migrated_db, reader, store, world["ada"].org_id, world["ada"].subject_id)
    assert caught.value.status == 503 and store.links == []


def test_erasure_deletes_the_subject_s_exports_and_no_one_else_s(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded], bucket: S3ExportStore
) -> None:
    ada, bob = world["ada"], world["bob"]
    # Given exports of Ada and of Bob
    export(migrated_db, reader, bucket, ada.org_id, ada.subject_id)
    export(migrated_db, reader, bucket, bob.org_id, bob.subject_id, formats=["json"])
    # When Ada's exports are deleted (the erasure's S3 step)
    assert delete_subject_exports(bucket, ada.org_id, str(ada.subject_id)) == 3
    # Then none of hers is left, Bob's is, and doing it again deletes nothing
    assert bucket.keys(subject_prefix(ada.org_id, str(ada.subject_id))) == []
    assert bucket.keys(subject_prefix(bob.org_id, str(bob.subject_id))) != []
    assert delete_subject_exports(bucket, ada.org_id, str(ada.subject_id)) == 0
