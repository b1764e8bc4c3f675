"""The PII sweep's infrastructure: a daily schedule, a function that reads through the proxy as the
application role and publishes audit events, and nothing more; alarms on its findings and failures."""

from __future__ import annotations

from typing import Any

import pytest

from infra import constants as c
from tests.infra.conftest import Synthesized
from tests.infra.test_infra_template import (
    PROXY_ENV,
    _as_list,
    _function_by_handler,
    _ref,
    _statements_of_role,
)

pytestmark = pytest.mark.infra

# VPC ENIs, its own log group and X-Ray: what every function of the app has.
BASELINE_ACTIONS = {
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
}


def _sweep(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    return _function_by_handler(synthesized, "pii", "sweep.handler")


def _allowed(synthesized: Synthesized, function: dict[str, Any]) -> list[dict[str, Any]]:
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [st for st in _statements_of_role(synthesized, role_id) if st["Effect"] == "Allow"]


def test_the_sweep_runs_daily_on_a_schedule(synthesized: Synthesized) -> None:
    # Given the sweep function and the rules that target it
    sweep_id, _ = _sweep(synthesized)
    rules = [
        r["Properties"]
        for r in synthesized.of_type("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [sweep_id, "Arn"]} for t in r["Properties"].get("Targets", []))
    ]

    # Then one rule invokes it once a day, and EventBridge may invoke it
    (rule,) = rules
    assert rule["ScheduleExpression"] == (
        f"cron({c.PII_SWEEP_SCHEDULE_MINUTE} {c.PII_SWEEP_SCHEDULE_HOUR_UTC} * * ? *)"
    )
    assert rule["State"] == "ENABLED"
    permissions = [
        p["Properties"]
        for p in synthesized.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [sweep_id, "Arn"]}
    ]
    assert [p["Principal"] for p in permissions] == ["events.amazonaws.com"]


def test_the_sweep_reaches_the_database_through_the_proxy_as_the_app_role(synthesized: Synthesized) -> None:
    # Given the sweep function, the proxy and the database clients' security group
    _, sweep = _sweep(synthesized)
    props = sweep["Properties"]
    (proxy_id,) = synthesized.of_type("AWS::RDS::DBProxy")
    _, admin = _function_by_handler(synthesized, "admin", "api.handler")
    variables = props["Environment"]["Variables"]

    # Then it has the proxy endpoint with IAM auth as the application user, and the audit queue
    assert variables["DB_HOST"] == {"Fn::GetAtt": [proxy_id, "Endpoint"]}
    assert {k: variables[k] for k in PROXY_ENV} == PROXY_ENV
    assert "AUDIT_QUEUE_URL" in variables
    assert int(variables["PII_SWEEP_ORG_BYTES"]) == c.PII_SWEEP_ORG_BYTES
    # And the same security group as the other proxy clients (the proxy admits only that group)
    assert props["VpcConfig"]["SecurityGroupIds"] == admin["Properties"]["VpcConfig"]["SecurityGroupIds"]
    # And one run at a time, with Lambda's longest timeout for its time budget
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Timeout"] == c.PII_SWEEP_FN.timeout.to_seconds() == 900


def test_the_sweep_role_has_only_what_it_needs(synthesized: Synthesized) -> None:
    # Given the sweep's policy statements
    _, sweep = _sweep(synthesized)
    statements = _allowed(synthesized, sweep)
    actions = {a for st in statements for a in _as_list(st["Action"])}
    (field_key_id,) = [
        lid for lid in synthesized.of_type("AWS::KMS::Key") if lid.startswith("DataProtection")
    ]

    # Then it may connect to the database, send to the audit queue, and nothing else
    assert actions == BASELINE_ACTIONS | {
        "rds-db:connect",
        "sqs:SendMessage",
        "kms:GenerateDataKey",
        "kms:Decrypt",
    }
    (connect,) = [st for st in statements if "rds-db:connect" in _as_list(st["Action"])]
    assert "compliance_app" in str(connect["Resource"])
    # And its KMS use is the audit queue's, through SQS only: never the field key, never directly
    for st in statements:
        if any(a.startswith("kms:") for a in _as_list(st["Action"])):
            assert st["Condition"]["StringEquals"]["kms:ViaService"] == {
                "Fn::Join": ["", ["sqs.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
            }
            assert {"Fn::GetAtt": [field_key_id, "Arn"]} not in _as_list(st["Resource"])
    # And no S3, Secrets Manager or other database user
    assert not any(a.startswith(("s3:", "secretsmanager:")) for a in actions)


def test_alarms_on_sweep_findings_failures_and_errors(synthesized: Synthesized) -> None:
    # Given the alarms of the stack and the alarm topic
    sweep_id, _ = _sweep(synthesized)
    alarms = [a["Properties"] for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()]
    (topic_id,) = [lid for lid in synthesized.of_type("AWS::SNS::Topic") if lid.startswith("Security")]
    by_metric = {
        a["MetricName"]: a
        for a in alarms
        if a.get("Namespace") == c.POWERTOOLS_METRICS_NAMESPACE
        and a["Dimensions"] == [{"Name": "service", "Value": c.POWERTOOLS_SERVICE_NAME}]
    }

    # Then any finding, failed or unreached organisation raises an alarm to the topic
    for name in ("PiiSweepFindings", "PiiSweepFailed", "PiiSweepIncomplete"):
        alarm = by_metric[name]
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold"), name
        assert alarm["Statistic"] == "Sum" and alarm["AlarmActions"] == [_ref(topic_id)], name
    # And so does a failed invocation of the function
    errors = [
        a
        for a in alarms
        if a.get("MetricName") == "Errors"
        and a["Dimensions"] == [{"Name": "FunctionName", "Value": _ref(sweep_id)}]
    ]
    assert len(errors) == 1 and errors[0]["Threshold"] == 0


def test_the_sweep_deploys_after_the_migrations(synthesized: Synthesized) -> None:
    # Given the migration trigger and the sweep function
    (trigger_id,) = synthesized.of_type("Custom::Trigger")
    _, sweep = _sweep(synthesized)

    # Then the function depends on the trigger: it never runs against an older schema
    assert trigger_id in sweep.get("DependsOn", []), sweep.get("DependsOn")
