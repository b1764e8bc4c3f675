"""compliance.dsr.requests where no database is needed: cursors, the API view of a row, the e-mail
look-up refusal, the DSR secret; and compliance.aws.workflow on a fake Step Functions client."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from compliance.aws.workflow import StepFunctionsWorkflow, WorkflowUnavailableError, execution_arn
from compliance.dsr import requests as service
from compliance.errors import ConfigurationError, ValidationFailedError
from compliance.models.auth import Principal, Role
from compliance.models.dsr import DsrStatus
from tests.unit.dsr.fakes import STATE_MACHINE

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REQUEST_ID = uuid.UUID("0b7e6c1e-4a5d-4f7e-9c1a-2d3e4f5a6b7c")
PRINCIPAL = Principal(org_id=uuid.uuid4(), key_id=uuid.uuid4(), roles=frozenset({Role.DPO}))


def a_row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": REQUEST_ID,
        "org_id": PRINCIPAL.org_id,
        "type": "access",
        "regulation": "gdpr",
        "status": "running",
        "subject_id": uuid.uuid4(),
        "subject_key": b"k" * 32,
        "export_formats": ["json", "csv"],
        "corrections": None,
        "received_at": NOW - timedelta(days=3),
        "deadline": NOW + timedelta(days=27),
        "extended_at": None,
        "extension_reason": None,
        "steps": [{"name": "record", "status": "succeeded", "at": NOW.isoformat(), "detail": None}],
        "export_objects": None,
        "export_expires_at": None,
        "outcome": None,
        "completed_at": None,
        "task_token": "secret-token",
        "code_hash": b"h" * 32,
    }
    return row | changes


EXPORTS = [
    {"format": "json", "key": "o/s/r/export.json", "bytes": 120, "sha256": "a" * 64, "large": False},
    {"format": "csv", "key": "o/s/r/export.zip", "bytes": 90, "sha256": "b" * 64, "large": False},
]


# ------------------------------------------------------------------------------ cursor


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    cursor = service.encode_cursor(NOW, REQUEST_ID)
    assert service.decode_cursor(cursor) == (NOW, REQUEST_ID)
    assert all(ch.isalnum() or ch in "-_" for ch in cursor) and len(cursor) <= 200


@pytest.mark.parametrize("cursor", ["bm90LWEtY3Vyc29y", "!!!", "MjAyNi0xMS0yM1QxMjowMDowMHxub3QtYS11dWlk"])
def test_a_cursor_that_is_not_ours_is_a_400(cursor: str) -> None:
    with pytest.raises(ValidationFailedError):
        service.decode_cursor(cursor)


# ------------------------------------------------------------------------------ the API view


def test_the_view_has_days_left_steps_and_no_subject_code_or_token() -> None:
    out = service.to_out(a_row(), NOW)
    assert out.days_left == 27 and out.status is DsrStatus.RUNNING and out.steps[0].name == "record"
    text = out.model_dump_json()
    assert "secret-token" not in text and "subject_key" not in text and "subject_id" not in text


def test_links_are_signed_only_while_the_export_is_kept() -> None:
    # Given an export kept for another hour
    signed: list[tuple[str, int]] = []

    def link_for(key: str, seconds: int) -> str:
        signed.append((key, seconds))
        return f"https://exports.invalid/{key}"

    row = a_row(export_objects=EXPORTS, export_expires_at=NOW + timedelta(hours=1))
    # When viewed with a 7-day link setting / Then each object is linked, never beyond its expiry
    out = service.to_out(row, NOW, link_for=link_for, link_seconds=7 * 86400)
    assert out.export_url == "https://exports.invalid/o/s/r/export.json"
    assert [e.url is not None for e in out.exports] == [True, True]
    assert signed == [("o/s/r/export.json", 3600), ("o/s/r/export.zip", 3600)]
    assert (out.export_sha256, out.export_bytes) == ("a" * 64, 120)
    # And once expired, nothing is signed
    signed.clear()
    expired = service.to_out(row, NOW + timedelta(hours=2), link_for=link_for)
    assert expired.export_url is None and signed == []


# ------------------------------------------------------------------------------ create, before the database


class NoDatabase:
    def tenant(self, org_id: uuid.UUID) -> Any:
        raise AssertionError("the database must not be reached")

    unscoped = tenant


# ------------------------------------------------------------------------------ the DSR secret


class FakeSecrets:
    def __init__(self, value: Any) -> None:
        self.value = value

    def get_secret_value(self, SecretId: str) -> dict[str, str]:  # noqa: N803 - boto3's name
        return {"SecretString": json.dumps(self.value)}


def test_the_secret_is_the_hex_key() -> None:
    assert service.read_dsr_secret(FakeSecrets({"key": "ab" * 32}), "arn:secret") == b"\xab" * 32


@pytest.mark.parametrize("value", [{"key": "ab" * 8}, {"key": "not hex"}, {"other": "ab" * 32}, {"key": 42}])
def test_a_short_or_malformed_secret_fails_without_echoing_it(value: Any) -> None:
    with pytest.raises(ConfigurationError) as raised:
        service.read_dsr_secret(FakeSecrets(value), "arn:secret")
    assert "abab" not in str(raised.value) and "arn:secret" in str(raised.value)


# ------------------------------------------------------------------------------ Step Functions client


class ClientError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(f"{code}: a message that may quote input")
        self.response = {"Error": {"Code": code}}


class FakeSfn:
    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, op: str, /, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((op, kwargs))
        if self.error:
            raise ClientError(self.error)
        return {"executionArn": execution_arn(STATE_MACHINE, str(kwargs.get("name", "")))}

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("start_execution", **kwargs)

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("send_task_success", **kwargs)

    def stop_execution(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("stop_execution", **kwargs)

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("send_task_failure", **kwargs)


def test_start_names_the_execution_by_the_request_and_is_idempotent() -> None:
    expected = f"arn:aws:states:us-east-1:000000000000:execution:dsr:{REQUEST_ID}"
    fake = FakeSfn()
    assert StepFunctionsWorkflow(STATE_MACHINE, fake).start(REQUEST_ID, {"request_id": "x"}) == expected
    assert fake.calls[0][1]["name"] == str(REQUEST_ID) and json.loads(fake.calls[0][1]["input"]) == {
        "request_id": "x"
    }
    # A second start finds the execution already there: the same ARN, no error
    assert (
        StepFunctionsWorkflow(STATE_MACHINE, FakeSfn("ExecutionAlreadyExists")).start(REQUEST_ID, {})
        == expected
    )


def test_resume_and_stop_send_what_they_are_given() -> None:
    fake = FakeSfn()
    workflow = StepFunctionsWorkflow(STATE_MACHINE, fake)
    workflow.resume("token", {"verified": True})
    workflow.stop("arn:exec", "x" * 1000)
    assert fake.calls[0] == ("send_task_success", {"taskToken": "token", "output": '{"verified": true}'})
    assert fake.calls[1][1]["executionArn"] == "arn:exec" and len(fake.calls[1][1]["cause"]) == 256
    workflow.fail_task("token", "VerificationExpired", "the code expired")
    assert fake.calls[2] == (
        "send_task_failure",
        {"taskToken": "token", "error": "VerificationExpired", "cause": "the code expired"},
    )
    # Stopping an execution that has ended, or failing a task that no longer waits, is fine
    StepFunctionsWorkflow(STATE_MACHINE, FakeSfn("ExecutionDoesNotExist")).stop("arn:exec", "cancelled")
    StepFunctionsWorkflow(STATE_MACHINE, FakeSfn("TaskTimedOut")).fail_task("token", "E", "c")


@pytest.mark.parametrize("call", ["start", "resume", "stop", "fail_task"])
def test_an_outage_is_a_503_naming_the_code_only(call: str) -> None:
    workflow = StepFunctionsWorkflow(STATE_MACHINE, FakeSfn("ServiceUnavailable"))
    with pytest.raises(WorkflowUnavailableError) as raised:
        match call:
            case "start":
                workflow.start(REQUEST_ID, {})
            case "resume":
                workflow.resume("token", {})
            case "fail_task":
                workflow.fail_task("token", "E", "c")
            case _:
                workflow.stop("arn:exec", "cancelled")
    assert raised.value.status == 503 and "ServiceUnavailable" in raised.value.detail
    assert "quote input" not in raised.value.detail


def test_an_arn_that_is_not_a_state_machine_is_refused() -> None:
    with pytest.raises(ValueError):
        execution_arn("arn:aws:lambda:us-east-1:0:function:f", "x")
