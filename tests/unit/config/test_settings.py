"""Settings are validated once from the environment and fail fast with the variable names."""

from __future__ import annotations

import pytest

from compliance.config import DatabaseSettings, IngestApiSettings
from compliance.errors import ConfigurationError


def test_reads_upper_case_variables() -> None:
    settings = IngestApiSettings.from_environ(
        {"INGEST_QUEUE_URL": "https://sqs/q", "AUDIT_QUEUE_URL": "https://sqs/a.fifo", "UNRELATED": "x"}
    )
    assert settings.ingest_queue_url == "https://sqs/q"


def test_names_missing_and_invalid_variables_without_values() -> None:
    with pytest.raises(ConfigurationError) as info:
        DatabaseSettings.from_environ({"DB_HOST": "h", "DB_PORT": "not-a-port", "DB_USER": "secret-ish"})
    message = str(info.value)
    assert "DB_PORT" in message and "DB_NAME" in message
    assert "not-a-port" not in message and "secret-ish" not in message


def test_defaults_are_the_aws_shape() -> None:
    settings = DatabaseSettings.from_environ({"DB_HOST": "proxy", "DB_NAME": "compliance", "DB_USER": "app"})
    assert settings.db_auth == "iam" and settings.db_sslmode == "require" and settings.db_port == 5432
