"""Handlers on sample events, against a migrated embedded PostgreSQL and moto (in-process, no network)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from compliance.audit.sink import MemoryAuditSink
from tests.aws_fixtures import REGION

ORG_IN_EVENTS = "6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001"
AUDIT_QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/audit.fifo"


@pytest.fixture
def audit() -> MemoryAuditSink:
    """Where the handler under test publishes its audit events."""
    return MemoryAuditSink()


@pytest.fixture
def audited(fresh_import: Any, audit: MemoryAuditSink, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Import a handler afresh with ``env`` plus the audit queue, its audit sink replaced by ``audit``."""

    def load(module_name: str, env: dict[str, str], *, sink_attr: str = "_sink") -> Any:
        module = fresh_import(module_name, {**env, "AUDIT_QUEUE_URL": AUDIT_QUEUE_URL})
        monkeypatch.setattr(module, sink_attr, lambda: audit)
        return module

    return load


@pytest.fixture
def org(migrated_db: Any) -> str:
    """The organisation the sample events name, created in the test database."""
    with migrated_db.owner() as conn:
        conn.execute("INSERT INTO organisations (id, name) VALUES (%s, 'Events Org')", (ORG_IN_EVENTS,))
    return ORG_IN_EVENTS


@pytest.fixture
def db_env(migrated_db: Any) -> dict[str, str]:
    """The variables the stack gives a database function, pointed at the test database."""
    endpoint = migrated_db.endpoint
    return {
        "DB_HOST": endpoint.host,
        "DB_PORT": str(endpoint.port),
        "DB_NAME": migrated_db.name,
        "DB_USER": "compliance_app",
        "DB_AUTH": "iam",
        "DB_SSLMODE": "require",
        "AWS_REGION": REGION,
    }


IDEMPOTENCY_TABLE = "idempotency"


@pytest.fixture
def field_key(aws: None) -> str:
    """The KMS key that wraps field-encryption data keys (moto)."""
    import boto3

    return str(boto3.client("kms").create_key(Description="field data keys")["KeyMetadata"]["Arn"])


@pytest.fixture
def processor(aws: None, org: str, db_env: dict[str, str], field_key: str, audited: Any) -> Any:
    """The ingest-queue consumer on the test database, moto (KMS, DynamoDB) and the memory audit sink."""
    import boto3

    boto3.client("dynamodb").create_table(
        TableName=IDEMPOTENCY_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return audited(
        "functions.ingest.processor",
        {**db_env, "IDEMPOTENCY_TABLE_NAME": IDEMPOTENCY_TABLE, "FIELD_KEY_ID": field_key},
    )


@pytest.fixture
def grant_consent(migrated_db: Any) -> Callable[..., None]:
    """``grant_consent(org, external_id, purpose="prompt_logging")``: an active consent record (the
    subject created as needed), as POST /v1/consents would store it."""

    def grant(org: str, external_id: str, purpose: str = "prompt_logging") -> None:
        with migrated_db.owner() as conn:
            conn.execute(
                "INSERT INTO subjects (org_id, external_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (org, external_id),
            )
            conn.execute(
                "INSERT INTO consents"
                " (org_id, subject_id, purpose, legal_basis, notice_version, source, granted_at)"
                " SELECT org_id, id, %s, 'consent', 'notice-1', 'test', now() - interval '1 minute'"
                " FROM subjects WHERE org_id = %s AND external_id = %s",
                (purpose, org, external_id),
            )

    return grant
