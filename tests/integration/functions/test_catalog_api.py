"""GET /v1/catalog and /v1/catalog/personal-data through the admin handler, on a synced catalog."""

from __future__ import annotations

import json
from typing import Any

import pytest

from compliance.audit.events import AuditResult
from compliance.audit.sink import MemoryAuditSink
from compliance.catalog import catalog_path, load_catalog
from compliance.db import catalog as catalog_db
from tests.conftest import MIGRATIONS_DIR


@pytest.fixture
def synced(migrated_db: Any) -> int:
    """The catalog loaded as the deploy loads it (the migrated_db fixture only migrates)."""
    with migrated_db.owner() as conn:
        return catalog_db.sync(conn, load_catalog(catalog_path(MIGRATIONS_DIR)))


@pytest.fixture
def admin(aws: None, synced: int, db_env: dict[str, str], audited: Any, field_key: str) -> Any:
    return audited("functions.admin.api", {**db_env, "FIELD_KEY_ID": field_key})


def call(module: Any, event: dict[str, Any], ctx: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    response = module.handler(event, ctx)
    return response["statusCode"], json.loads(response["body"]), response


def content_type(response: dict[str, Any]) -> str:
    # REST API proxy responses carry headers as multiValueHeaders.
    return str(response["multiValueHeaders"]["Content-Type"][0])


def requests(audit: MemoryAuditSink) -> list[tuple[str, Any]]:
    return [(e.resource, e.details["status"]) for e in audit.events if e.event_type == "api.request"]


def personal_data_event(event: Any, table: str | None) -> dict[str, Any]:
    request: dict[str, Any] = event("admin/get-personal-data.json")
    query = None if table is None else {"table": table}
    request["queryStringParameters"] = query
    request["multiValueQueryStringParameters"] = None if query is None else {"table": [table]}
    return request


def test_catalog_lists_every_synced_entry(
    admin: Any, synced: int, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # When a DPO reads the catalog
    status, body, _ = call(admin, event("admin/get-catalog.json"), lambda_context)
    # Then every synced entry comes back, ordered by table then column, with its governance fields
    assert status == 200 and len(body["items"]) == synced > 0
    keys = [(e["table_name"], e["column_name"]) for e in body["items"]]
    assert keys == sorted(keys)
    subject_link = next(
        e for e in body["items"] if (e["table_name"], e["column_name"]) == ("usage_records", "subject_id")
    )
    assert subject_link["personal"] is True and subject_link["erasure"] == "anonymize"
    # And the call is one api.request event
    assert requests(audit) == [("route:GET:/v1/catalog", 200)] and len(audit.events) == 1


def test_personal_data_of_one_table(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # When an auditor asks for the personal data of usage_records (the sample event)
    status, body, _ = call(admin, event("admin/get-personal-data.json"), lambda_context)
    # Then only that table's personal columns come back, the subject link among them
    assert status == 200 and body["table"] == "usage_records"
    assert {e["table_name"] for e in body["items"]} == {"usage_records"}
    assert all(e["personal"] for e in body["items"])
    assert "subject_id" in {e["column_name"] for e in body["items"]}
    assert requests(audit) == [("route:GET:/v1/catalog/personal-data", 200)] and len(audit.events) == 1


def test_personal_data_of_every_table(admin: Any, event: Any, lambda_context: Any) -> None:
    # When no table is given
    status, body, _ = call(admin, personal_data_event(event, None), lambda_context)
    # Then the personal columns of several tables come back, and only personal ones
    assert status == 200 and body["table"] is None
    assert {"subjects", "usage_records"} <= {e["table_name"] for e in body["items"]}
    assert all(e["personal"] for e in body["items"])


def test_known_table_without_personal_data_is_an_empty_list(
    admin: Any, event: Any, lambda_context: Any
) -> None:
    # Given organisations, which the catalog knows and says holds no personal data
    status, body, _ = call(admin, personal_data_event(event, "organisations"), lambda_context)
    # Then the answer is an empty list, not a 404
    assert (status, body["items"]) == (200, [])


def test_unknown_table_is_404_problem(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any
) -> None:
    # When the table is not in the catalog
    status, body, response = call(admin, personal_data_event(event, "no_such_table"), lambda_context)
    # Then a 404 problem, which does not echo the name
    assert status == 404 and body["title"] == "Not found"
    assert content_type(response) == "application/problem+json"
    assert "no_such_table" not in response["body"]
    assert requests(audit) == [("route:GET:/v1/catalog/personal-data", 404)] and len(audit.events) == 1


@pytest.mark.parametrize("table", ["Users", "users;drop", "x" * 64, "1table"])
def test_malformed_table_name_is_400_problem(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any, table: str
) -> None:
    # When the table name is no identifier the catalog could hold
    status, body, response = call(admin, personal_data_event(event, table), lambda_context)
    # Then a 400 problem naming the parameter, without echoing its value
    assert status == 400 and content_type(response) == "application/problem+json"
    assert [e["field"] for e in body["errors"]] == ["query.table"]
    assert table not in response["body"]
    assert requests(audit) == [("route:GET:/v1/catalog/personal-data", 400)] and len(audit.events) == 1


@pytest.mark.parametrize("roles", ["dpo", "auditor", "system_admin"])
def test_catalog_readers(admin: Any, event: Any, lambda_context: Any, roles: str) -> None:
    request = event("admin/get-catalog.json")
    request["requestContext"]["authorizer"]["roles"] = roles
    status, _, _ = call(admin, request, lambda_context)
    assert status == 200


@pytest.mark.parametrize("name", ["admin/get-catalog.json", "admin/get-personal-data.json"])
def test_other_roles_are_403(
    admin: Any, audit: MemoryAuditSink, event: Any, lambda_context: Any, name: str
) -> None:
    # Given a key with only cost and ingest roles
    request = event(name)
    request["requestContext"]["authorizer"]["roles"] = "cost_admin,cost_viewer,ingest"
    # When it reads the catalog
    status, body, _ = call(admin, request, lambda_context)
    # Then it is forbidden, and the denial is the call's one audit event
    assert status == 403 and body["title"] == "Forbidden" and "items" not in body
    assert len(audit.events) == 1 and audit.events[0].result is AuditResult.DENIED
