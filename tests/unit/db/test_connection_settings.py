"""Credentials providers and settings wiring of compliance.db.connection: no network."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from psycopg.conninfo import conninfo_to_dict

from compliance.config import DatabaseSettings
from compliance.db.connection import (
    Database,
    conninfo_from_settings,
    data_access_error,
    database_from_settings,
    iam_token_provider,
    secret_credentials,
    secret_password_provider,
)
from compliance.errors import ConfigurationError, DataAccessError


class FakeSecrets:
    def __init__(self, secret: str | Exception) -> None:
        self.secret = secret
        self.calls = 0

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's spelling
        self.calls += 1
        if isinstance(self.secret, Exception):
            raise self.secret
        return {"ARN": SecretId, "SecretString": self.secret}


def settings(**overrides: Any) -> DatabaseSettings:
    values = {
        "db_host": "proxy.example",
        "db_port": 5432,
        "db_name": "compliance",
        "db_user": "compliance_app",
        "aws_region": "eu-west-1",
    } | overrides
    return DatabaseSettings.model_validate(values)


def test_iam_tokens_are_signed_locally_for_the_proxy_endpoint() -> None:
    # Given an RDS client with static credentials (signing needs no network)
    rds = boto3.client(
        "rds", region_name="eu-west-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret"
    )
    provide = iam_token_provider("proxy.example", 5432, "compliance_app", "eu-west-1", client=rds)

    # When a token is produced
    token = provide()

    # Then it is a presigned connect request for that host, port and user
    parts = urlsplit("https://" + token)
    query = parse_qs(parts.query)
    assert parts.netloc == "proxy.example:5432"
    assert query["Action"] == ["connect"] and query["DBUser"] == ["compliance_app"]
    assert "X-Amz-Signature" in query


def test_secret_credentials_read_username_and_password() -> None:
    # Given a Secrets Manager secret like the RDS-generated ones
    client = FakeSecrets('{"username": "master", "password": "pw", "engine": "postgres"}')

    # When it is read
    credentials = secret_credentials("arn:secret", client=client)  # type: ignore[arg-type]

    # Then both fields come back and the password stays out of repr
    assert (credentials.username, credentials.password) == ("master", "pw")
    assert "pw" not in repr(credentials)


def test_secret_password_provider_rereads_for_every_connection() -> None:
    # Given a provider on a secret that may rotate
    client = FakeSecrets('{"username": "app", "password": "pw"}')
    provide = secret_password_provider("arn:secret", client=client)  # type: ignore[arg-type]

    # When two connections ask for a password / Then the secret is read twice
    assert provide() == provide() == "pw"
    assert client.calls == 2


@pytest.mark.parametrize(
    ("secret", "error"),
    [
        ("not json", ConfigurationError),
        ('{"username": "x"}', ConfigurationError),
        (RuntimeError("AccessDenied"), DataAccessError),
    ],
)
def test_unreadable_secrets_raise_domain_errors(secret: str | Exception, error: type[Exception]) -> None:
    with pytest.raises(error):
        secret_credentials("arn:secret", client=FakeSecrets(secret))  # type: ignore[arg-type]


def test_conninfo_from_settings_requires_tls_and_names_the_application() -> None:
    # Given function settings / When turned into a conninfo
    info = conninfo_to_dict(conninfo_from_settings(settings(db_sslmode="verify-full")))

    # Then every connection parameter comes from the settings, with no password in it
    assert info == {
        "host": "proxy.example",
        "port": "5432",
        "dbname": "compliance",
        "user": "compliance_app",
        "sslmode": "verify-full",
        "connect_timeout": "5",
        "application_name": "compliance",
    }


def test_database_from_settings_does_not_connect_until_used() -> None:
    # Given IAM settings pointing nowhere / When the Database is built / Then nothing is contacted yet
    db = database_from_settings(settings(db_host="proxy.invalid"))
    assert isinstance(db, Database)
    db.close()


def test_secret_auth_needs_a_secret_arn() -> None:
    with pytest.raises(ConfigurationError):
        database_from_settings(settings(db_auth="secret"))


def test_driver_errors_keep_only_their_sqlstate() -> None:
    # Given a driver error whose message quotes a row value
    import psycopg.errors

    exc = psycopg.errors.UniqueViolation("Key (external_id)=(alice@example.com) already exists.")

    # When it is turned into a domain error
    error = data_access_error(exc)

    # Then the value is gone and the error class/SQLSTATE remain
    assert "alice" not in str(error)
    assert error.status == 503
