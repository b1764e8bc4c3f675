"""SQS Lambda events and the partial-batch response rules of event source mappings."""

from __future__ import annotations

from typing import Any

from compliance_tools.local.lambdas import InvocationResult
from compliance_tools.local.sqs import failed_message_ids, sqs_record

QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:work"


def test_record_has_the_shape_of_a_real_sqs_event_record() -> None:
    # Given a ReceiveMessage message with attributes
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh-1",
        "MD5OfBody": "md5",
        "Body": '{"a": 1}',
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
        "MD5OfMessageAttributes": "md5attrs",
        "MessageAttributes": {
            "kind": {"StringValue": "usage", "DataType": "String"},
            "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
        },
    }
    # When it becomes an event record
    record = sqs_record(message, QUEUE_ARN, "eu-west-1")
    # Then the keys are Lambda's
    assert record == {
        "messageId": "m-1",
        "receiptHandle": "rh-1",
        "body": '{"a": 1}',
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
        "messageAttributes": {
            "kind": {
                "stringValue": "usage",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
            "blob": {
                "binaryValue": "AAE=",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfBody": "md5",
        "md5OfMessageAttributes": "md5attrs",
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "eu-west-1",
    }


def result(payload: Any, error: dict[str, Any] | None = None) -> InvocationResult:
    return InvocationResult("Fn", "req", payload, error, 1.0)


IDS = ["a", "b", "c"]


def test_an_error_fails_the_whole_batch() -> None:
    failed = failed_message_ids(result(None, {"errorType": "ValueError"}), IDS, report_item_failures=True)
    assert failed == set(IDS)


def test_without_report_batch_item_failures_success_deletes_everything() -> None:
    assert failed_message_ids(result({"batchItemFailures": [{"itemIdentifier": "a"}]}), IDS, False) == set()


def test_reported_item_failures_keep_only_those_messages() -> None:
    payload = {"batchItemFailures": [{"itemIdentifier": "b"}]}
    assert failed_message_ids(result(payload), IDS, True) == {"b"}


def test_empty_or_missing_failures_mean_success() -> None:
    for payload in (None, {}, {"batchItemFailures": []}, {"other": 1}):
        assert failed_message_ids(result(payload), IDS, True) == set()


def test_an_invalid_item_identifier_fails_the_whole_batch() -> None:
    for failures in ([{"itemIdentifier": "zzz"}], [{"itemIdentifier": ""}], [{}], "nope"):
        assert failed_message_ids(result({"batchItemFailures": failures}), IDS, True) == set(IDS)
