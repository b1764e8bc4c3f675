"""Fixtures for driving handlers: sample events from events/, a Lambda context, fresh handler imports."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EVENTS = Path(__file__).resolve().parents[1] / "events"


@dataclass
class FakeLambdaContext:
    function_name: str = "unit-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:unit-test"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/unit-test"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def event() -> Any:
    def load(name: str) -> dict[str, Any]:
        return json.loads((EVENTS / name).read_text())

    return load


@pytest.fixture
def fresh_import(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import a handler module anew with the given environment (handlers read it once, at import)."""

    def load(module: str, env: dict[str, str]) -> ModuleType:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        sys.modules.pop(module, None)
        return importlib.import_module(module)

    return load
