"""The ingest slice end to end: HTTP -> API Gateway emulator -> authorizer -> ingest λ -> SQS (moto) ->
processor λ -> PostgreSQL, all from the synthesized template."""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from compliance.models.auth import Role
from compliance_tools.loadgen import ApiClient, post_concurrently, usage_records, wait_for
from compliance_tools.seed import create_key

pytestmark = pytest.mark.e2e


def new_org_with_key(deployed: Any, roles: list[Role]) -> tuple[str, str]:
    from compliance.db.organisations import create_organisation

    with psycopg.connect(deployed.owner_dsn, autocommit=True) as conn:
        org = create_organisation(conn, f"e2e-{uuid4().hex[:8]}")
        return str(org), create_key(conn, org, "e2e", roles)


def stored_request_ids(deployed: Any, org: str) -> list[str]:
    with psycopg.connect(deployed.owner_dsn) as conn:
        rows = conn.execute("SELECT request_id FROM usage_records WHERE org_id = %s", (org,)).fetchall()
    return [row[0] for row in rows]


def queue_depth(deployed: Any, logical_prefix: str) -> int:
    sqs = deployed.runtime.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=deployed.queue_url(logical_prefix),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_ten_thousand_records_arrive_exactly_once(deployed: Any) -> None:
    # Given an organisation with an ingest key and 10,000 distinct records
    org, key = new_org_with_key(deployed, [Role.INGEST])
    records = usage_records(10_000, prefix="e2e")
    # When they are posted over HTTP in batches of 500 from 4 clients
    statuses = post_concurrently(deployed.base_url, key, records, batch_size=500, concurrency=4)
    # Then every batch is accepted, every record is stored exactly once, and no queue holds anything back
    assert statuses == [202] * 20
    assert wait_for(lambda: len(stored_request_ids(deployed, org)) >= 10_000, timeout_s=300)
    assert wait_for(lambda: queue_depth(deployed, "IngestQueue") == 0, timeout_s=30)
    ids = stored_request_ids(deployed, org)
    assert len(ids) == 10_000 and set(ids) == {r["request_id"] for r in records}
    assert queue_depth(deployed, "IngestDeadLetterQueue") == 0
    # And when the platform retries a batch, nothing is duplicated
    assert post_concurrently(deployed.base_url, key, records[:500], concurrency=1) == [202]
    assert wait_for(lambda: queue_depth(deployed, "IngestQueue") == 0, timeout_s=30)
    assert len(stored_request_ids(deployed, org)) == 10_000


def problem(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status
    return body


def test_bad_requests_get_problem_json_and_store_nothing(deployed: Any) -> None:
    org, key = new_org_with_key(deployed, [Role.INGEST])
    client = ApiClient(deployed.base_url, key)
    good = usage_records(1, prefix="bad")[0]
    try:
        # Malformed JSON
        assert (
            problem(client.request("POST", "/v1/usage", raw=b'{"records": [')).get("title")
            == "Invalid request"
        )
        # Unknown field: named in the errors
        unknown = problem(client.request("POST", "/v1/usage", {"records": [dict(good, tokens=5)]}))
        assert unknown["status"] == 400 and unknown["errors"][0]["field"] == "records.0.tokens"
        # Schema violation
        assert (
            problem(client.request("POST", "/v1/usage", {"records": [dict(good, cost="-1")]}))["status"]
            == 400
        )
        # Over the batch limit
        too_many = [dict(good, request_id=f"bad-{i}") for i in range(501)]
        assert problem(client.request("POST", "/v1/usage", {"records": too_many}))["status"] == 413
    finally:
        client.close()
    assert stored_request_ids(deployed, org) == []


@pytest.mark.parametrize("authorization", [None, "Bearer cpk_notarealkey", "Token abc"])
def test_missing_or_wrong_keys_are_401(deployed: Any, authorization: str | None) -> None:
    client = ApiClient(deployed.base_url)
    headers = {} if authorization is None else {"Authorization": authorization}
    try:
        response = client.request("POST", "/v1/usage", {"records": usage_records(1)}, headers=headers)
    finally:
        client.close()
    assert response.status == 401 and problem(response)["title"] == "Unauthorized"


def test_revoked_and_expired_keys_are_401_and_roles_are_403(deployed: Any) -> None:
    admin = ApiClient(deployed.base_url, deployed.admin_key)
    try:
        created = admin.request("POST", "/v1/api-keys", {"name": "soon revoked", "roles": ["ingest"]}).json()
        assert admin.request("POST", f"/v1/api-keys/{created['id']}/revoke").status == 200
        viewer = admin.request("POST", "/v1/api-keys", {"name": "viewer", "roles": ["cost_viewer"]}).json()
    finally:
        admin.close()
    with psycopg.connect(deployed.owner_dsn, autocommit=True) as conn:
        org, expired = new_org_with_key(deployed, [Role.INGEST])
        conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE org_id = %s", (org,))
    for key, status in ((created["key"], 401), (expired, 401), (viewer["key"], 403)):
        client = ApiClient(deployed.base_url, key)
        try:
            response = client.request("POST", "/v1/usage", {"records": usage_records(1, prefix=str(status))})
        finally:
            client.close()
        assert response.status == status, (key[:8], response.body)
        problem(response)


def test_another_orgs_key_ids_are_404(deployed: Any) -> None:
    _, other_key = new_org_with_key(deployed, [Role.SYSTEM_ADMIN])
    other = ApiClient(deployed.base_url, other_key)
    try:
        their_key_id = other.request("GET", "/v1/api-keys").json()["items"][0]["id"]
    finally:
        other.close()
    admin = ApiClient(deployed.base_url, deployed.admin_key)
    try:
        assert admin.request("GET", f"/v1/api-keys/{their_key_id}").status == 404
        assert problem(admin.request("POST", f"/v1/api-keys/{their_key_id}/revoke"))["status"] == 404
    finally:
        admin.close()


def test_a_poison_message_is_dead_lettered_without_blocking_valid_ones(deployed: Any) -> None:
    # Given a message no processor can handle, queued among valid traffic
    sqs = deployed.runtime.client("sqs")
    queue = deployed.queue_url("IngestQueue")
    dlq = deployed.queue_url("IngestDeadLetterQueue")
    # The template's 180 s visibility timeout would make three receives take minutes: shorten it here.
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "1"})
    time.sleep(2)  # receives already in flight (1 s long polls) still apply the old timeout
    try:
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"org_id": "not-a-uuid", "records": []}))
        org, key = new_org_with_key(deployed, [Role.INGEST])
        assert post_concurrently(deployed.base_url, key, usage_records(300, prefix="poison-mix")) == [202]
        # Then the valid records are stored, and the poison message lands in the DLQ after its retries
        assert wait_for(lambda: len(stored_request_ids(deployed, org)) == 300, timeout_s=60)
        assert wait_for(lambda: queue_depth(deployed, "IngestDeadLetterQueue") == 1, timeout_s=60)
        message = sqs.receive_message(QueueUrl=dlq, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
        assert json.loads(message["Body"])["org_id"] == "not-a-uuid"
        assert int(message["Attributes"]["ApproximateReceiveCount"]) >= 3
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
    finally:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "180"})
