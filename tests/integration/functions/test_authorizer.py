"""The REQUEST authorizer: a good key yields an Allow policy with org and roles; anything else is 401."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from compliance.audit.events import SYSTEM_ORG_ID, AuditEventIn, AuditResult
from compliance.audit.sink import MemoryAuditSink
from compliance.models.auth import Role
from compliance_tools.seed import create_key


@pytest.fixture
def authorizer(aws: None, org: str, db_env: dict[str, str], audited: Any) -> Any:
    return audited("functions.auth.authorizer", db_env, sink_attr="_audit_sink")


@pytest.fixture
def key(migrated_db: Any, org: str) -> str:
    with migrated_db.owner() as conn:
        return create_key(conn, UUID(org), "ingest", [Role.INGEST])


def request(event: Any, authorization: str | None) -> dict[str, Any]:
    req: dict[str, Any] = event("auth/authorizer-request.json")
    req["headers"] = {} if authorization is None else {"Authorization": authorization}
    return req


def key_id_of(migrated_db: Any, key: str) -> str:
    with migrated_db.owner() as conn:
        row = conn.execute("SELECT id FROM api_keys WHERE prefix = %s", (key.split("_")[1],)).fetchone()
    return str(row[0])


def only_failure(audit: MemoryAuditSink) -> AuditEventIn:
    assert [e.event_type for e in audit.events] == ["auth.failure"]
    failure = audit.events[0]
    assert failure.actor == "anonymous" and failure.result is AuditResult.DENIED
    assert failure.action == "authenticate" and failure.resource == "route:POST:/v1/usage"
    assert str(failure.ip_address) == "127.0.0.1" and failure.user_agent == "curl/8.5.0"
    assert failure.request_id == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    return failure


def test_a_valid_key_is_allowed_with_its_org_and_roles(
    authorizer: Any, audit: MemoryAuditSink, key: str, org: str, event: Any, lambda_context: Any
) -> None:
    result = authorizer.handler(request(event, f"Bearer {key}"), lambda_context)
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "arn:aws:execute-api:us-east-1:000000000000:localapi/prod/*/*"
    assert result["context"]["org_id"] == org and result["context"]["roles"] == "ingest"
    # A successful authentication is recorded by the API's api.request event, not here
    assert audit.events == []


@pytest.mark.parametrize(
    ("header", "reason", "prefix"),
    [
        (None, "missing", None),
        ("", "missing", None),
        ("Basic dXNlcjpwYXNz", "not_bearer", None),
        ("Bearer ", "malformed", None),
        ("Bearer cpk_unknownprefx_" + "A" * 43, "unknown", "unknownprefx"),
        ("Bearer " + "x" * 5000, "oversized", None),
    ],
)
def test_missing_or_wrong_keys_are_unauthorized_and_audited_in_the_system_org(
    authorizer: Any,
    audit: MemoryAuditSink,
    key: str,
    header: str | None,
    reason: str,
    prefix: str | None,
    event: Any,
    lambda_context: Any,
) -> None:
    # When a request comes without a key, or with one that names no stored key
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(request(event, header), lambda_context)
    # Then an auth.failure event with the reason goes to the system organisation
    failure = only_failure(audit)
    assert failure.org_id == SYSTEM_ORG_ID and failure.details["reason"] == reason
    assert failure.details.get("key_prefix") == prefix and "key_id" not in failure.details


def test_a_tampered_secret_is_unauthorized_and_audited_in_the_keys_org(
    authorizer: Any,
    audit: MemoryAuditSink,
    key: str,
    org: str,
    migrated_db: Any,
    event: Any,
    lambda_context: Any,
) -> None:
    # Given a stored key, presented with a wrong secret
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(request(event, f"Bearer {tampered}"), lambda_context)
    # Then the failure is recorded in the key's organisation, naming the key by id and prefix only
    failure = only_failure(audit)
    assert str(failure.org_id) == org
    assert failure.details == {
        "reason": "wrong_secret",
        "key_prefix": key.split("_")[1],
        "key_id": key_id_of(migrated_db, key),
    }
    # And neither secret appears anywhere in the event
    serialized = json.dumps(failure.model_dump(mode="json"))
    assert key.split("_", 2)[2] not in serialized and tampered.split("_", 2)[2] not in serialized


def test_revoked_and_expired_keys_are_unauthorized_and_audited(
    authorizer: Any,
    audit: MemoryAuditSink,
    key: str,
    org: str,
    migrated_db: Any,
    event: Any,
    lambda_context: Any,
) -> None:
    prefix = key.split("_")[1]
    with migrated_db.owner() as conn:
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE prefix = %s", (prefix,))
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(request(event, f"Bearer {key}"), lambda_context)
    with migrated_db.owner() as conn:
        conn.execute(
            "UPDATE api_keys SET revoked_at = NULL, expires_at = %s WHERE prefix = %s",
            (datetime.now(UTC) - timedelta(seconds=1), prefix),
        )
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(request(event, f"Bearer {key}"), lambda_context)
    assert [(str(e.org_id), e.details["reason"]) for e in audit.events] == [
        (org, "revoked"),
        (org, "expired"),
    ]
    assert key.split("_", 2)[2] not in json.dumps([e.model_dump(mode="json") for e in audit.events])


def test_audit_trail_down_still_denies(
    authorizer: Any, audit: MemoryAuditSink, key: str, event: Any, lambda_context: Any
) -> None:
    # Given the audit trail refuses events
    audit.fail = True
    # When a wrong key is presented, the answer is still Unauthorized (never an Allow, never a 500)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(request(event, "Bearer cpk_unknownprefx_" + "A" * 43), lambda_context)
    assert audit.events == []


def test_auth_failures_reach_the_audit_fifo_queue(
    aws: None, org: str, db_env: dict[str, str], fresh_import: Any, key: str, event: Any, lambda_context: Any
) -> None:
    # Given the authorizer wired to a FIFO audit queue (moto), with its real sink
    from compliance.aws.clients import client

    sqs = client("sqs")
    url = sqs.create_queue(
        QueueName="audit.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    )["QueueUrl"]
    module = fresh_import("functions.auth.authorizer", {**db_env, "AUDIT_QUEUE_URL": url})
    # When a tampered key is refused
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        module.handler(request(event, f"Bearer {tampered}"), lambda_context)
    # Then one event is on the queue, in the key's org message group, deduplicated on its id
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert len(messages) == 1
    sent = AuditEventIn.model_validate_json(messages[0]["Body"])
    assert sent.event_type == "auth.failure" and str(sent.org_id) == org
    assert messages[0]["Attributes"]["MessageGroupId"] == org
    assert messages[0]["Attributes"]["MessageDeduplicationId"] == str(sent.event_id)
