"""SQS through moto keeps up with a backlog (moto's SQS is quadratic without moto_patches)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pytest

from compliance_tools.local.runtime import LocalRuntime
from tests.integration.local_runtime.local_runtime_fixtures import Assembly, python_function, wait_until

CONSUMER = """
    import json
    import sys
    import threading
    import types

    # Shared by every execution environment (each is its own import of this module) of this process.
    SHARED = sys.modules.setdefault(
        "_throughput_counter",
        types.SimpleNamespace(seen={"messages": 0, "records": 0}, lock=threading.Lock()),
    )
    SEEN, LOCK = SHARED.seen, SHARED.lock


    def handler(event, context):
        records = sum(len(json.loads(record["body"])["records"]) for record in event["Records"])
        with LOCK:
            SEEN["messages"] += len(event["Records"])
            SEEN["records"] += records
        return {"batchItemFailures": []}
"""

MESSAGES = 600
RECORDS_PER_MESSAGE = 75


@pytest.fixture(scope="module")
def runtime(assembly: Assembly) -> Iterator[LocalRuntime]:
    consumer = assembly.asset("throughput", {"consumer.py": CONSUMER})
    template = assembly.template(
        {
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}},
            "Consumer": python_function(consumer, "consumer.handler", Timeout=60),
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "FunctionName": {"Ref": "Consumer"},
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "BatchSize": 10,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                },
            },
        }
    )
    with LocalRuntime(template, data_dir=assembly.root.parent / "tp-data", pg_factory=None) as local:
        yield local


def test_a_backlog_drains_at_hundreds_of_messages_per_second(runtime: LocalRuntime) -> None:
    # Given a backlog of usage-sized messages (75 records each) sent while the pollers run
    record = {
        "request_id": "r" * 36,
        "model": "gpt-4o",
        "prompt_tokens": 812,
        "cost": "0.000218",
        "at": "2024",
    }
    body = json.dumps({"records": [record] * RECORDS_PER_MESSAGE})
    sqs = runtime.client("sqs")
    started = time.perf_counter()
    for _ in range(MESSAGES // 10):
        sqs.send_message_batch(
            QueueUrl=runtime.resources["Queue"],
            Entries=[{"Id": str(i), "MessageBody": body} for i in range(10)],
        )
    # When the mapping drains it
    seen = sys.modules["_throughput_counter"].seen
    wait_until(lambda: seen["messages"] >= MESSAGES, timeout=60)
    elapsed = time.perf_counter() - started
    # Then throughput (send + receive + invoke + delete) is far above the 2,000 records/s goal
    records_per_second = seen["records"] / elapsed
    print(f"{MESSAGES / elapsed:.0f} messages/s, {records_per_second:.0f} records/s")
    assert seen["messages"] == MESSAGES
    assert records_per_second > 2_000
