"""Data subject requests in the template: the state machine's shape (every task retried and caught, the
verification waiting on its token), each step's least privilege, the link signer, the SLA schedule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import constants as c
from tests.infra.conftest import Synthesized
from tests.infra.test_infra_template import _actions_on, _as_list, _function_by_handler, _statements_of_role

pytestmark = pytest.mark.infra

# VPC ENIs, own log group, X-Ray (every function); the proxy user and the audit queue (every DSR function).
COMMON = {
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "rds-db:connect",
    "sqs:SendMessage",
    "kms:GenerateDataKey",
    "kms:Decrypt",
}
# What each step may do beyond COMMON: nothing else.
EXTRA_ACTIONS = {
    "steps.record": set(),
    "steps.verification": {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "ses:SendEmail"},
    "steps.export": {"s3:PutObject", "s3:AbortMultipartUpload"},
    "steps.erasure": {
        "s3:PutObject",
        "s3:PutObjectRetention",
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "ses:SendEmail",
    },
    "steps.change": {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"},
    "steps.notify": {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "ses:SendEmail"},
    "api.handler": {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "states:StartExecution",
        "states:SendTaskSuccess",
        "states:StopExecution",
        "states:DescribeExecution",
    },
}


def _machine(synthesized: Synthesized) -> dict[str, Any]:
    (machine,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    return dict(machine["Properties"])


def _definition(synthesized: Synthesized) -> dict[str, Any]:
    """The ASL with each token (a function's ARN) replaced by ``<LogicalId>``."""
    body = _machine(synthesized)["DefinitionString"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else f"<{next(iter(p.values()))[0]}>" for p in parts)
    return dict(json.loads(text))


def _step(synthesized: Synthesized, handler: str) -> str:
    return _function_by_handler(synthesized, "dsr", handler)[0]


def test_the_state_machine_is_named_logged_traced_and_routes_every_type(synthesized: Synthesized) -> None:
    props = _machine(synthesized)
    assert props["StateMachineName"] == c.DSR_STATE_MACHINE_NAME
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False

    states = _definition(synthesized)["States"]
    route = states["RouteByType"]
    assert {choice["StringEquals"] for choice in route["Choices"]} == {
        "access",
        "portability",
        "erasure",
        "rectification",
        "restriction",
    }
    assert route["Default"] == "UnknownType"
    assert states["AnythingHeld"]["Choices"][0]["Variable"] == "$.no_data_held"


def test_every_task_retries_transient_errors_and_catches_into_the_failure_path(
    synthesized: Synthesized,
) -> None:
    states = _definition(synthesized)["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert set(tasks) == {
        "Record",
        "AnswerNoDataHeld",
        "SendVerification",
        "Expire",
        "Export",
        "Erase",
        "Rectify",
        "Restrict",
        "NotifyAndClose",
        "RecordFailure",
    }
    for name, task in tasks.items():
        (retry,) = task["Retry"]
        assert set(retry["ErrorEquals"]) == set(c.DSR_RETRY_ERRORS), name
        assert retry["MaxAttempts"] == c.DSR_RETRY_ATTEMPTS, name
        if name == "RecordFailure":
            assert "Catch" not in task  # the failure path's own failure fails the execution
            continue
        catches = {error: catch["Next"] for catch in task["Catch"] for error in catch["ErrorEquals"]}
        assert catches["States.ALL"] == "RecordFailure", name
    # The verification waits on its token, at most the code's validity and a day; expiry closes it
    verify = tasks["SendVerification"]
    assert verify["Resource"].endswith(":lambda:invoke.waitForTaskToken")
    assert verify["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert verify["TimeoutSeconds"] == (c.DSR_VERIFICATION_TTL_DAYS + 1) * 86400
    catches = {error: catch["Next"] for catch in verify["Catch"] for error in catch["ErrorEquals"]}
    assert catches["VerificationExpired"] == catches["States.Timeout"] == "Expire"


def test_the_state_machine_role_invokes_only_the_step_functions(synthesized: Synthesized) -> None:
    role_id = _machine(synthesized)["RoleArn"]["Fn::GetAtt"][0]
    statements = _statements_of_role(synthesized, role_id)
    (invoke,) = [st for st in statements if "lambda:InvokeFunction" in _as_list(st["Action"])]
    steps = {
        "steps.record",
        "steps.verification",
        "steps.export",
        "steps.erasure",
        "steps.change",
        "steps.notify",
    }
    assert {r["Fn::GetAtt"][0] for r in _as_list(invoke["Resource"])} == {
        _step(synthesized, s) for s in steps
    }


@pytest.mark.parametrize("handler", sorted(EXTRA_ACTIONS))
def test_each_dsr_function_holds_only_what_its_step_needs(synthesized: Synthesized, handler: str) -> None:
    fn_id = _step(synthesized, handler)
    role_id = synthesized.resources[fn_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    actions = _actions_on(_statements_of_role(synthesized, role_id))
    assert actions - COMMON == EXTRA_ACTIONS[handler], handler
    # No function may act on data keys beyond unwrapping and creating them, nor read objects
    assert "s3:GetObject" not in actions, handler


def test_links_are_signed_by_a_user_that_can_only_read_exports(synthesized: Synthesized) -> None:
    (user_id,) = synthesized.of_type("AWS::IAM::User")
    (bucket_id,) = [b for b in synthesized.of_type("AWS::S3::Bucket") if b.startswith("DsrExportsBucket")]
    (group_id,) = synthesized.of_type("AWS::IAM::Group")
    # Then its only permissions come from its group's one managed policy: read exports, through S3 only
    (policy,) = [
        p["Properties"]
        for p in synthesized.of_type("AWS::IAM::ManagedPolicy").values()
        if {"Ref": group_id} in p["Properties"].get("Groups", [])
    ]
    statements = policy["PolicyDocument"]["Statement"]
    assert {a for st in statements for a in _as_list(st["Action"])} == {"s3:GetObject", "kms:Decrypt"}
    (read,) = [st for st in statements if st["Action"] == "s3:GetObject"]
    assert read["Resource"] == {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]}
    (key,) = [st for st in statements if st["Action"] == "kms:Decrypt"]
    assert "kms:ViaService" in key["Condition"]["StringEquals"]
    user = synthesized.resources[user_id]["Properties"]
    assert "LoginProfile" not in user and "Policies" not in user and "ManagedPolicyArns" not in user
    # And its key is kept only in a KMS-encrypted secret
    (access_key_id,) = synthesized.of_type("AWS::IAM::AccessKey")
    (secret,) = [
        s["Properties"]
        for lid, s in synthesized.of_type("AWS::SecretsManager::Secret").items()
        if lid.startswith("DsrExportLinkSignerCredentials")
    ]
    assert access_key_id in json.dumps(secret["SecretString"]) and "KmsKeyId" in secret


def test_the_verification_secret_is_32_random_bytes_as_hex(synthesized: Synthesized) -> None:
    (secret,) = [
        s["Properties"]
        for lid, s in synthesized.of_type("AWS::SecretsManager::Secret").items()
        if lid.startswith("DsrVerificationSecret")
    ]
    generated = secret["GenerateSecretString"]
    assert generated["PasswordLength"] == 64 and generated["GenerateStringKey"] == "key"
    allowed = set("0123456789abcdefABCDEF")
    excluded = set(generated["ExcludeCharacters"])
    assert set(map(chr, range(ord("a"), ord("z") + 1))) - excluded <= allowed
    assert set(map(chr, range(ord("A"), ord("Z") + 1))) - excluded <= allowed


def test_the_sla_monitor_runs_hourly_and_alerts_through_an_encrypted_topic(synthesized: Synthesized) -> None:
    fn_id, fn = _function_by_handler(synthesized, "dsr", "sla.handler")
    (rule,) = [
        r["Properties"]
        for r in synthesized.of_type("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]} for t in r["Properties"].get("Targets", []))
    ]
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    (topic_id,) = [t for t in synthesized.of_type("AWS::SNS::Topic") if t.startswith("DsrSlaAlerts")]
    assert "KmsMasterKeyId" in synthesized.resources[topic_id]["Properties"]
    assert fn["Properties"]["Environment"]["Variables"]["DSR_ALERT_TOPIC_ARN"] == {"Ref": topic_id}
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    actions = _actions_on(_statements_of_role(synthesized, role_id))
    assert {"sns:Publish", "states:SendTaskFailure"} <= actions
    assert not {"states:StartExecution", "states:SendTaskSuccess", "s3:GetObject"} & actions
