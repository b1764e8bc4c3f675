"""The audit trail end to end, on the synthesized template: producers -> SQS FIFO (moto) -> append λ ->
PostgreSQL; scheduled checkpoint λ -> KMS signature -> S3 Object Lock; audit API over real HTTP; the
offline verifier on a downloaded export."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from compliance.audit.events import AuditEventIn, AuditResult
from compliance.models.auth import Role
from compliance_tools.loadgen import ApiClient, wait_for
from compliance_tools.seed import create_key

pytestmark = pytest.mark.e2e

PRODUCERS = 8
ORGS = 3
EVENTS_PER_PRODUCER = 45  # 15 per organisation per producer: 360 events in all


def new_org(deployed: Any, roles: list[Role]) -> tuple[str, str]:
    from compliance.db.organisations import create_organisation

    with psycopg.connect(deployed.owner_dsn, autocommit=True) as conn:
        org = create_organisation(conn, f"e2e-audit-{uuid4().hex[:8]}")
        return str(org), create_key(conn, org, "e2e-audit", roles)


def stored_events(deployed: Any, org: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(deployed.owner_dsn) as conn:
        return conn.execute(
            "SELECT seq, event_id, event_type, details FROM audit_events WHERE org_id = %s ORDER BY seq",
            (org,),
        ).fetchall()


def count_events(deployed: Any, org: str, event_type: str | None = None) -> int:
    return sum(1 for row in stored_events(deployed, org) if event_type in (None, row[2]))


def queue_depth(deployed: Any, queue_url: str) -> int:
    attributes = deployed.runtime.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def producer_event(org: str, producer: int, n: int) -> AuditEventIn:
    return AuditEventIn(
        event_id=uuid4(),
        occurred_at=datetime.now(UTC),
        org_id=UUID(org),
        event_type="e2e.produced",
        actor=f"producer:{producer}",
        resource=f"test:{producer}",
        action="produce",
        result=AuditResult.SUCCESS,
        details={"producer": producer, "n": n},
    )


def checkpoint_now(deployed: Any) -> None:
    rules = [lid for lid, res in deployed.runtime.physical.items() if res.type == "AWS::Events::Rule"]
    checkpoint_rules = [lid for lid in rules if "Checkpoint" in lid]
    assert len(checkpoint_rules) == 1, rules
    deployed.runtime.fire_rule(checkpoint_rules[0])


@pytest.fixture(scope="module")
def audited_orgs(deployed: Any) -> list[tuple[str, str]]:
    """Three organisations whose chains were filled by 8 concurrent producers, each with an auditor key."""
    from compliance.audit.sqs_sink import SqsAuditSink

    orgs = [new_org(deployed, [Role.AUDITOR]) for _ in range(ORGS)]
    queue_url = deployed.runtime.outputs["AuditQueueUrl"]
    errors: list[BaseException] = []

    def produce(producer: int) -> None:
        sink = SqsAuditSink(deployed.runtime.client("sqs"), queue_url)
        try:
            for n in range(EVENTS_PER_PRODUCER):
                org = orgs[n % ORGS][0]
                sink.publish([producer_event(org, producer, n)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(PRODUCERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = PRODUCERS * EVENTS_PER_PRODUCER // ORGS
    for org, _ in orgs:
        assert wait_for(
            lambda org=org: count_events(deployed, org, "e2e.produced") >= expected, timeout_s=180
        )
    return orgs


def test_eight_producers_three_orgs_keep_per_org_order_without_gaps_or_duplicates(
    deployed: Any, audited_orgs: list[tuple[str, str]]
) -> None:
    # Given 8 producers that each sent 45 events round-robin over 3 organisations (the fixture)
    for org, _ in audited_orgs:
        rows = stored_events(deployed, org)
        produced = [row for row in rows if row[2] == "e2e.produced"]
        # Then each organisation's chain is 1..n with no gap and no duplicate event
        assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
        assert len({row[1] for row in rows}) == len(rows)
        # And it holds every produced event exactly once
        assert len(produced) == PRODUCERS * EVENTS_PER_PRODUCER // ORGS
        # And each producer's events appear in the order that producer sent them
        by_producer: dict[int, list[int]] = defaultdict(list)
        for row in produced:
            by_producer[row[3]["producer"]].append(row[3]["n"])
        assert set(by_producer) == set(range(PRODUCERS))
        for ns in by_producer.values():
            assert ns == sorted(ns)


def test_a_redelivered_event_is_not_appended_twice(
    deployed: Any, audited_orgs: list[tuple[str, str]]
) -> None:
    # Given an event already in the chain
    org, _ = audited_orgs[0]
    event = producer_event(org, 99, 0)
    from compliance.audit.sqs_sink import SqsAuditSink

    queue_url = deployed.runtime.outputs["AuditQueueUrl"]
    SqsAuditSink(deployed.runtime.client("sqs"), queue_url).publish([event])
    assert wait_for(lambda: count_events(deployed, org, "e2e.produced") == 121, timeout_s=60)
    # When it arrives again past SQS's deduplication (another deduplication id)
    deployed.runtime.client("sqs").send_message(
        QueueUrl=queue_url,
        MessageBody=event.model_dump_json(),
        MessageGroupId=org,
        MessageDeduplicationId=f"redelivery-{uuid4()}",
    )
    assert wait_for(lambda: queue_depth(deployed, queue_url) == 0, timeout_s=60)
    # Then the chain still holds it once
    ids = [row[1] for row in stored_events(deployed, org)]
    assert ids.count(event.event_id) == 1


def test_a_malformed_event_is_dead_lettered_with_its_reason(
    deployed: Any, audited_orgs: list[tuple[str, str]]
) -> None:
    # Given a message that is not an audit event, between two good ones of the same organisation
    from compliance.audit.sqs_sink import SqsAuditSink

    org, _ = audited_orgs[1]
    before = count_events(deployed, org)
    queue_url = deployed.runtime.outputs["AuditQueueUrl"]
    dlq_url = deployed.runtime.outputs["AuditDeadLetterQueueUrl"]
    sqs = deployed.runtime.client("sqs")
    sink = SqsAuditSink(sqs, queue_url)
    sink.publish([producer_event(org, 100, 0)])
    sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps({"event_type": "x", "org_id": org}),
        MessageGroupId=org,
        MessageDeduplicationId=str(uuid4()),
    )
    sink.publish([producer_event(org, 100, 1)])
    # When the append function has consumed them
    assert wait_for(lambda: count_events(deployed, org) == before + 2, timeout_s=60)
    # Then the good ones are appended and the bad one waits in the DLQ with its reason
    received = sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=5
    ).get("Messages", [])
    assert len(received) == 1
    assert received[0]["MessageAttributes"]["reason"]["StringValue"]
    assert json.loads(received[0]["Body"])["event_type"] == "x"


def test_checkpoints_are_signed_anchored_and_prove_inclusion_and_consistency(
    deployed: Any, audited_orgs: list[tuple[str, str]], tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from compliance.audit import merkle
    from compliance.audit.checkpoint import SignedCheckpoint, head_bytes

    org, key = audited_orgs[2]
    client = ApiClient(deployed.base_url, key)
    try:
        # Given a first checkpoint, more events, and a second checkpoint
        checkpoint_now(deployed)
        first = client.request("GET", "/v1/audit/checkpoints")
        assert first.status == 200, first.body
        assert len(first.json()["items"]) == 1
        client.request("GET", "/v1/audit/verify")  # an API call: one more audit event
        assert wait_for(lambda: count_events(deployed, org, "api.request") >= 2, timeout_s=60)
        checkpoint_now(deployed)
        listed = client.request("GET", "/v1/audit/checkpoints").json()["items"]
        assert [item["head"]["number"] for item in listed] == [1, 2]

        # Then each checkpoint's signature verifies with the published public key (cryptography, RAW message)
        pem = client.request("GET", "/v1/audit/public-key")
        assert pem.status == 200
        public_key = serialization.load_pem_public_key(pem.body)
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        for item in listed:
            checkpoint = SignedCheckpoint.model_validate(item)
            public_key.verify(
                base64.b64decode(checkpoint.signature), head_bytes(checkpoint.head), ec.ECDSA(hashes.SHA256())
            )

        # And the second is anchored in the Object Lock bucket under compliance-mode retention
        s3 = deployed.runtime.client("s3")
        bucket = deployed.runtime.outputs["AuditAnchorBucketName"]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"checkpoints/{org}/")["Contents"]]
        assert len(keys) == 2
        # (HeadObject: moto answers GetObjectRetention with a 500)
        anchored = s3.head_object(Bucket=bucket, Key=sorted(keys)[-1])
        assert anchored["ObjectLockMode"] == "COMPLIANCE"
        assert anchored["ObjectLockRetainUntilDate"] > datetime.now(UTC)

        # And an event's inclusion proof verifies against the latest checkpoint's root
        event_id = stored_events(deployed, org)[4][1]
        proof = client.request("GET", f"/v1/audit/events/{event_id}/proof")
        assert proof.status == 200, proof.body
        body = proof.json()
        assert merkle.verify_inclusion(
            bytes.fromhex(body["leaf_hash"]),
            body["leaf_index"],
            body["tree_size"],
            [bytes.fromhex(h) for h in body["audit_path"]],
            bytes.fromhex(body["root_hash"]),
        )
        # And checkpoint 1 is consistent with checkpoint 2
        consistency = client.request("GET", "/v1/audit/checkpoints/1/consistency/2")
        assert consistency.status == 200, consistency.body
        c = consistency.json()
        assert merkle.verify_consistency(
            c["from"]["head"]["tree_size"],
            c["to"]["head"]["tree_size"],
            bytes.fromhex(c["from"]["head"]["root_hash"]),
            bytes.fromhex(c["to"]["head"]["root_hash"]),
            [bytes.fromhex(h) for h in c["proof"]],
        )
    finally:
        client.close()


def test_an_export_downloads_and_verifies_offline(
    deployed: Any, audited_orgs: list[tuple[str, str]], tmp_path: Path
) -> None:
    from compliance_tools.audit_cli import verify

    _, key = audited_orgs[2]
    client = ApiClient(deployed.base_url, key)
    try:
        # Given the checkpointed chain of an organisation
        checkpoint_now(deployed)
        (tmp_path / "key.pem").write_bytes(client.request("GET", "/v1/audit/public-key").body)
        # When an auditor exports it and downloads the files through the presigned URLs
        created = client.request("POST", "/v1/audit/exports", {"format": "jsonl"})
        assert created.status == 201, created.body
        export = created.json()
        for url, name in ((export["url"], "events.jsonl"), (export["checkpoints_url"], "checkpoints.json")):
            with urllib.request.urlopen(url, timeout=30) as response:
                (tmp_path / name).write_bytes(response.read())
        # Then the offline verifier accepts it
        args = {
            "checkpoints": tmp_path / "checkpoints.json",
            "public_key": tmp_path / "key.pem",
            "as_json": True,
        }
        assert verify(tmp_path / "events.jsonl", **args) == 0
        # And rejects it after one event's detail changes
        lines = (tmp_path / "events.jsonl").read_text().splitlines()
        tampered = json.loads(lines[3])
        tampered["action"] = "tampered"
        lines[3] = json.dumps(tampered)
        (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
        assert verify(tmp_path / "events.jsonl", **args) == 1
    finally:
        client.close()


def test_bad_ranges_unknown_ids_and_other_orgs_events(
    deployed: Any, audited_orgs: list[tuple[str, str]]
) -> None:
    (org_a, key_a), (org_b, _) = audited_orgs[0], audited_orgs[1]
    client = ApiClient(deployed.base_url, key_a)
    try:
        assert client.request("GET", "/v1/audit/verify?from_seq=0").status == 400
        assert client.request("GET", "/v1/audit/verify?from_seq=9&to_seq=3").status == 400
        assert client.request("GET", "/v1/audit/checkpoints/2/consistency/1").status == 400
        assert client.request("GET", f"/v1/audit/events/{uuid4()}/proof").status == 404
        assert client.request("GET", "/v1/audit/events/not-a-uuid").status in (400, 404)
        other = stored_events(deployed, org_b)[0][1]
        assert client.request("GET", f"/v1/audit/events/{other}").status == 404
        page = client.request("GET", "/v1/audit/events?limit=1000&event_type=e2e.produced").json()
        assert page["items"] and {item["org_id"] for item in page["items"]} == {org_a}
        assert client.request("GET", "/v1/audit/events?cursor=garbage").status == 400
    finally:
        client.close()
