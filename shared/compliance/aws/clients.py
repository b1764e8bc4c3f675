"""boto3 clients, created lazily once per process (cold start) and reused across invocations."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def client(service: str) -> Any:
    # boto3 is heavy to import: only functions that talk to AWS pay for it, on first use.
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10),
    )


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` (``AccessDenied``...), else the exception's type
    name: safe to log and to put in an error message (never the service's message, which can quote input)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
