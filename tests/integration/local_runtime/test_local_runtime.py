"""The local runtime boots a template: moto resources, in-process Lambdas, SQS pollers, schedules,
the CDK trigger and the control server (no PostgreSQL here: see test_local_runtime_database)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compliance_tools.local.lambdas import FunctionImportError, FunctionNotFoundError, LambdaFunctionError
from compliance_tools.local.runtime import LocalRuntime, RuntimeStartError
from compliance_tools.local.state import fire_rule, invoke_function, read_state, state_path
from tests.integration.local_runtime.local_runtime_fixtures import Assembly, python_function, wait_until

ECHO = """
    import os

    # Read at import, like @init_environment: the runtime must set the function's environment then.
    SETTINGS = {name: value for name, value in os.environ.items() if name.startswith(("CFG_", "DB_"))}
    GREETING = open(os.environ["CFG_GREETING_FILE"]).read().strip()


    def main(event, context):
        if event.get("raise"):
            raise ValueError("boom")
        return {
            "event": event,
            "settings": SETTINGS,
            "greeting": GREETING,
            "function_name": context.function_name,
            "memory": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "request_id": context.aws_request_id,
        }
"""

OTHER = """
    import os

    WHO = os.environ["CFG_WHO"]


    def main(event, context):
        return {"who": WHO, "has_echo_settings": "CFG_QUEUE_URL" in os.environ}
"""

CONSUMER = """
    import os

    import boto3

    TABLE = os.environ["CFG_TABLE"]
    table = boto3.resource("dynamodb").Table(TABLE)


    def handler(event, context):
        failures = []
        for record in event["Records"]:
            body = record["body"]
            if body.startswith("fail"):
                failures.append({"itemIdentifier": record["messageId"]})
                continue
            table.put_item(Item={"pk": body, "record": record})
        return {"batchItemFailures": failures}
"""

INIT = """
    import os

    import boto3

    TABLE = os.environ["CFG_TABLE"]


    def handler(event, context):
        boto3.resource("dynamodb").Table(TABLE).put_item(Item={"pk": "init", "event": event})
        return {"initialised": True}
"""


def template_resources(assembly: Assembly) -> dict[str, Any]:
    echo = assembly.asset("echo", {"handler.py": ECHO})
    other = assembly.asset("other", {"handler.py": OTHER})
    consumer = assembly.asset("consumer", {"consumer.py": CONSUMER})
    init = assembly.asset("init", {"init.py": INIT})
    layer = assembly.asset("layer", {"data/greeting.txt": "hello from the layer\n"})
    return {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {"KeyPolicy": {"Version": "2012-10-17", "Statement": []}},
        },
        "SigningKey": {
            "Type": "AWS::KMS::Key",
            "Properties": {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY", "KeyPolicy": {}},
        },
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]}}},
        "Work": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": 1,
                "KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]},
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]},
                    "maxReceiveCount": 2,
                },
            },
        },
        "Ordered": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"FifoQueue": True, "ContentBasedDeduplication": True},
        },
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True},
            },
        },
        "Secret": {
            "Type": "AWS::SecretsManager::Secret",
            "Properties": {
                "GenerateSecretString": {
                    "SecretStringTemplate": '{"username":"admin"}',
                    "GenerateStringKey": "password",
                    "PasswordLength": 24,
                    "ExcludeCharacters": '"@/\\',
                }
            },
        },
        "Proxy": {
            "Type": "AWS::RDS::DBProxy",
            "Properties": {"DBProxyName": "proxy", "EngineFamily": "POSTGRESQL"},
        },
        "Shared": {
            "Type": "AWS::Lambda::LayerVersion",
            "Properties": {"Content": {"S3Bucket": "cdk-assets", "S3Key": f"{layer}.zip"}},
            "Metadata": {"aws:asset:path": layer, "aws:asset:property": "Content"},
        },
        "Echo": python_function(
            echo,
            "handler.main",
            FunctionName="echo-fn",
            Timeout=30,
            MemorySize=256,
            Layers=[{"Ref": "Shared"}],
            Environment={
                "Variables": {
                    "CFG_QUEUE_URL": {"Ref": "Work"},
                    "CFG_QUEUE_NAME": {"Fn::GetAtt": ["Work", "QueueName"]},
                    "CFG_TABLE": {"Ref": "Table"},
                    "CFG_SECRET_ARN": {"Ref": "Secret"},
                    "CFG_KEY_ARN": {"Fn::GetAtt": ["Key", "Arn"]},
                    "CFG_SUB": {"Fn::Sub": "${AWS::Region}/${Work.QueueName}/${!literal}"},
                    "CFG_GREETING_FILE": "/opt/data/greeting.txt",
                    "DB_HOST": {"Fn::GetAtt": ["Proxy", "Endpoint"]},
                    "DB_PORT": "5432",
                }
            },
        ),
        "EchoVersion": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Echo"}}},
        "Other": python_function(other, "handler.main", Environment={"Variables": {"CFG_WHO": "other"}}),
        "Consumer": python_function(
            consumer, "consumer.handler", Environment={"Variables": {"CFG_TABLE": {"Ref": "Table"}}}
        ),
        "ConsumerMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": "Consumer"},
                "EventSourceArn": {"Fn::GetAtt": ["Work", "Arn"]},
                "BatchSize": 10,
                "MaximumBatchingWindowInSeconds": 0,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        },
        "Init": python_function(
            init, "init.handler", Environment={"Variables": {"CFG_TABLE": {"Ref": "Table"}}}
        ),
        "InitVersion": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Init"}}},
        "InitTrigger": {
            "Type": "Custom::Trigger",
            "Properties": {
                "ServiceToken": {"Fn::GetAtt": ["TriggerProvider", "Arn"]},
                "HandlerArn": {"Ref": "InitVersion"},
                "InvocationType": "RequestResponse",
                "Timeout": "120000",
            },
            "DependsOn": ["Table"],
        },
        "TriggerProvider": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Code": {"S3Bucket": "cdk-assets", "S3Key": "node.zip"},
                "Handler": "__entrypoint__.handler",
                "Runtime": "nodejs22.x",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            },
        },
        "Nightly": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "ScheduleExpression": "cron(0 3 * * ? *)",
                "State": "ENABLED",
                "Targets": [
                    {"Arn": {"Fn::GetAtt": ["Echo", "Arn"]}, "Id": "echo", "Input": '{"from": "schedule"}'},
                    {
                        "Arn": {"Fn::GetAtt": ["Ordered", "Arn"]},
                        "Id": "queue",
                        "SqsParameters": {"MessageGroupId": "g"},
                    },
                ],
            },
        },
        "Hourly": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": "hourly-rule",
                "ScheduleExpression": "rate(1 hour)",
                "Targets": [{"Arn": {"Fn::GetAtt": ["Echo", "Arn"]}, "Id": "echo"}],
            },
        },
        "Mystery": {"Type": "Custom::Mystery", "Properties": {"ServiceToken": "arn:aws:lambda:::function:x"}},
    }


@pytest.fixture(scope="module")
def runtime(assembly: Assembly) -> Iterator[LocalRuntime]:
    template = assembly.template(
        template_resources(assembly), Outputs={"QueueUrl": {"Value": {"Ref": "Work"}}}
    )
    ready: list[LocalRuntime] = []
    local = LocalRuntime(
        template,
        data_dir=assembly.root.parent / "local-data",
        pg_factory=None,
        on_ready=ready.append,
        region="eu-west-1",
    )
    with local:
        assert ready == [local]
        yield local
    assert not state_path(local.data_dir).exists()


def test_resources_are_created_in_moto(runtime: LocalRuntime) -> None:
    # Given the started runtime
    sqs = runtime.client("sqs")
    # Then queues exist with their template attributes, FIFO included
    attributes = sqs.get_queue_attributes(QueueUrl=runtime.resources["Work"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == "1"
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == runtime.attribute("Dlq", "Arn")
    assert attributes["KmsMasterKeyId"] == runtime.attribute("Key", "Arn")
    assert runtime.resources["Ordered"].endswith(".fifo")
    # And the asymmetric key has its key spec
    key = runtime.client("kms").describe_key(KeyId=runtime.resources["SigningKey"])["KeyMetadata"]
    assert key["KeySpec"] == "ECC_NIST_P256"
    # And the secret was generated from its template
    secret = json.loads(
        runtime.client("secretsmanager").get_secret_value(SecretId=runtime.resources["Secret"])[
            "SecretString"
        ]
    )
    assert secret["username"] == "admin"
    assert len(secret["password"]) == 24
    assert not set('"@/\\') & set(secret["password"])
    # And outputs resolve
    assert runtime.outputs == {"QueueUrl": runtime.resources["Work"]}


def test_function_environment_is_resolved_to_local_resources(runtime: LocalRuntime) -> None:
    # When the function is invoked by logical id
    result = runtime.invoke("Echo", {"hello": "world"})
    # Then it saw its template environment at import, resolved locally
    settings = result["settings"]
    assert settings["CFG_QUEUE_URL"] == runtime.resources["Work"]
    assert settings["CFG_QUEUE_URL"].startswith(runtime.moto_endpoint)
    assert settings["CFG_TABLE"] == runtime.resources["Table"]
    assert settings["CFG_SECRET_ARN"].startswith("arn:aws:secretsmanager:eu-west-1:")
    assert settings["CFG_KEY_ARN"] == runtime.attribute("Key", "Arn")
    assert settings["CFG_SUB"] == f"eu-west-1/{runtime.attribute('Work', 'QueueName')}/${{literal}}"
    assert settings["DB_HOST"] == "127.0.0.1"
    # And /opt paths point into the layer folder
    assert result["greeting"] == "hello from the layer"
    # And the context looks like Lambda's
    assert result["function_name"] == "echo-fn"
    assert result["memory"] == 256
    assert 0 < result["remaining_ms"] <= 30_000
    assert result["event"] == {"hello": "world"}
    # And the process environment was restored after the import
    assert "CFG_QUEUE_URL" not in os.environ


def test_functions_are_found_by_name_and_arn_and_isolated(runtime: LocalRuntime) -> None:
    # Given two assets that both hold handler.py
    # When each is invoked by name, ARN or versioned ARN
    by_name = runtime.invoke("echo-fn", {})
    by_arn = runtime.invoke(runtime.attribute("Echo", "Arn"), {})
    by_version = runtime.invoke(runtime.resources["EchoVersion"], {})
    other = runtime.invoke("Other", {})
    # Then each runs its own module with its own settings
    assert by_name["function_name"] == by_arn["function_name"] == by_version["function_name"] == "echo-fn"
    assert other == {"who": "other", "has_echo_settings": False}
    with pytest.raises(FunctionNotFoundError):
        runtime.invoke("Nope", {})


def test_handler_errors_come_back_lambda_style(runtime: LocalRuntime) -> None:
    # When the handler raises
    result = runtime.invoke_result("Echo", {"raise": True})
    # Then the caller gets errorType/errorMessage
    assert not result.ok
    assert result.error is not None
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "boom"
    with pytest.raises(LambdaFunctionError) as raised:
        runtime.invoke("Echo", {"raise": True})
    assert raised.value.payload["errorType"] == "ValueError"


def test_non_python_functions_are_skipped_and_custom_resources_reported(runtime: LocalRuntime) -> None:
    assert "TriggerProvider" in runtime.functions.skipped
    assert "Mystery" in runtime.stack.skipped
    with pytest.raises(FunctionNotFoundError, match=r"nodejs22\.x"):
        runtime.invoke("TriggerProvider", {})


def test_cdk_trigger_ran_after_provisioning(runtime: LocalRuntime) -> None:
    item = runtime.client("dynamodb").get_item(
        TableName=runtime.resources["Table"], Key={"pk": {"S": "init"}}
    )["Item"]
    assert item["event"] == {"M": {}}


def test_sqs_mapping_deletes_successes_and_dead_letters_failures(runtime: LocalRuntime) -> None:
    # Given messages for the consumer, one of which it reports as failed
    sqs = runtime.client("sqs")
    sqs.send_message(
        QueueUrl=runtime.resources["Work"],
        MessageBody="ok-1",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "usage"}},
    )
    sqs.send_message(QueueUrl=runtime.resources["Work"], MessageBody="fail-1")
    dynamodb = runtime.client("dynamodb")
    # Then the good one is processed with a real SQS event record
    item = wait_until(
        lambda: dynamodb.get_item(TableName=runtime.resources["Table"], Key={"pk": {"S": "ok-1"}}).get("Item")
    )
    record = item["record"]["M"]
    assert record["eventSource"] == {"S": "aws:sqs"}
    assert record["eventSourceARN"] == {"S": runtime.attribute("Work", "Arn")}
    assert record["awsRegion"] == {"S": "eu-west-1"}
    assert record["attributes"]["M"]["ApproximateReceiveCount"] == {"S": "1"}
    assert record["messageAttributes"]["M"]["kind"]["M"]["stringValue"] == {"S": "usage"}
    assert "md5OfBody" in record and "receiptHandle" in record
    # And the failed one is retried until the redrive policy moves it to the DLQ

    def dead_letter() -> list[dict[str, Any]]:
        return sqs.receive_message(QueueUrl=runtime.resources["Dlq"], WaitTimeSeconds=1).get("Messages", [])

    dead = wait_until(dead_letter, timeout=30)
    assert dead[0]["Body"] == "fail-1"


def test_schedule_fires_now_with_target_input(runtime: LocalRuntime) -> None:
    # When the cron rule is fired by logical id
    reports = runtime.fire_rule("Nightly")
    # Then the Lambda target got the target's Input and the FIFO queue a message
    assert reports[0]["status"] == "ok"
    assert reports[0]["result"]["event"] == {"from": "schedule"}
    assert reports[1]["status"] == "ok"
    messages = runtime.client("sqs").receive_message(QueueUrl=runtime.resources["Ordered"])["Messages"]
    assert json.loads(messages[0]["Body"])["detail-type"] == "Scheduled Event"


def test_control_server_and_state_file_drive_the_runtime(runtime: LocalRuntime) -> None:
    # Given the state file the runtime wrote
    path = state_path(runtime.data_dir)
    state = read_state(path)
    assert state.moto_endpoint == runtime.moto_endpoint
    assert state.control_port == runtime.control_port
    assert state.resources["Work"] == runtime.resources["Work"]
    # When another process fires a rule by name through the control server
    answer = fire_rule("hourly-rule", path=path)
    # Then the target got the real scheduled-event payload
    event = answer["targets"][0]["result"]["event"]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == [runtime.attribute("Hourly", "Arn")]
    # And functions can be invoked the same way
    assert invoke_function("Other", {}, path=path) == {"result": {"who": "other", "has_echo_settings": False}}
    assert invoke_function("Echo", {"raise": True}, path=path)["error"]["errorType"] == "ValueError"


def test_a_second_runtime_in_the_same_process_is_refused(runtime: LocalRuntime, assembly: Assembly) -> None:
    second = LocalRuntime(runtime.template, data_dir=assembly.root.parent / "second", pg_factory=None)
    with pytest.raises(RuntimeStartError, match="already running"):
        second.start()


def test_import_errors_surface_with_the_traceback(tmp_path: Path) -> None:
    # Standalone: the module-scoped runtime above is stopped first by pytest only at module end,
    # so this test runs the loader directly.
    from compliance_tools.local.lambdas import FunctionSpec, LocalFunction

    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    function = LocalFunction(
        FunctionSpec(
            "Broken",
            "broken",
            "arn:aws:lambda:eu-west-1:1:function:broken",
            "broken.handler",
            "python3.13",
            tmp_path,
        )
    )
    with pytest.raises(FunctionImportError, match="not_a_module_anywhere"):
        function.load()
    result = function.invoke({})
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
