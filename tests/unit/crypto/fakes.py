"""A fake KMS client for the crypto unit tests: counts calls, wraps keys reversibly, fails on demand."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

WRAP_MARK = b"fake-kms:"


class FakeKms:
    """GenerateDataKey/Decrypt with the EncryptionContext checked, as KMS does."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.fail_with: Exception | None = None
        self._contexts: dict[bytes, dict[str, str]] = {}

    def generate_data_key(self, **kwargs: Any) -> dict[str, Any]:
        self.calls["GenerateDataKey"] += 1
        if self.fail_with is not None:
            raise self.fail_with
        assert kwargs["KeySpec"] == "AES_256"
        plaintext = os.urandom(32)
        blob = WRAP_MARK + plaintext  # not secret: only the binding to the context matters here
        self._contexts[blob] = dict(kwargs["EncryptionContext"])
        return {"Plaintext": plaintext, "CiphertextBlob": blob, "KeyId": kwargs["KeyId"]}

    def decrypt(self, **kwargs: Any) -> dict[str, Any]:
        self.calls["Decrypt"] += 1
        if self.fail_with is not None:
            raise self.fail_with
        blob = kwargs["CiphertextBlob"]
        if self._contexts.get(blob) != kwargs["EncryptionContext"]:
            raise client_error("InvalidCiphertextException", "Decrypt")
        return {"Plaintext": blob[len(WRAP_MARK) :], "KeyId": kwargs["KeyId"]}

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "fake"}}, operation)


def connection_error() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="https://kms.us-east-1.amazonaws.com")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
