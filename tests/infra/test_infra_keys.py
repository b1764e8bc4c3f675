"""The daily key job's infrastructure: a scheduled function with ReEncrypt only on the field key (data
keys only), the shred ledger listed and nothing else of the anchor bucket, alarms, migrations first."""

from __future__ import annotations

from typing import Any

import pytest

from infra import constants as c
from tests.infra.conftest import Resource, Synthesized
from tests.infra.test_infra_template import _actions_on, _as_list, _function_by_handler, _statements_of_role

pytestmark = pytest.mark.infra


def _job(synthesized: Synthesized) -> tuple[str, Resource]:
    return _function_by_handler(synthesized, "keys", "rewrap.handler")


def _logical_id(synthesized: Synthesized, prefix: str, resource_type: str) -> str:
    (found,) = [lid for lid in synthesized.of_type(resource_type) if lid.startswith(prefix)]
    return found


def test_the_job_runs_daily_in_the_vpc_with_one_concurrent_run(synthesized: Synthesized) -> None:
    lid, fn = _job(synthesized)
    props = fn["Properties"]
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["VpcConfig"]["SubnetIds"]
    env = props["Environment"]["Variables"]
    field_key = _logical_id(synthesized, "DataProtectionFieldKey", "AWS::KMS::Key")
    anchor = _logical_id(synthesized, "AuditAnchorBucket", "AWS::S3::Bucket")
    assert env["FIELD_KEY_ID"] == {"Fn::GetAtt": [field_key, "Arn"]}
    assert env["SHRED_LEDGER_BUCKET"] == {"Ref": anchor}
    assert {"DB_HOST", "AUDIT_QUEUE_URL", "KEY_REWRAP_MAX_AGE_DAYS"} <= set(env)
    [rule] = [
        r
        for r in synthesized.of_type("AWS::Events::Rule").values()
        if any(t["Arn"] == {"Fn::GetAtt": [lid, "Arn"]} for t in r["Properties"]["Targets"])
    ]
    expression = f"cron({c.KEY_REWRAP_SCHEDULE_MINUTE} {c.KEY_REWRAP_SCHEDULE_HOUR_UTC} * * ? *)"
    assert rule["Properties"]["ScheduleExpression"] == expression


def test_the_job_may_reencrypt_data_keys_of_the_field_key_only(synthesized: Synthesized) -> None:
    _, fn = _job(synthesized)
    statements = _statements_of_role(synthesized, fn["Properties"]["Role"]["Fn::GetAtt"][0])
    field_key = _logical_id(synthesized, "DataProtectionFieldKey", "AWS::KMS::Key")
    kms = [st for st in statements if any(str(a).startswith("kms:ReEncrypt") for a in _as_list(st["Action"]))]
    assert len(kms) == 1
    assert sorted(_as_list(kms[0]["Action"])) == ["kms:ReEncryptFrom", "kms:ReEncryptTo"]
    assert kms[0]["Resource"] == {"Fn::GetAtt": [field_key, "Arn"]}
    assert kms[0]["Condition"] == {"StringEquals": {"kms:EncryptionContext:purpose": "field-data-key"}}
    # And nothing else on the field key (it never unwraps or generates a data key), and no object access
    on_field_key = [st for st in statements if field_key in str(st["Resource"])]
    assert on_field_key == kms
    actions = _actions_on(statements)
    assert not {a for a in actions if str(a).startswith("s3:") and a != "s3:ListBucket"}


def test_the_job_lists_only_the_ledger_prefix_of_the_anchor_bucket(synthesized: Synthesized) -> None:
    _, fn = _job(synthesized)
    statements = _statements_of_role(synthesized, fn["Properties"]["Role"]["Fn::GetAtt"][0])
    anchor = _logical_id(synthesized, "AuditAnchorBucket", "AWS::S3::Bucket")
    [listing] = [st for st in statements if "s3:ListBucket" in _as_list(st["Action"])]
    assert listing["Resource"] == {"Fn::GetAtt": [anchor, "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{c.SHRED_LEDGER_PREFIX}*"]}}


def test_the_job_is_alarmed_and_deploys_after_the_migrations(synthesized: Synthesized) -> None:
    lid, fn = _job(synthesized)
    alarms = synthesized.of_type("AWS::CloudWatch::Alarm").values()
    metrics = {a["Properties"].get("MetricName") for a in alarms}
    assert set(c.KEY_JOB_ALARM_METRICS) <= metrics
    errors = [
        a
        for a in alarms
        if a["Properties"].get("MetricName") == "Errors"
        and {"Name": "FunctionName", "Value": {"Ref": lid}} in a["Properties"].get("Dimensions", [])
    ]
    assert len(errors) == 1
    depends: Any = fn.get("DependsOn", [])
    trigger = [d for d in _as_list(depends) if "Migrat" in d]
    assert trigger, "the key job must deploy after this deploy's migrations"
