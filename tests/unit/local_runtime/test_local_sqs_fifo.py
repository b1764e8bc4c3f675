"""FIFO queues locally: group order, in-flight groups kept from concurrent receivers, sequence numbers."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
from moto import mock_aws

from compliance_tools.local import moto_patches
from compliance_tools.local.sqs import is_fifo, reordered_groups

FIFO_ATTRIBUTES = {
    "FifoQueue": "true",
    "ContentBasedDeduplication": "false",
    "DeduplicationScope": "messageGroup",
    "FifoThroughputLimit": "perMessageGroupId",
}


def _message(message_id: str, group: str | None) -> dict[str, Any]:
    attributes = {"MessageGroupId": group} if group is not None else {}
    return {"MessageId": message_id, "Attributes": attributes}


def _fifo_queue(sqs: Any, groups: dict[str, int]) -> str:
    url = str(sqs.create_queue(QueueName="audit.fifo", Attributes=FIFO_ATTRIBUTES)["QueueUrl"])
    for index in range(max(groups.values())):
        for group, count in groups.items():
            if index < count:
                sqs.send_message(
                    QueueUrl=url,
                    MessageBody=f"{group}-{index}",
                    MessageGroupId=group,
                    MessageDeduplicationId=f"{group}-{index}",
                )
    return url


def test_a_failure_followed_by_a_success_in_one_group_is_a_reordering() -> None:
    # Given a batch with two groups, a failing in its second message and b failing last
    batch = [
        _message("1", "a"),
        _message("2", "a"),
        _message("3", "b"),
        _message("4", "a"),
        _message("5", "b"),
    ]

    # When only a's second message is reported, then a would be reordered
    assert reordered_groups(batch, {"2"}) == {"a"}
    # When every message of a from its first failure on is reported, nothing is reordered
    assert reordered_groups(batch, {"2", "4", "5"}) == set()
    # And standard-queue messages (no group) are never counted
    assert reordered_groups([_message("1", None), _message("2", None)], {"1"}) == set()


def test_fifo_queues_are_recognised_by_their_arn() -> None:
    assert is_fifo("arn:aws:sqs:us-east-1:123456789012:x-AuditQueue-ABC.fifo")
    assert not is_fifo("arn:aws:sqs:us-east-1:123456789012:x-IngestQueue-ABC")


@mock_aws
def test_fifo_sequence_numbers_grow_in_send_order() -> None:
    # Given the patched moto and a FIFO queue with two interleaved groups
    moto_patches.apply()
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = _fifo_queue(sqs, {"a": 4, "b": 4})

    # When everything is received
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])[
        "Messages"
    ]

    # Then each group comes in send order and SequenceNumbers are 20 digits, increasing in send order
    for group in ("a", "b"):
        bodies = [m["Body"] for m in messages if m["Attributes"]["MessageGroupId"] == group]
        assert bodies == [f"{group}-{i}" for i in range(4)]
    numbers = [m["Attributes"]["SequenceNumber"] for m in messages]
    assert all(len(n) == 20 and n.isdigit() for n in numbers)
    assert [int(n) for n in numbers] == sorted(int(n) for n in numbers)


@mock_aws
def test_an_in_flight_group_is_not_handed_to_a_concurrent_receiver() -> None:
    # Given a FIFO queue with four groups of five messages and eight receivers starting together
    moto_patches.apply()
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = _fifo_queue(sqs, {"a": 5, "b": 5, "c": 5, "d": 5})
    clients = [boto3.client("sqs", region_name="us-east-1") for _ in range(8)]
    start = threading.Barrier(len(clients))
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    def receive(client: Any) -> None:
        start.wait()
        response = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
        )
        with lock:
            received.extend(response.get("Messages", []))

    # When each receives one message at the same time
    threads = [threading.Thread(target=receive, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # Then no group went to two receivers, and each group handed out its first message
    groups = [m["Attributes"]["MessageGroupId"] for m in received]
    assert len(groups) == len(set(groups)) == 4
    assert sorted(m["Body"] for m in received) == ["a-0", "b-0", "c-0", "d-0"]
    # And while those are in flight, nothing else can be received
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)


@mock_aws
def test_a_deleted_message_releases_its_group_to_the_next_receive() -> None:
    # Given one message of group a in flight
    moto_patches.apply()
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = _fifo_queue(sqs, {"a": 3})
    (first,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]

    # When it is deleted (processed)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])

    # Then the rest of the group follows, in order
    rest = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [first["Body"], *(m["Body"] for m in rest)] == ["a-0", "a-1", "a-2"]


@mock_aws
def test_messages_of_a_group_that_time_out_together_come_back_in_order() -> None:
    # Given a whole group received and not deleted (a failed batch), visible again at once
    moto_patches.apply()
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = _fifo_queue(sqs, {"a": 4})
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    assert [m["Body"] for m in received] == ["a-0", "a-1", "a-2", "a-3"]
    time.sleep(0.01)  # past the (zero) visibility timeout

    # When they are received again
    again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]

    # Then the group comes back whole and in order (moto alone handed out the first one last)
    assert [m["Body"] for m in again] == ["a-0", "a-1", "a-2", "a-3"]
