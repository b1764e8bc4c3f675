"""The botocore hook that answers moto's Step Functions Lambda calls from the local registry.

No request leaves the process: the before-call handler answers before botocore sends anything
(the client points at a closed port to prove it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

from compliance_tools.local import stepfunctions
from compliance_tools.local.lambdas import FunctionNotFoundError, InvocationResult

CLOSED_PORT_ENDPOINT = "http://127.0.0.1:9"


def fake_factory(region: str, service: str, state_credentials: Any = None) -> Any:
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=CLOSED_PORT_ENDPOINT,
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(retries={"max_attempts": 0}),
    )


@pytest.fixture
def bridge(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    calls: list[tuple[str, Any]] = []

    def invoke(name: str, event: Any) -> InvocationResult:
        calls.append((name, event))
        if name.endswith("missing"):
            raise FunctionNotFoundError(name)
        if event.get("fail"):
            error = {"errorType": "ValueError", "errorMessage": "nope"}
            return InvocationResult("Fn", "r", error, error, 1.0)
        return InvocationResult("Fn", "r", {"echo": event}, None, 1.0)

    def invoke_async(name: str, event: Any) -> Future[InvocationResult]:
        calls.append((f"async:{name}", event))
        future: Future[InvocationResult] = Future()
        future.set_result(InvocationResult("Fn", "r", None, None, 0.0))
        return future

    monkeypatch.setattr(lambda_eval_utils, "boto_client_for", fake_factory)
    stepfunctions.install(invoke, invoke_async)
    yield calls
    stepfunctions.uninstall()
    assert lambda_eval_utils.boto_client_for is fake_factory


def lambda_client() -> Any:
    return lambda_eval_utils.boto_client_for(region="eu-west-1", service="lambda")


def test_invoke_is_answered_in_process(bridge: list[tuple[str, Any]]) -> None:
    response = lambda_client().invoke(
        FunctionName="arn:aws:lambda:eu-west-1:1:function:f", Payload=b'{"a": 1}'
    )
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert json.load(response["Payload"]) == {"echo": {"a": 1}}
    assert bridge == [("arn:aws:lambda:eu-west-1:1:function:f", {"a": 1})]


def test_handler_errors_are_function_errors(bridge: list[tuple[str, Any]]) -> None:
    response = lambda_client().invoke(FunctionName="f", Payload=json.dumps({"fail": True}))
    assert response["FunctionError"] == "Unhandled"
    assert json.load(response["Payload"]) == {"errorType": "ValueError", "errorMessage": "nope"}


def test_event_invocations_are_queued(bridge: list[tuple[str, Any]]) -> None:
    response = lambda_client().invoke(FunctionName="f", InvocationType="Event", Payload=b"{}")
    assert response["StatusCode"] == 202
    assert bridge == [("async:f", {})]


def test_unknown_functions_are_resource_not_found(bridge: list[tuple[str, Any]]) -> None:
    with pytest.raises(ClientError) as raised:
        lambda_client().invoke(FunctionName="missing", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_other_services_are_left_alone(bridge: list[tuple[str, Any]]) -> None:
    client = lambda_eval_utils.boto_client_for(region="eu-west-1", service="sqs")
    assert client.meta.service_model.service_name == "sqs"
    assert bridge == []
