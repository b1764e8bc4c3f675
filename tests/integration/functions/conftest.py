"""Handlers on sample events, against a migrated embedded PostgreSQL and moto (in-process, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

ORG_IN_EVENTS = "6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001"
REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from moto import mock_aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from compliance.aws.clients import client

    client.cache_clear()  # clients made outside the mock would talk to the network
    with mock_aws():
        yield
    client.cache_clear()


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
