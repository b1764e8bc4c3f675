"""Operational alerts through SNS (the DSR SLA monitor's deadline alerts)."""

from __future__ import annotations

from typing import Any

from compliance.aws.clients import error_code
from compliance.errors import DomainError


class AlertUnavailableError(DomainError):
    status = 503
    title = "Alerting unavailable"


class SnsAlertPublisher:
    def __init__(self, topic_arn: str, client: Any = None) -> None:
        self._topic_arn = topic_arn
        self._client = client

    def __repr__(self) -> str:
        return f"SnsAlertPublisher(topic_arn={self._topic_arn!r})"

    def publish(self, subject: str, message: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            from compliance.aws.clients import client

            self._client = client("sns")
        try:
            # SNS subjects: at most 100 ASCII characters.
            self._client.publish(TopicArn=self._topic_arn, Subject=subject[:100], Message=message)
        except (BotoCoreError, ClientError) as exc:
            raise AlertUnavailableError(f"the alert could not be published ({error_code(exc)})") from exc
