"""The audit API function on its sample events, against PostgreSQL and moto (KMS ECC_NIST_P256 signing
key, exports bucket, audit FIFO queue)."""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
import pytest
import requests

from compliance.audit import merkle
from compliance.audit.checkpoint import KmsSigner, SignedCheckpoint, load_public_key, verify_signature
from compliance.audit.checkpointing import checkpoint_org
from compliance.audit.sink import MemoryAuditSink
from compliance.db import audit
from compliance_tools import audit_cli
from tests.integration.db.test_db_audit import batch

BUCKET = "audit-exports-test"
QUEUE = "audit-test.fifo"
EXPIRY_S = 600
OTHER_ORG_EVENT = "6f1c0a52-0d0e-4d7b-9a43-1c1f5d3fe002"


class KeepAnchor:
    def anchor(self, checkpoint: SignedCheckpoint) -> str:
        return f"kept/{checkpoint.head.number}"


@pytest.fixture
def signing_key(aws: None) -> str:
    kms = boto3.client("kms")
    return str(kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"])


@pytest.fixture
def queue_url(aws: None) -> str:
    sqs = boto3.client("sqs")
    created = sqs.create_queue(
        QueueName=QUEUE, Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    )
    return str(created["QueueUrl"])


@pytest.fixture
def download_role(aws: None) -> str:
    """The export download role (moto does not enforce its trust or permissions; the infra tests do)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    created = boto3.client("iam").create_role(
        RoleName="export-download", AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=3600
    )
    return str(created["Role"]["Arn"])


@pytest.fixture
def api(
    aws: None,
    signing_key: str,
    queue_url: str,
    download_role: str,
    org: str,
    db_env: dict[str, str],
    fresh_import: Any,
) -> Any:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    env = {
        **db_env,
        "AUDIT_QUEUE_URL": queue_url,
        "AUDIT_SIGNING_KEY_ID": signing_key,
        "EXPORTS_BUCKET": BUCKET,
        "EXPORT_DOWNLOAD_ROLE_ARN": download_role,
        "EXPORT_URL_EXPIRY_S": str(EXPIRY_S),
    }
    return fresh_import("functions.audit.api", env)


@pytest.fixture
def seeded(api: Any, migrated_db: Any, org: str, signing_key: str) -> list[Any]:
    """13 events: checkpoint 1 covers 6, checkpoint 2 covers 10, the last 3 are not yet checkpointed."""
    org_id = UUID(org)
    signer = KmsSigner(boto3.client("kms"), signing_key)
    for size in (6, 4):
        with migrated_db.app.tenant(org_id) as conn:
            audit.append_events(conn, org_id, batch(org_id, size, start=100 * size))
        checkpoint_org(migrated_db.app, org_id, signer, KeepAnchor(), now=datetime.now(UTC))
    with migrated_db.app.tenant(org_id) as conn:
        audit.append_events(conn, org_id, batch(org_id, 3, start=1000))
        return audit.read_events(conn, limit=100)


@pytest.fixture
def other_org(migrated_db: Any, signing_key: str) -> UUID:
    """Another organisation with one event (id OTHER_ORG_EVENT) and checkpoint 1."""
    other: UUID = migrated_db.create_org("Other")
    with migrated_db.app.tenant(other) as conn:
        audit.append_events(
            conn, other, [batch(other, 1)[0].model_copy(update={"event_id": UUID(OTHER_ORG_EVENT)})]
        )
    checkpoint_org(
        migrated_db.app,
        other,
        KmsSigner(boto3.client("kms"), signing_key),
        KeepAnchor(),
        now=datetime.now(UTC),
    )
    return other


def call(
    module: Any,
    event: dict[str, Any],
    ctx: Any,
    *,
    path: str | None = None,
    query: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    body: Any = None,
    roles: str | None = None,
) -> tuple[int, Any]:
    if path is not None:
        event["path"] = path
    if query is not None:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    if params is not None:
        event["pathParameters"] = params
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    if roles is not None:
        event["requestContext"]["authorizer"]["roles"] = roles
    response = module.handler(event, ctx)
    headers = response.get("headers") or {k: v[0] for k, v in response.get("multiValueHeaders", {}).items()}
    content_type = headers.get("Content-Type", "")
    parsed = json.loads(response["body"]) if "json" in content_type else response["body"]
    return response["statusCode"], parsed


def queued_events(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return out
        for message in messages:
            out.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


# ---------------------------------------------------------------------------------- events


def test_events_page_through_with_filters(
    api: Any, seeded: list[Any], event: Any, lambda_context: Any
) -> None:
    # When the caller pages through its events 5 at a time
    seqs: list[int] = []
    cursor: str | None = None
    while True:
        query = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        status, page = call(api, event("audit/api-list-events.json"), lambda_context, query=query)
        assert status == 200
        seqs += [item["seq"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Then it sees all 13, once each, in order
    assert seqs == list(range(1, 14))
    # And a filter narrows them (and is echoed in no log)
    actor = seeded[0].actor
    status, page = call(api, event("audit/api-list-events.json"), lambda_context, query={"actor": actor})
    assert status == 200 and [i["actor"] for i in page["items"]] == [actor]


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "eyJ2IjoxLCJzIjo1fQ"},
        {"cursor": "x" * 201},
        {"cursor": "not base64!"},
        {"limit": "0"},
        {"limit": "1001"},
        {"from": "2026-11-01T00:00:00"},
        {"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
        {"actor": "a" * 201},
        {"event_type": "e" * 65},
        {"resource": "r" * 257},
    ],
)
def test_bad_query_parameters_are_400(
    api: Any, seeded: list[Any], event: Any, lambda_context: Any, query: dict[str, str]
) -> None:
    status, body = call(api, event("audit/api-list-events.json"), lambda_context, query=query)
    assert status == 400 and body["status"] == 400


def test_get_event_and_404s(
    api: Any, seeded: list[Any], other_org: UUID, event: Any, lambda_context: Any
) -> None:
    first = str(seeded[0].event_id)
    status, body = call(
        api,
        event("audit/api-get-event.json"),
        lambda_context,
        path=f"/v1/audit/events/{first}",
        params={"event_id": first},
    )
    assert status == 200 and body["seq"] == 1 and body["event_hash"] == seeded[0].event_hash
    for unknown in (OTHER_ORG_EVENT, "6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f9999"):
        status, _ = call(
            api,
            event("audit/api-get-event.json"),
            lambda_context,
            path=f"/v1/audit/events/{unknown}",
            params={"event_id": unknown},
        )
        assert status == 404
    status, _ = call(
        api,
        event("audit/api-get-event.json"),
        lambda_context,
        path="/v1/audit/events/nope",
        params={"event_id": "nope"},
    )
    assert status == 400


# ---------------------------------------------------------------------------------- proofs


def public_key(api: Any, event: Any, lambda_context: Any) -> Any:
    status, pem = call(api, event("audit/api-public-key.json"), lambda_context)
    assert status == 200 and pem.startswith("-----BEGIN PUBLIC KEY-----")
    return load_public_key(pem.encode())


def test_inclusion_proof_verifies_with_the_published_key(
    api: Any, seeded: list[Any], event: Any, lambda_context: Any
) -> None:
    key = public_key(api, event, lambda_context)
    target = seeded[3]
    path = f"/v1/audit/events/{target.event_id}/proof"
    for query, size in (({}, 10), ({"checkpoint": "1"}, 6)):
        status, proof = call(
            api,
            event("audit/api-event-proof.json"),
            lambda_context,
            path=path,
            params={"event_id": str(target.event_id)},
            query=query,
        )
        assert status == 200 and proof["tree_size"] == size and proof["leaf_index"] == 3
        verify_signature(SignedCheckpoint.model_validate(proof["checkpoint"]), key)
        assert merkle.verify_inclusion(
            merkle.leaf_hash(bytes.fromhex(target.event_hash)),
            3,
            size,
            [bytes.fromhex(p) for p in proof["audit_path"]],
            bytes.fromhex(proof["checkpoint"]["head"]["root_hash"]),
        )


def test_proof_statuses(
    api: Any, seeded: list[Any], other_org: UUID, event: Any, lambda_context: Any
) -> None:
    def status_of(event_id: str, query: dict[str, str] | None = None) -> int:
        status, _ = call(
            api,
            event("audit/api-event-proof.json"),
            lambda_context,
            path=f"/v1/audit/events/{event_id}/proof",
            params={"event_id": event_id},
            query=query or {},
        )
        return int(status)

    newest = str(seeded[-1].event_id)
    assert status_of(newest) == 409  # newer than the latest checkpoint
    assert status_of(str(seeded[7].event_id), {"checkpoint": "1"}) == 409
    assert status_of(OTHER_ORG_EVENT) == 404
    assert status_of(str(seeded[0].event_id), {"checkpoint": "99"}) == 404
    assert status_of(str(seeded[0].event_id), {"checkpoint": "0"}) == 400


def test_checkpoints_and_consistency(
    api: Any, seeded: list[Any], other_org: UUID, event: Any, lambda_context: Any
) -> None:
    key = public_key(api, event, lambda_context)
    status, page = call(api, event("audit/api-list-checkpoints.json"), lambda_context, query={"limit": "1"})
    assert status == 200 and [c["head"]["number"] for c in page["items"]] == [1] and page["next_after"] == 1
    status, page = call(api, event("audit/api-list-checkpoints.json"), lambda_context, query={"after": "1"})
    assert (
        status == 200
        and [c["head"]["tree_size"] for c in page["items"]] == [10]
        and page["next_after"] is None
    )
    status, one = call(api, event("audit/api-get-checkpoint.json"), lambda_context)
    assert status == 200 and one["head"]["tree_size"] == 6
    verify_signature(SignedCheckpoint.model_validate(one), key)

    status, proof = call(api, event("audit/api-consistency.json"), lambda_context)
    assert status == 200
    old, new = proof["from"]["head"], proof["to"]["head"]
    assert merkle.verify_consistency(
        old["tree_size"],
        new["tree_size"],
        bytes.fromhex(old["root_hash"]),
        bytes.fromhex(new["root_hash"]),
        [bytes.fromhex(p) for p in proof["proof"]],
    )

    def consistency(a: str, b: str) -> int:
        status, _ = call(
            api,
            event("audit/api-consistency.json"),
            lambda_context,
            path=f"/v1/audit/checkpoints/{a}/consistency/{b}",
            params={"number": a, "to_number": b},
        )
        return int(status)

    assert consistency("2", "1") == 400
    assert consistency("1", "99") == 404
    assert consistency("0", "1") == 400
    # The other organisation has only checkpoint 1: its existence does not make our 3 appear
    assert consistency("1", "3") == 404
    status, _ = call(
        api,
        event("audit/api-get-checkpoint.json"),
        lambda_context,
        path="/v1/audit/checkpoints/3",
        params={"number": "3"},
    )
    assert status == 404


# ---------------------------------------------------------------------------------- verify


def test_verify_whole_log_and_ranges(api: Any, seeded: list[Any], event: Any, lambda_context: Any) -> None:
    status, verdict = call(api, event("audit/api-verify.json"), lambda_context, query={})
    assert status == 200 and verdict["valid"] and verdict["checked"] == 13
    assert verdict["checkpoint"] == {
        "number": 2,
        "tree_size": 10,
        "signature_valid": True,
        "root_matches": True,
    }
    status, verdict = call(
        api, event("audit/api-verify.json"), lambda_context, query={"from_seq": "3", "to_seq": "5"}
    )
    assert status == 200 and verdict["valid"] and verdict["checked"] == 3 and verdict["checkpoint"] is None
    for bad in ({"from_seq": "5", "to_seq": "3"}, {"to_seq": "14"}, {"from_seq": "0"}, {"from_seq": "x"}):
        status, _ = call(api, event("audit/api-verify.json"), lambda_context, query=bad)
        assert status == 400


def test_verify_names_a_tampered_event(
    api: Any, seeded: list[Any], migrated_db: Any, org: str, event: Any, lambda_context: Any
) -> None:
    # Given event 4 edited by someone who bypassed the append-only triggers
    with migrated_db.owner() as conn:
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        conn.execute(
            "UPDATE audit_events SET actor = 'api_key:intruder' WHERE org_id = %s AND seq = 4", (org,)
        )
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    status, verdict = call(api, event("audit/api-verify.json"), lambda_context, query={})
    assert status == 200 and not verdict["valid"]
    assert (verdict["first_bad_seq"], verdict["reason"]) == (4, "hash_mismatch")


# ---------------------------------------------------------------------------------- exports


def test_export_url_downloads_an_export_the_cli_verifies(
    api: Any, seeded: list[Any], queue_url: str, event: Any, lambda_context: Any, tmp_path: Path
) -> None:
    queued_events(queue_url)  # drop the api.request events of the seeding calls, if any
    # When a JSONL export of the whole log is created
    status, created = call(api, event("audit/api-create-export.json"), lambda_context)
    assert status == 201 and created["events"] == 13 and created["format"] == "jsonl"
    # Then its URLs are SigV4 presigned GETs with the configured expiry, signed by one session of the
    # download role (temporary credentials with a token), not by the function's own credentials
    signed_by = set()
    for url in (created["url"], created["checkpoints_url"]):
        params = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
        assert params["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and params["X-Amz-Expires"] == [
            str(EXPIRY_S)
        ]
        assert "X-Amz-Security-Token" in params
        signed_by.add(params["X-Amz-Credential"][0].split("/")[0])
    assert len(signed_by) == 1 and signed_by != {"testing"}
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert 0 < (expires_at - datetime.now(UTC)).total_seconds() <= EXPIRY_S
    # And both download, and the offline verifier accepts them with the published key
    (tmp_path / "events.jsonl").write_bytes(requests.get(created["url"], timeout=10).content)
    (tmp_path / "checkpoints.json").write_bytes(requests.get(created["checkpoints_url"], timeout=10).content)
    status, pem = call(api, event("audit/api-public-key.json"), lambda_context)
    (tmp_path / "key.pem").write_text(pem)
    code = audit_cli.verify(
        tmp_path / "events.jsonl", checkpoints=None, public_key=tmp_path / "key.pem", as_json=True
    )
    assert code == 0
    # And the export was itself audited, as was each call
    types = [e["event_type"] for e in queued_events(queue_url)]
    assert "audit.export_created" in types and "api.request" in types


def test_csv_export_of_a_range(api: Any, seeded: list[Any], event: Any, lambda_context: Any) -> None:
    status, created = call(
        api,
        event("audit/api-create-export.json"),
        lambda_context,
        body={"format": "csv", "from_seq": 2, "to_seq": 5},
    )
    assert status == 201 and (created["from_seq"], created["to_seq"], created["events"]) == (2, 5, 4)
    key = urllib.parse.urlparse(created["url"]).path.lstrip("/").removeprefix(f"{BUCKET}/")
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    assert body.startswith("seq,event_id,") and len(body.strip().split("\r\n")) == 5


@pytest.mark.parametrize(
    "body",
    [
        {"format": "xml"},
        {"format": "csv", "bucket": "elsewhere"},
        {"format": "csv", "from_seq": 0},
        {"format": "csv", "from_seq": 5, "to_seq": 4},
        {"format": "csv", "to_seq": 14},
        "not json",
    ],
)
def test_bad_export_requests_are_400(
    api: Any, seeded: list[Any], event: Any, lambda_context: Any, body: Any
) -> None:
    status, _ = call(api, event("audit/api-create-export.json"), lambda_context, body=body)
    assert status == 400


def test_export_is_refused_when_the_audit_trail_is_down(
    api: Any, seeded: list[Any], event: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "_sink", lambda: MemoryAuditSink(fail=True))
    status, body = call(api, event("audit/api-create-export.json"), lambda_context)
    assert status == 503 and body["title"] == "Audit trail unavailable"


def test_export_is_503_when_the_download_role_cannot_be_assumed(
    api: Any,
    seeded: list[Any],
    queue_url: str,
    event: Any,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given STS refusing the download role (e.g. a trust policy that does not name the function's role)
    from botocore.exceptions import ClientError

    from compliance.audit.download_links import DownloadSigner, s3_presigner

    class DeniedSts:
        def assume_role(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    denied = DownloadSigner(
        DeniedSts(), "arn:aws:iam::123456789012:role/x", BUCKET, presigner_for=s3_presigner("us-east-1")
    )
    monkeypatch.setattr(api, "_download_links", lambda: denied)
    queued_events(queue_url)
    # When an export is created
    status, body = call(api, event("audit/api-create-export.json"), lambda_context)
    # Then it is the typed 503, and no export event was recorded for links nobody got
    assert status == 503 and body["title"] == "Export download links unavailable"
    assert "audit.export_created" not in [e["event_type"] for e in queued_events(queue_url)]


# ---------------------------------------------------------------------------------- roles


ALL_ROUTES = [
    "audit/api-list-events.json",
    "audit/api-get-event.json",
    "audit/api-event-proof.json",
    "audit/api-verify.json",
    "audit/api-list-checkpoints.json",
    "audit/api-get-checkpoint.json",
    "audit/api-consistency.json",
    "audit/api-public-key.json",
    "audit/api-create-export.json",
]


@pytest.mark.parametrize("name", ALL_ROUTES)
def test_other_roles_are_403(api: Any, event: Any, lambda_context: Any, name: str) -> None:
    status, body = call(api, event(name), lambda_context, roles="cost_admin,ingest,dpo")
    assert status == 403 and body["title"] == "Forbidden"


@pytest.mark.parametrize(
    "name", ["audit/api-list-events.json", "audit/api-verify.json", "audit/api-public-key.json"]
)
def test_system_admins_may_read_the_audit_trail(
    api: Any, seeded: list[Any], event: Any, lambda_context: Any, name: str
) -> None:
    status, _ = call(api, event(name), lambda_context, roles="system_admin")
    assert status == 200
