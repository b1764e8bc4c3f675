"""Sending e-mail to data subjects (verification codes, export links, outcomes) through Amazon SES.

The message bodies are built by the caller; this module only delivers them. Nothing here logs an
address or a body: they are personal data (and a code or a link is a credential).
"""

from __future__ import annotations

from typing import Any, Protocol

from compliance.errors import DomainError


class EmailUnavailableError(DomainError):
    """SES refused or could not be reached: the step fails and is retried by its state machine."""

    status = 503
    title = "E-mail unavailable"


class EmailSender(Protocol):
    def send(self, to: str, subject: str, body: str) -> str:
        """Deliver a plain-text message; returns the provider's message id."""
        ...


class SesEmailSender:
    """SES ``SendEmail`` from a verified ``source`` identity (boto3 client made on first use)."""

    def __init__(self, source: str, client: Any = None) -> None:
        self._source = source
        self._client = client

    def __repr__(self) -> str:
        return f"SesEmailSender(source={self._source!r})"

    def send(self, to: str, subject: str, body: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            from compliance.aws.clients import client

            self._client = client("ses")
        try:
            response = self._client.send_email(
                Source=self._source,
                Destination={"ToAddresses": [to]},
                Message={
                    "Subject": {"Data": subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": body, "Charset": "UTF-8"}},
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise EmailUnavailableError("the e-mail could not be sent") from exc
        return str(response["MessageId"])
