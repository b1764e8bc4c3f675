"""Step Functions executions run by moto's interpreter dispatch Lambda tasks to in-process functions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from compliance_tools.local.runtime import LocalRuntime
from tests.integration.local_runtime.local_runtime_fixtures import Assembly, python_function

STEPS = """
    import json
    import os

    import boto3

    sfn = boto3.client("stepfunctions")


    def add(event, context):
        return {"total": event["a"] + event["b"]}


    def double(event, context):
        return {"total": event["total"] * 2}


    def callback(event, context):
        # What a real callback worker does: answer the task token through the Step Functions API.
        sfn.send_task_success(taskToken=event["token"], output=json.dumps({"approved": event["total"] > 10}))
        return None


    def explode(event, context):
        raise RuntimeError("step failed")
"""


def definition() -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                '{"StartAt":"Add","States":{',
                '"Add":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",',
                '"Parameters":{"FunctionName":"',
                {"Fn::GetAtt": ["Add", "Arn"]},
                '","Payload.$":"$"},"ResultSelector":{"total.$":"$.Payload.total"},"Next":"Double"},',
                '"Double":{"Type":"Task","Resource":"',
                {"Fn::GetAtt": ["Double", "Arn"]},
                '","Next":"Approve"},',
                '"Approve":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",',
                '"Parameters":{"FunctionName":"',
                {"Ref": "Callback"},
                '","Payload":{"token.$":"$$.Task.Token","total.$":"$.total"}},',
                '"TimeoutSeconds":30,"End":true}}}',
            ],
        ]
    }


@pytest.fixture(scope="module")
def runtime(assembly: Assembly) -> Iterator[LocalRuntime]:
    steps = assembly.asset("steps", {"steps.py": STEPS})
    template = assembly.template(
        {
            "Add": python_function(steps, "steps.add"),
            "Double": python_function(steps, "steps.double"),
            "Callback": python_function(steps, "steps.callback"),
            "Explode": python_function(steps, "steps.explode"),
            "Flow": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": definition(),
                    "RoleArn": "arn:aws:iam::123456789012:role/x",
                },
            },
            "Failing": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "Definition": {
                        "StartAt": "Explode",
                        "States": {
                            "Explode": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::lambda:invoke",
                                "Parameters": {"FunctionName": "${ExplodeArn}", "Payload.$": "$"},
                                "End": True,
                            }
                        },
                    },
                    "DefinitionSubstitutions": {"ExplodeArn": {"Fn::GetAtt": ["Explode", "Arn"]}},
                },
            },
        }
    )
    with LocalRuntime(template, data_dir=assembly.root.parent / "sfn-data", pg_factory=None) as local:
        yield local


def run(runtime: LocalRuntime, machine: str, payload: dict[str, Any]) -> dict[str, Any]:
    sfn = runtime.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=runtime.resources[machine], input=json.dumps(payload))[
        "executionArn"
    ]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(0.1)
    raise AssertionError(f"{machine} still running")


def test_lambda_tasks_run_in_process_including_wait_for_task_token(runtime: LocalRuntime) -> None:
    # When the state machine runs: lambda:invoke, then a bare function ARN, then .waitForTaskToken
    execution = run(runtime, "Flow", {"a": 3, "b": 4})
    # Then every task ran locally and the callback's SendTaskSuccess resumed the execution
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == {"approved": True}


def test_a_failing_lambda_task_fails_the_execution_with_its_error(runtime: LocalRuntime) -> None:
    execution = run(runtime, "Failing", {})
    assert execution["status"] == "FAILED"
    assert execution["error"] == "RuntimeError"
    assert json.loads(execution["cause"])["errorMessage"] == "step failed"
