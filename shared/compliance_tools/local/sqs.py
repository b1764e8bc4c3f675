"""SQS event source mappings: poll a queue in moto and invoke the function with real SQS events.

Like Lambda's pollers: long-poll up to 10 messages a call, gather up to ``BatchSize`` within
``MaximumBatchingWindowInSeconds``, invoke, then delete what succeeded. A handler error fails the
whole batch (messages reappear after the queue's visibility timeout and reach the DLQ through the
queue's RedrivePolicy, which moto applies on receive). With ``ReportBatchItemFailures`` only the
messages not named in ``batchItemFailures`` are deleted; an invalid response fails the batch.

FIFO queues (``.fifo``): a receive returns each message group's messages in order and never hands out
a group that is in flight (moto does this; ``moto_patches`` makes it hold for concurrent pollers), so
a group is processed by one invocation at a time. As in Lambda, FIFO mappings have no batching window.
A FIFO response that fails a message but lets a later one of the same group be deleted would reorder
that group: Lambda deletes it all the same, so this poller does too, and logs a warning.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.config import Config
from mypy_boto3_sqs import SQSClient

from compliance_tools.local.lambdas import InvocationResult
from compliance_tools.local.motoserver import moto_session
from compliance_tools.local.provision import EventSourceMappingSpec

logger = logging.getLogger(__name__)

Invoker = Callable[[str, Any], InvocationResult]

# Short long-polls so stop() is prompt; Lambda's own pollers wait 20 s.
WAIT_SECONDS = 1


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of an SQS Lambda event, from a ReceiveMessage message."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        binary = value["BinaryValue"]
        attribute["binaryValue"] = base64.b64encode(binary).decode() if isinstance(binary, bytes) else binary
    return attribute


def failed_message_ids(
    result: InvocationResult, batch_ids: list[str], report_item_failures: bool
) -> set[str]:
    """Which messages of the batch stay on the queue after this invocation."""
    if not result.ok:
        return set(batch_ids)
    if not report_item_failures:
        return set()
    payload = result.payload
    if payload is None or payload == {} or payload == "":
        return set()
    failures = payload.get("batchItemFailures") if isinstance(payload, dict) else None
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            # Lambda treats a malformed or unknown identifier as a failure of the whole batch.
            logger.warning("invalid batchItemFailures entry %r: failing the whole batch", failure)
            return set(batch_ids)
        failed.add(identifier)
    return failed


def reordered_groups(batch: list[dict[str, Any]], failed: set[str]) -> set[str]:
    """FIFO message groups where a failed message is followed by one that would be deleted."""
    failed_groups: set[str] = set()
    reordered: set[str] = set()
    for message in batch:
        group = message.get("Attributes", {}).get("MessageGroupId")
        if group is None:
            continue
        if message["MessageId"] in failed:
            failed_groups.add(group)
        elif group in failed_groups:
            reordered.add(group)
    return reordered


def is_fifo(queue_arn: str) -> bool:
    return queue_arn.endswith(".fifo")


class SqsPoller:
    """The pollers of one event source mapping (``threads`` concurrent receive-invoke loops)."""

    def __init__(
        self,
        spec: EventSourceMappingSpec,
        invoke: Invoker,
        *,
        endpoint_url: str,
        region: str,
        threads: int = 2,
    ) -> None:
        self.spec = spec
        self.invoke = invoke
        self.endpoint_url = endpoint_url
        self.region = region
        if spec.maximum_concurrency:
            threads = min(threads, spec.maximum_concurrency)
        self.thread_count = max(1, threads)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.stats = {"batches": 0, "messages": 0, "failed": 0}
        self._stats_lock = threading.Lock()

    def start(self) -> None:
        for index in range(self.thread_count):
            thread = threading.Thread(
                target=self._run, name=f"sqs-{self.spec.logical_id}-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        logger.info(
            "polling %s for %s (%d threads, batch %d, window %.1f s)",
            self.spec.queue_url,
            self.spec.function,
            self.thread_count,
            self.spec.batch_size,
            self.spec.batching_window_s,
        )

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def _client(self) -> SQSClient:
        config = Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=4)
        return moto_session(self.region).client("sqs", endpoint_url=self.endpoint_url, config=config)

    def _run(self) -> None:
        sqs = self._client()
        while not self._stop.is_set():
            try:
                batch = self._gather(sqs)
                if batch:
                    self._deliver(sqs, batch)
            except Exception:
                if self._stop.is_set():
                    break
                logger.exception("poller of %s failed; retrying in 1 s", self.spec.logical_id)
                self._stop.wait(1.0)

    def _gather(self, sqs: SQSClient) -> list[dict[str, Any]]:
        spec = self.spec
        batch: list[dict[str, Any]] = []
        deadline = 0.0  # the batching window opens with the first message
        while not self._stop.is_set():
            # Once something is gathered, wait only for the rest of the batching window.
            wait = WAIT_SECONDS if not batch else max(0, min(WAIT_SECONDS, int(deadline - time.monotonic())))
            response = sqs.receive_message(
                QueueUrl=spec.queue_url,
                MaxNumberOfMessages=min(10, spec.batch_size - len(batch)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages: list[dict[str, Any]] = list(response.get("Messages", []))  # type: ignore[arg-type]
            if messages and not batch:
                deadline = time.monotonic() + spec.batching_window_s
            batch.extend(messages)
            if len(batch) >= spec.batch_size or (batch and time.monotonic() >= deadline):
                break
            if batch and not messages and wait == 0:
                break
        return batch

    def _deliver(self, sqs: SQSClient, batch: list[dict[str, Any]]) -> None:
        spec = self.spec
        event = {"Records": [sqs_record(message, spec.queue_arn, self.region) for message in batch]}
        result = self.invoke(spec.function, event)
        ids = [message["MessageId"] for message in batch]
        failed = failed_message_ids(result, ids, spec.report_batch_item_failures)
        if failed and is_fifo(spec.queue_arn):
            reordered = reordered_groups(batch, failed)
            if reordered:
                logger.warning(
                    "%s: %d FIFO message group(s) had a failed message followed by a successful one; "
                    "deleting the later ones reorders the group (report every message after the first "
                    "failure of a group as failed)",
                    spec.logical_id,
                    len(reordered),
                )
        done = [message for message in batch if message["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            response = sqs.delete_message_batch(
                QueueUrl=spec.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                logger.warning("could not delete a message of %s: %s", spec.queue_url, failure)
        with self._stats_lock:
            self.stats["batches"] += 1
            self.stats["messages"] += len(batch)
            self.stats["failed"] += len(failed)
        if failed:
            logger.info(
                "%s: %d of %d messages failed; they return after the visibility timeout",
                spec.logical_id,
                len(failed),
                len(batch),
            )
