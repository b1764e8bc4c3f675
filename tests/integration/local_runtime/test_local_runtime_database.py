"""RDS resources of the template map onto the embedded PostgreSQL: master user, initial database,
secret attachment, proxy endpoint and port, and the migration trigger run against it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from compliance_tools.local.runtime import LocalRuntime
from compliance_tools.pg import PgEndpoint
from tests.integration.local_runtime.local_runtime_fixtures import Assembly, python_function

MIGRATE = """
    import json
    import os

    import boto3
    import psycopg

    HOST, PORT, NAME = os.environ["DB_HOST"], int(os.environ["DB_PORT"]), os.environ["DB_NAME"]
    SECRET_ARN = os.environ["DB_SECRET_ARN"]


    def handler(event, context):
        answer = boto3.client("secretsmanager").get_secret_value(SecretId=SECRET_ARN)
        secret = json.loads(answer["SecretString"])
        with psycopg.connect(
            host=HOST, port=PORT, dbname=NAME, user=secret["username"], password=secret["password"],
            sslmode="require", autocommit=True,
        ) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS marker (note text)")
            connection.execute("INSERT INTO marker VALUES ('migrated')")
        return {"host": secret["host"], "port": secret["port"], "dbname": secret["dbname"]}
"""

APP = """
    import os

    import psycopg

    DSN = dict(
        host=os.environ["DB_HOST"],
        port=int(os.environ["DB_PORT"]),
        dbname=os.environ["DB_NAME"],
        user=os.environ["DB_USER"],
    )


    def handler(event, context):
        with psycopg.connect(**DSN, password="iam-token", sslmode="require") as c:
            return {"notes": [row[0] for row in c.execute("SELECT note FROM marker")], "port": DSN["port"]}
"""


@dataclass
class SharedPostgres:
    """The session's PostgreSQL server, handed to the runtime; the session stops it, not the runtime."""

    endpoint: PgEndpoint

    def start(self) -> PgEndpoint:
        return self.endpoint

    def stop(self) -> None:
        pass


@pytest.fixture(scope="module")
def runtime(assembly: Assembly, pg_endpoint: PgEndpoint) -> Iterator[LocalRuntime]:
    dbname = f"lr_{uuid.uuid4().hex[:10]}"
    migrate = assembly.asset("migrate", {"migrate.py": MIGRATE})
    app = assembly.asset("app", {"app.py": APP})
    resources: dict[str, Any] = {
        "Secret": {
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {
                "GenerateSecretString": {
                    "SecretStringTemplate": '{"username":"local_master"}',
                    "GenerateStringKey": "password",
                    "ExcludeCharacters": " %+~`#$&*()|[]{}:;<>?!'/@\"\\",
                }
            },
        },
        "Db": {
            "Type": "AWS::RDS::DBInstance",
            "Properties": {
                "Engine": "postgres",
                "DBName": dbname,
                "MasterUsername": {
                    "Fn::Join": [
                        "",
                        ["{{resolve:secretsmanager:", {"Ref": "Secret"}, ":SecretString:username::}}"],
                    ]
                },
                "MasterUserPassword": {
                    "Fn::Join": [
                        "",
                        ["{{resolve:secretsmanager:", {"Ref": "Secret"}, ":SecretString:password::}}"],
                    ]
                },
            },
        },
        "Attachment": {
            "Type": "AWS::SecretsManager::SecretTargetAttachment",
            "Properties": {
                "SecretId": {"Ref": "Secret"},
                "TargetId": {"Ref": "Db"},
                "TargetType": "AWS::RDS::DBInstance",
            },
        },
        "Proxy": {
            "Type": "AWS::RDS::DBProxy",
            "Properties": {"EngineFamily": "POSTGRESQL", "Auth": [{"SecretArn": {"Ref": "Attachment"}}]},
        },
        "Migrate": python_function(
            migrate,
            "migrate.handler",
            Environment={
                "Variables": {
                    "DB_HOST": {"Fn::GetAtt": ["Db", "Endpoint.Address"]},
                    "DB_PORT": {"Fn::GetAtt": ["Db", "Endpoint.Port"]},
                    "DB_NAME": dbname,
                    "DB_SECRET_ARN": {"Ref": "Attachment"},
                }
            },
        ),
        "MigrateVersion": {
            "Type": "AWS::Lambda::Version",
            "Properties": {"FunctionName": {"Ref": "Migrate"}},
        },
        "MigrateTrigger": {
            "Type": "Custom::Trigger",
            "Properties": {
                "ServiceToken": "arn:aws:lambda:::function:provider",
                "HandlerArn": {"Ref": "MigrateVersion"},
            },
            "DependsOn": ["Attachment", "Db"],
        },
        "App": python_function(
            app,
            "app.handler",
            Environment={
                "Variables": {
                    "DB_HOST": {"Fn::GetAtt": ["Proxy", "Endpoint"]},
                    "DB_PORT": "5432",
                    "DB_NAME": dbname,
                    "DB_USER": "local_master",
                }
            },
        ),
    }
    template = assembly.template(resources)
    with LocalRuntime(
        template,
        data_dir=Path(assembly.root.parent / "db-data"),
        pg_factory=lambda _data_dir: SharedPostgres(pg_endpoint),
        run_triggers=True,
    ) as local:
        yield local


def test_secret_attachment_points_at_the_embedded_server(
    runtime: LocalRuntime, pg_endpoint: PgEndpoint
) -> None:
    secret = json.loads(
        runtime.client("secretsmanager").get_secret_value(SecretId=runtime.resources["Secret"])[
            "SecretString"
        ]
    )
    assert secret["host"] == "127.0.0.1"
    assert secret["port"] == pg_endpoint.port
    assert secret["engine"] == "postgres"
    assert secret["dbname"] == runtime.template.resource("Db")["Properties"]["DBName"]
    assert runtime.attribute("Db", "Endpoint.Port") == str(pg_endpoint.port)


def test_trigger_migrated_and_proxy_users_reach_the_database(
    runtime: LocalRuntime, pg_endpoint: PgEndpoint
) -> None:
    # Given the trigger ran at start (as the master user, with the secret's password)
    # When a function behind the proxy (literal DB_PORT 5432 in the template) queries
    result = runtime.invoke("App", {})
    # Then it reached the embedded server on its real port and sees the migrated data
    assert result == {"notes": ["migrated"], "port": pg_endpoint.port}
