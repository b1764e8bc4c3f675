"""EventBridge schedule expressions, scheduled-event payloads and target inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from compliance_tools.local.provision import RuleSpec
from compliance_tools.local.scheduler import ScheduleError, parse_schedule, scheduled_event, target_input


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_rate_expressions() -> None:
    assert parse_schedule("rate(1 minute)").next_after(at("2024-05-01T10:00:30")) == at("2024-05-01T10:01:30")
    assert parse_schedule("rate(5 minutes)").period == timedelta(minutes=5)
    assert parse_schedule("rate(2 hours)").period == timedelta(hours=2)
    assert parse_schedule("rate(1 day)").period == timedelta(days=1)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 3 * * ? *)", "2024-05-01T10:00:00", "2024-05-02T03:00:00"),
        ("cron(*/15 * * * ? *)", "2024-05-01T10:07:00", "2024-05-01T10:15:00"),
        ("cron(0 12 ? * MON-FRI *)", "2024-05-03T13:00:00", "2024-05-06T12:00:00"),  # Fri -> Mon
        ("cron(0 0 1 * ? *)", "2024-05-15T00:00:00", "2024-06-01T00:00:00"),
        ("cron(30 8 ? * 1 *)", "2024-05-01T00:00:00", "2024-05-05T08:30:00"),  # 1 = Sunday
        ("cron(0 0 1 JAN ? 2027)", "2024-05-01T00:00:00", "2027-01-01T00:00:00"),
        ("cron(0 9,17 * * ? *)", "2024-05-01T09:00:00", "2024-05-01T17:00:00"),
    ],
)
def test_cron_expressions(expression: str, after: str, expected: str) -> None:
    assert parse_schedule(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize(
    "expression",
    ["cron(0 0 L * ? *)", "cron(0 0 ? * 6#3 *)", "cron(0 0 * *)", "every day", "rate(0 minutes)"],
)
def test_unsupported_or_invalid_expressions(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(expression)


def rule(**targets: Any) -> RuleSpec:
    return RuleSpec(
        logical_id="Nightly",
        name="stack-nightly",
        arn="arn:aws:events:eu-west-1:123456789012:rule/stack-nightly",
        schedule="cron(0 3 * * ? *)",
        event_pattern=None,
        enabled=True,
        targets=(),
    )


def test_scheduled_event_payload_matches_eventbridge() -> None:
    event = scheduled_event(rule(), "123456789012", "eu-west-1", at("2024-05-01T03:00:00.123456"))
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["account"] == "123456789012"
    assert event["region"] == "eu-west-1"
    assert event["time"] == "2024-05-01T03:00:00Z"
    assert event["resources"] == ["arn:aws:events:eu-west-1:123456789012:rule/stack-nightly"]
    assert event["detail"] == {}
    assert event["version"] == "0"
    assert event["id"]


def test_target_input_variants() -> None:
    event = {"time": "T", "detail": {"x": 1}, "resources": ["arn"]}
    assert target_input({}, event) == event
    assert target_input({"Input": '{"job": "purge"}'}, event) == {"job": "purge"}
    assert target_input({"InputPath": "$.detail"}, event) == {"x": 1}
    transformer = {
        "InputPathsMap": {"t": "$.time", "x": "$.detail.x"},
        "InputTemplate": '{"at": "<t>", "n": <x>}',
    }
    assert target_input({"InputTransformer": transformer}, event) == {"at": "T", "n": 1}
