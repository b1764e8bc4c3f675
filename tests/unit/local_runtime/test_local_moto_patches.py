"""moto's SQS speed-ups keep its behaviour: counts, visibility, retention, DLQ redrive (in-process mock)."""

from __future__ import annotations

import json
import time

import boto3
from moto import mock_aws

from compliance_tools.local import moto_patches


@mock_aws
def test_queue_behaviour_is_unchanged_with_the_patches() -> None:
    moto_patches.apply()
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="work",
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}),
        },
    )["QueueUrl"]
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)])
    sqs.send_message(QueueUrl=queue, MessageBody="later", DelaySeconds=60)

    def counts() -> tuple[str, str, str]:
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        return (
            attributes["ApproximateNumberOfMessages"],
            attributes["ApproximateNumberOfMessagesNotVisible"],
            attributes["ApproximateNumberOfMessagesDelayed"],
        )

    assert counts() == ("3", "0", "1")
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=2)["Messages"]
    assert len(received) == 2
    assert counts() == ("1", "2", "1")
    # After the visibility timeout, messages received maxReceiveCount times move to the DLQ
    time.sleep(1.1)
    remaining = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert len(remaining) == 1
    moved = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in moved) == sorted(m["Body"] for m in received)
