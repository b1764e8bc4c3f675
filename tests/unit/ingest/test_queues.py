"""Sending message batches to SQS through a fake client."""

from __future__ import annotations

from typing import Any

import pytest

from compliance.aws.queues import SqsSender
from compliance.errors import QueueError


class FakeSqs:
    def __init__(self, fail_first: set[str] | None = None, sender_fault: bool = False) -> None:
        self.calls: list[list[dict[str, str]]] = []
        self.fail_first = set(fail_first or ())
        self.sender_fault = sender_fault
        self.counter = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Entries)
        ok, failed = [], []
        for entry in Entries:
            if entry["Id"] in self.fail_first:
                self.fail_first.discard(entry["Id"])
                failed.append({"Id": entry["Id"], "SenderFault": self.sender_fault, "Code": "X"})
            else:
                self.counter += 1
                ok.append({"Id": entry["Id"], "MessageId": f"m{self.counter}"})
        return {"Successful": ok, "Failed": failed}


def test_groups_of_ten_and_ids_in_order() -> None:
    fake = FakeSqs()
    ids = SqsSender(fake, "url").send([f"b{i}" for i in range(23)])
    assert [len(c) for c in fake.calls] == [10, 10, 3]
    assert len(ids) == 23 and all(ids)


def test_transient_failures_are_retried() -> None:
    fake = FakeSqs(fail_first={"1"})
    ids = SqsSender(fake, "url").send(["a", "b", "c"])
    assert all(ids) and len(fake.calls) == 2 and [e["Id"] for e in fake.calls[1]] == ["1"]


def test_sender_faults_are_not_retried_and_raise() -> None:
    fake = FakeSqs(fail_first={"0"}, sender_fault=True)
    with pytest.raises(QueueError):
        SqsSender(fake, "url").send(["a"])
    assert len(fake.calls) == 1


def test_groups_respect_the_batch_byte_limit() -> None:
    fake = FakeSqs()
    SqsSender(fake, "url").send(["x" * 200_000, "y" * 200_000])
    assert [len(c) for c in fake.calls] == [1, 1]


def test_client_errors_become_queue_errors() -> None:
    class Broken:
        def send_message_batch(self, **_: Any) -> dict[str, Any]:
            raise ConnectionError("down")

    with pytest.raises(QueueError):
        SqsSender(Broken(), "url").send(["a"])
