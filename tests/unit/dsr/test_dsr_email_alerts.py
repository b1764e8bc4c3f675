"""Delivery of DSR e-mails through SES (compliance.aws.email) and SLA alerts through SNS
(compliance.aws.alerts), on moto in-process (no network); AWS failures become 503s."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from compliance.aws.alerts import AlertUnavailableError, SnsAlertPublisher
from compliance.aws.email import EmailUnavailableError, SesEmailSender
from tests.aws_fixtures import REGION

SOURCE = "privacy@example.com"
TO = "ada.lovelace@example.com"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's account


def sent_messages() -> list[Any]:
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


@pytest.fixture
def ses(aws: None) -> Any:
    client = boto3.client("ses", region_name=REGION)
    client.verify_email_identity(EmailAddress=SOURCE)
    return client


def test_a_message_is_sent_from_the_verified_source_as_plain_text(ses: Any) -> None:
    # Given a sender on a verified identity (its client made on first use)
    sender = SesEmailSender(SOURCE)

    # When a message is sent
    message_id = sender.send(TO, "Confirm your data request", "give this code: ABCDE-12345\n")

    # Then SES accepted one message from the source to the subject, as given
    (message,) = sent_messages()
    assert message_id == message.id
    assert message.source == SOURCE
    assert message.destinations["ToAddresses"] == [TO]
    assert message.subject == "Confirm your data request"
    assert message.body == "give this code: ABCDE-12345\n"


def test_an_ses_refusal_is_a_503_that_quotes_neither_address_nor_body(aws: None) -> None:
    # Given a source identity SES has not verified (SES refuses with MessageRejected)
    sender = SesEmailSender("unverified@example.com", boto3.client("ses", region_name=REGION))

    # When a message is sent / Then the step gets a 503 to retry on, with nothing of the message in it
    with pytest.raises(EmailUnavailableError) as raised:
        sender.send(TO, "Confirm your data request", "give this code: ABCDE-12345\n")
    assert raised.value.status == 503
    assert TO not in str(raised.value) and "ABCDE" not in str(raised.value)
    assert sent_messages() == []


def test_the_sender_repr_names_the_source_only() -> None:
    assert repr(SesEmailSender(SOURCE, client=object())) == f"SesEmailSender(source={SOURCE!r})"


@pytest.fixture
def topic(aws: None) -> tuple[str, str]:
    """A topic with an SQS queue subscribed (what an operator's subscription would receive)."""
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    arn = sns.create_topic(Name="dsr-sla")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    return arn, queue_url


def received(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_an_alert_is_published_with_its_subject_cut_to_snss_limit(topic: tuple[str, str]) -> None:
    # Given a publisher on the topic (client made on first use) and a subject over 100 characters
    arn, queue_url = topic
    subject = "DSR deadlines: " + "x" * 120
    message = json.dumps({"overdue": 1, "requests": [{"request_id": "r-1"}]})

    # When the alert is published
    SnsAlertPublisher(arn).publish(subject, message)

    # Then subscribers receive the message as given, the subject at its first 100 characters
    (notification,) = received(queue_url)
    assert notification["TopicArn"] == arn
    assert notification["Subject"] == subject[:100]
    assert json.loads(notification["Message"]) == json.loads(message)


def test_a_publish_sns_refuses_is_a_503_naming_the_aws_error_code(aws: None) -> None:
    # Given a topic that does not exist
    missing = f"arn:aws:sns:{REGION}:{DEFAULT_ACCOUNT_ID}:nowhere"
    publisher = SnsAlertPublisher(missing, boto3.client("sns", region_name=REGION))

    # When an alert is published / Then it fails as unavailable, with the error code and not the message
    with pytest.raises(AlertUnavailableError) as raised:
        publisher.publish("DSR deadlines", "the body")
    assert raised.value.status == 503
    assert "NotFound" in str(raised.value)
    assert "the body" not in str(raised.value)
