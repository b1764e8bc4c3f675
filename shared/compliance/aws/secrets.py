"""Reading JSON secrets (database credentials) from Secrets Manager."""

from __future__ import annotations

import json
from typing import Any

from compliance.errors import ConfigurationError


def read_json_secret(client: Any, secret_arn: str) -> dict[str, Any]:
    try:
        value = client.get_secret_value(SecretId=secret_arn)["SecretString"]
        parsed = json.loads(value)
    except Exception as exc:  # never echo the secret: name the ARN only
        raise ConfigurationError(f"cannot read secret {secret_arn}") from exc
    if not isinstance(parsed, dict):
        raise ConfigurationError(f"secret {secret_arn} is not a JSON object")
    return parsed
