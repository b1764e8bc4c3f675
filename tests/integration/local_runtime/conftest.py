"""Fixtures for the local runtime tests (helpers live in local_runtime_fixtures)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.integration.local_runtime.local_runtime_fixtures import Assembly


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    return Assembly(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(autouse=True, scope="module")
def no_leftover_threads() -> Iterator[None]:
    """Every server/poller thread a runtime started is gone once its module is done."""
    before = {thread.ident for thread in threading.enumerate()}
    yield
    names = ("sqs-", "local-control", "eventbridge-scheduler", "apigw:", "lambda-async")

    def leftovers() -> list[str]:
        return [
            thread.name
            for thread in threading.enumerate()
            if thread.ident not in before and thread.name.startswith(names)
        ]

    deadline = time.monotonic() + 10
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers() == []
