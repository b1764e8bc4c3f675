"""The migration function: master login from Secrets Manager, app login set, schema up, idempotent."""

from __future__ import annotations

import json
from typing import Any

import boto3
import psycopg

from compliance.db import migrate

REPO_MIGRATIONS = str(__import__("pathlib").Path(__file__).resolve().parents[3] / "migrations")


def test_migrates_an_empty_database_once(
    aws: None, empty_db: Any, fresh_import: Any, lambda_context: Any
) -> None:
    # Given the master and app secrets the stack creates, and an empty database
    sm = boto3.client("secretsmanager")
    master = sm.create_secret(
        Name="master",
        SecretString=json.dumps({"username": empty_db.endpoint.superuser, "password": "ignored-locally"}),
    )["ARN"]
    app = sm.create_secret(
        Name="app", SecretString=json.dumps({"username": "compliance_app", "password": "app-password"})
    )["ARN"]
    endpoint = empty_db.endpoint
    module = fresh_import(
        "functions.database.migrate",
        {
            "DB_HOST": endpoint.host,
            "DB_PORT": str(endpoint.port),
            "DB_NAME": empty_db.name,
            "DB_SECRET_ARN": master,
            "DB_APP_SECRET_ARN": app,
            "DB_APP_USER": "compliance_app",
            "MIGRATIONS_DIR": REPO_MIGRATIONS,
        },
    )
    # When the deploy trigger runs it twice
    first = module.handler({}, lambda_context)
    second = module.handler({}, lambda_context)
    # Then the first applies every migration, the second nothing, and the app user can log in
    assert first["applied"] and second["applied"] == []
    assert (
        first["current_version"]
        == second["current_version"]
        == migrate.discover(__import__("pathlib").Path(REPO_MIGRATIONS))[-1].version
    )
    with psycopg.connect(empty_db.app_dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("compliance_app",)
