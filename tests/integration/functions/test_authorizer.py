"""The REQUEST authorizer: a good key yields an Allow policy with org and roles; anything else is 401."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from compliance.models.auth import Role
from compliance_tools.seed import create_key


@pytest.fixture
def authorizer(aws: None, org: str, db_env: dict[str, str], fresh_import: Any) -> Any:
    return fresh_import("functions.auth.authorizer", db_env)


@pytest.fixture
def key(migrated_db: Any, org: str) -> str:
    with migrated_db.owner() as conn:
        return create_key(conn, org, "ingest", [Role.INGEST])


def request(event: Any, authorization: str | None) -> dict[str, Any]:
    req = event("auth/authorizer-request.json")
    req["headers"] = {} if authorization is None else {"Authorization": authorization}
    return req


def test_a_valid_key_is_allowed_with_its_org_and_roles(
    authorizer: Any, key: str, org: str, event: Any, lambda_context: Any
) -> None:
    result = authorizer.handler(request(event, f"Bearer {key}"), lambda_context)
    statement = result["policyDocument"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert statement["Resource"] == "arn:aws:execute-api:us-east-1:000000000000:localapi/prod/*/*"
    assert result["context"]["org_id"] == org and result["context"]["roles"] == "ingest"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
        "Bearer cpk_unknownprefx_" + "A" * 43,
        "Bearer " + "x" * 5000,
    ],
)
def test_missing_or_wrong_keys_are_unauthorized(
    authorizer: Any, key: str, header: str | None, event: Any, lambda_context: Any
) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(request(event, header), lambda_context)


def test_a_tampered_secret_is_unauthorized(
    authorizer: Any, key: str, event: Any, lambda_context: Any
) -> None:
    tampered = key[:-2] + ("AA" if not key.endswith("AA") else "BB")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(request(event, f"Bearer {tampered}"), lambda_context)


def test_revoked_and_expired_keys_are_unauthorized(
    authorizer: Any, key: str, migrated_db: Any, event: Any, lambda_context: Any
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
