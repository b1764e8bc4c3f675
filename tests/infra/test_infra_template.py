"""Template assertions: what the synthesized CloudFormation must guarantee, resource by resource."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra import constants as c
from tests.infra.conftest import Resource, Synthesized

pytestmark = pytest.mark.infra

PROXY_ENV = {
    "DB_PORT": "5432",
    "DB_NAME": "compliance",
    "DB_USER": "compliance_app",
    "DB_AUTH": "iam",
    "DB_SSLMODE": "require",
}
COMMON_ENV = {
    "POWERTOOLS_SERVICE_NAME": "compliance",
    "POWERTOOLS_METRICS_NAMESPACE": "ComplianceControlPlane",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}
EXPECTED_ROUTES = {
    ("POST", "/v1/usage"): "ingest",
    ("GET", "/v1/usage/{request_id}"): "admin",
    ("POST", "/v1/consents"): "admin",
    ("POST", "/v1/consents/{consent_id}/revoke"): "admin",
    ("GET", "/v1/subjects/{subject_id}/consents"): "admin",
    ("GET", "/v1/settings/pii"): "admin",
    ("PUT", "/v1/settings/pii"): "admin",
    ("GET", "/v1/api-keys"): "admin",
    ("POST", "/v1/api-keys"): "admin",
    ("GET", "/v1/api-keys/{key_id}"): "admin",
    ("POST", "/v1/api-keys/{key_id}/revoke"): "admin",
    ("GET", "/v1/catalog"): "admin",
    ("GET", "/v1/catalog/personal-data"): "admin",
    ("POST", "/v1/pii/scan"): "pii",
    ("GET", "/v1/audit/events"): "audit",
    ("GET", "/v1/audit/events/{event_id}"): "audit",
    ("GET", "/v1/audit/events/{event_id}/proof"): "audit",
    ("GET", "/v1/audit/verify"): "audit",
    ("GET", "/v1/audit/checkpoints"): "audit",
    ("GET", "/v1/audit/checkpoints/{number}"): "audit",
    ("GET", "/v1/audit/checkpoints/{number}/consistency/{to_number}"): "audit",
    ("GET", "/v1/audit/public-key"): "audit",
    ("POST", "/v1/audit/exports"): "audit",
    ("POST", "/v1/dsr"): "dsr",
    ("GET", "/v1/dsr"): "dsr",
    ("GET", "/v1/dsr/{request_id}"): "dsr",
    ("POST", "/v1/dsr/{request_id}/extend"): "dsr",
    ("POST", "/v1/dsr/{request_id}/cancel"): "dsr",
    ("POST", "/v1/dsr/{request_id}/lift"): "dsr",
    ("POST", "/v1/dsr/{request_id}/verify"): "dsr",
}
# The data subject has no API key: the e-mailed one-time code is the credential (checked by the function).
UNAUTHENTICATED_ROUTES = {("POST", "/v1/dsr/{request_id}/verify")}


@pytest.fixture(scope="module")
def template(synthesized: Synthesized) -> Template:
    return Template.from_json(synthesized.template)


def _ref(logical_id: str) -> dict[str, str]:
    return {"Ref": logical_id}


def _function_by_handler(synthesized: Synthesized, code_dir: str, handler: str) -> tuple[str, Resource]:
    for lid, res in synthesized.app_functions().items():
        if res["Properties"]["Handler"] == handler and _code_dir(synthesized, res) == code_dir:
            return lid, res
    raise AssertionError(f"no function {code_dir}/{handler}")


def _code_dir(synthesized: Synthesized, function: Resource) -> str:
    """The source folder of a function's code asset (the staged asset keeps its files)."""
    staged = synthesized.outdir / function["Metadata"]["aws:asset:path"]

    def files(folder: Path) -> dict[str, bytes]:
        # By content, not only names: two domains can both hold just __init__.py and api.py.
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.suffix != ".pyc"}

    contents = files(staged)
    for folder in sorted(c.FUNCTIONS_DIR.iterdir()):
        if folder.is_dir() and contents == files(folder):
            return folder.name
    raise AssertionError(f"unknown code asset {staged}")


def _statements_of_role(synthesized: Synthesized, role_id: str) -> list[dict[str, Any]]:
    """Every policy statement that applies to a role: inline, attached managed and AWS::IAM::Policy."""
    role = synthesized.resources[role_id]["Properties"]
    statements: list[dict[str, Any]] = []
    for inline in role.get("Policies", []):
        statements += inline["PolicyDocument"]["Statement"]
    for resource in synthesized.resources.values():
        if resource["Type"] in {"AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"} and _ref(role_id) in resource[
            "Properties"
        ].get("Roles", []):
            statements += resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _actions_on(statements: list[dict[str, Any]]) -> set[str]:
    return {action for st in statements if st["Effect"] == "Allow" for action in _as_list(st["Action"])}


# --- Queues ---------------------------------------------------------------------------------------------


def test_every_queue_has_a_dead_letter_queue_or_is_one_and_every_queue_is_alarmed(
    synthesized: Synthesized,
) -> None:
    # Given the queues and alarms of the template
    queues = synthesized.of_type("AWS::SQS::Queue")
    alarms = synthesized.of_type("AWS::CloudWatch::Alarm").values()
    dead_letter_ids = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }

    def alarmed_queues(metric: str) -> set[str]:
        return {
            dim["Value"]["Fn::GetAtt"][0]
            for alarm in alarms
            if alarm["Properties"]["MetricName"] == metric
            for dim in alarm["Properties"]["Dimensions"]
            if dim["Name"] == "QueueName"
        }

    # Then each queue is either a DLQ or redrives to one after 3 receives
    assert dead_letter_ids
    for lid, queue in queues.items():
        props = queue["Properties"]
        assert lid in dead_letter_ids or props["RedrivePolicy"]["maxReceiveCount"] == 3, lid
        assert "KmsMasterKeyId" in props, lid
    # And every DLQ alarms on any visible message, every work queue on its backlog
    assert alarmed_queues("ApproximateNumberOfMessagesVisible") == dead_letter_ids
    assert alarmed_queues("ApproximateAgeOfOldestMessage") == set(queues) - dead_letter_ids


def test_alarms_notify_the_kms_encrypted_topic(synthesized: Synthesized, template: Template) -> None:
    # Given the alarm topic
    (topic_id,) = [lid for lid in synthesized.of_type("AWS::SNS::Topic") if lid.startswith("Security")]
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})

    # Then every alarm sends to it, and a DLQ alarm fires on the first message
    for alarm in synthesized.of_type("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == [_ref(topic_id)]
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
        },
    )


def test_every_queue_refuses_plain_http(synthesized: Synthesized) -> None:
    # Given the queue policies
    policies = synthesized.of_type("AWS::SQS::QueuePolicy").values()
    denied = {
        queue["Ref"]
        for policy in policies
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
        if st["Effect"] == "Deny"
        and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for queue in policy["Properties"]["Queues"]
    }
    # Then every queue denies requests without TLS
    assert denied == set(synthesized.of_type("AWS::SQS::Queue"))


def _mapping_of(synthesized: Synthesized, function_id: str) -> Resource:
    (mapping,) = [
        m
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == _ref(function_id)
    ]
    return mapping


@pytest.mark.parametrize(
    ("code_dir", "handler"), [("ingest", "processor.handler"), ("audit", "append.handler")]
)
def test_work_queue_visibility_is_six_times_its_consumer_timeout(
    synthesized: Synthesized, code_dir: str, handler: str
) -> None:
    # Given a consumer function and the queue its event source mapping polls
    consumer_id, consumer = _function_by_handler(synthesized, code_dir, handler)
    queue_id = _mapping_of(synthesized, consumer_id)["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
    queue = synthesized.resources[queue_id]["Properties"]

    # Then the queue's visibility timeout is 6x the function timeout
    assert queue["VisibilityTimeout"] >= 6 * consumer["Properties"]["Timeout"]


def test_event_source_mappings_report_batch_item_failures(synthesized: Synthesized) -> None:
    # Given the processor's and the audit consumer's SQS event source mappings
    processor_id, _ = _function_by_handler(synthesized, "ingest", "processor.handler")
    append_id, _ = _function_by_handler(synthesized, "audit", "append.handler")
    assert len(synthesized.of_type("AWS::Lambda::EventSourceMapping")) == 2
    ingest = _mapping_of(synthesized, processor_id)["Properties"]
    audit = _mapping_of(synthesized, append_id)["Properties"]

    # Then both deliver batches of 10 and accept partial batch failures
    for props in (ingest, audit):
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert props["BatchSize"] == 10
    # And the ingest batches gather for about a second; FIFO allows no batching window
    assert ingest["MaximumBatchingWindowInSeconds"] == 1
    assert "MaximumBatchingWindowInSeconds" not in audit


# --- Functions ------------------------------------------------------------------------------------------


def test_every_function_is_traced_arm64_python313_in_the_vpc_with_both_layers(
    synthesized: Synthesized,
) -> None:
    # Given the app's functions (CDK's own custom-resource providers aside)
    functions = synthesized.app_functions()
    layer_refs = [_ref(lid) for lid in synthesized.of_type("AWS::Lambda::LayerVersion")]

    # Then there are nineteen and every one runs the same way
    assert len(functions) == 19
    for lid, fn in functions.items():
        props = fn["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}, lid
        assert props["Architectures"] == ["arm64"], lid
        assert props["Runtime"] == "python3.13", lid
        assert len(props["VpcConfig"]["SubnetIds"]) == 2, lid
        assert props["VpcConfig"]["SecurityGroupIds"], lid
        assert props["Layers"] == layer_refs, lid
        assert props["ReservedConcurrentExecutions"] >= 1, lid
        for name, value in COMMON_ENV.items():
            assert props["Environment"]["Variables"][name] == value, lid


def test_only_cdk_provider_functions_are_outside_the_app_rules(synthesized: Synthesized) -> None:
    # Given every Lambda in the template
    others = set(synthesized.of_type("AWS::Lambda::Function")) - set(synthesized.app_functions())
    # Then the only others are CDK's providers for the migration Trigger and the default-SG restriction
    assert {lid.split("CustomResourceProvider")[0] for lid in others} == {
        "AWSCDKTrigger",
        "CustomVpcRestrictDefaultSG",
    }


def test_every_function_logs_to_its_own_kms_encrypted_group_with_retention(synthesized: Synthesized) -> None:
    # Given the functions and log groups
    groups = synthesized.of_type("AWS::Logs::LogGroup")
    used = []
    for lid, fn in synthesized.app_functions().items():
        group_id = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        group = groups[group_id]["Properties"]
        used.append(group_id)
        # Then the group keeps logs for the configured period, encrypted with the CMK
        assert group["RetentionInDays"] == c.LOG_RETENTION_DAYS, lid
        assert "KmsKeyId" in group, lid
    assert len(set(used)) == len(used)
    # And every log group of the stack has retention and KMS
    for lid, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == c.LOG_RETENTION_DAYS, lid
        assert "KmsKeyId" in group["Properties"], lid


def test_no_role_allows_every_action_on_every_resource(synthesized: Synthesized) -> None:
    # Given each function's role and what applies to it
    for lid, fn in synthesized.app_functions().items():
        role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
        role = synthesized.resources[role_id]["Properties"]
        statements = _statements_of_role(synthesized, role_id)

        # Then it has no AWS-managed policy and no wildcard action, and "*" resources only for ENI/X-Ray
        assert not role.get("ManagedPolicyArns"), lid
        assert statements, lid
        for st in statements:
            actions = _as_list(st["Action"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), (lid, st)
            if "*" in _as_list(st["Resource"]):
                assert all(a.startswith(("ec2:", "xray:")) for a in actions), (lid, st)


def test_no_inline_iam_policy_resources(synthesized: Synthesized) -> None:
    # Then permissions are customer-managed policies (IAMNoInlinePolicy), never AWS::IAM::Policy
    assert synthesized.of_type("AWS::IAM::Policy") == {}


def test_each_role_has_the_permissions_its_function_uses(synthesized: Synthesized) -> None:
    # Given the functions by purpose
    expected = {
        ("ingest", "api.handler"): {"sqs:SendMessage", "kms:GenerateDataKey"},
        ("ingest", "processor.handler"): {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "dynamodb:PutItem",
            "dynamodb:GetItem",
            "rds-db:connect",
        },
        ("auth", "authorizer.handler"): {"rds-db:connect"},
        ("admin", "api.handler"): {"rds-db:connect"},
        ("pii", "api.handler"): {"sqs:SendMessage", "kms:GenerateDataKey"},
        ("database", "migrate.handler"): {"secretsmanager:GetSecretValue"},
        ("audit", "append.handler"): {
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:SendMessage",
            "rds-db:connect",
        },
        ("audit", "checkpoint.handler"): {
            "kms:Sign",
            "s3:PutObject",
            "s3:PutObjectRetention",
            "rds-db:connect",
        },
        ("audit", "api.handler"): {
            "kms:GetPublicKey",
            "s3:PutObject",
            "sts:AssumeRole",  # the export download role, whose sessions sign download URLs
            "sqs:SendMessage",
            "rds-db:connect",
        },
    }
    for (code_dir, handler), needed in expected.items():
        lid, fn = _function_by_handler(synthesized, code_dir, handler)
        actions = _actions_on(_statements_of_role(synthesized, fn["Properties"]["Role"]["Fn::GetAtt"][0]))
        # Then the role allows exactly what the function needs to do (grants are explicit statements)
        assert needed <= actions, (lid, needed - actions)
        if "rds-db:connect" not in needed:
            assert "rds-db:connect" not in actions, lid


def test_environment_follows_the_contract_and_holds_no_secret(synthesized: Synthesized) -> None:
    # Given each function's environment
    resources = synthesized.resources
    secrets = {
        lid for lid in synthesized.of_type("AWS::SecretsManager::Secret") if lid.startswith("Database")
    }
    (proxy_id,) = synthesized.of_type("AWS::RDS::DBProxy")
    (instance_id,) = synthesized.of_type("AWS::RDS::DBInstance")
    (queue_id,) = [
        q
        for q, r in synthesized.of_type("AWS::SQS::Queue").items()
        if "RedrivePolicy" in r["Properties"] and not r["Properties"].get("FifoQueue")
    ]
    (table_id,) = synthesized.of_type("AWS::DynamoDB::Table")

    def env(code_dir: str, handler: str) -> dict[str, Any]:
        _, fn = _function_by_handler(synthesized, code_dir, handler)
        return dict(fn["Properties"]["Environment"]["Variables"])

    # Then the proxy users get the proxy endpoint and IAM auth
    for code_dir, handler in (
        ("auth", "authorizer.handler"),
        ("admin", "api.handler"),
        ("ingest", "processor.handler"),
        ("audit", "append.handler"),
        ("audit", "checkpoint.handler"),
        ("audit", "api.handler"),
    ):
        variables = env(code_dir, handler)
        assert variables["DB_HOST"] == {"Fn::GetAtt": [proxy_id, "Endpoint"]}
        assert {k: variables[k] for k in PROXY_ENV} == PROXY_ENV
    assert env("ingest", "processor.handler")["IDEMPOTENCY_TABLE_NAME"] == _ref(table_id)
    assert env("ingest", "api.handler")["INGEST_QUEUE_URL"] == _ref(queue_id)
    # And the migration function goes straight to the instance with the master secret's ARN
    migration = env("database", "migrate.handler")
    assert migration["DB_HOST"] == {"Fn::GetAtt": [instance_id, "Endpoint.Address"]}
    assert migration["DB_PORT"] == {"Fn::GetAtt": [instance_id, "Endpoint.Port"]}
    assert migration["DB_APP_USER"] == "compliance_app"
    assert migration["MIGRATIONS_DIR"] == "/opt/migrations"
    assert {migration["DB_SECRET_ARN"]["Ref"], migration["DB_APP_SECRET_ARN"]["Ref"]} == secrets
    # And every value is a literal or a plain Ref/GetAtt/Join of a template resource (no secret values)
    for fn in synthesized.app_functions().values():
        for name, value in fn["Properties"]["Environment"]["Variables"].items():
            assert isinstance(value, str) or set(value) <= {"Ref", "Fn::GetAtt", "Fn::Join"}, name
            if isinstance(value, dict) and "Ref" in value:
                assert value["Ref"] in resources, name
            assert "PASSWORD" not in name and not (name.endswith("SECRET") or "TOKEN" in name), name


def test_function_and_layer_assets_are_staged_with_their_path(synthesized: Synthesized) -> None:
    # Given every function and layer of the app
    assets = {**synthesized.app_functions(), **synthesized.of_type("AWS::Lambda::LayerVersion")}
    # Then each names its staged folder (aws:asset:path), which the local runtime mounts
    for lid, res in assets.items():
        staged = synthesized.outdir / res["Metadata"]["aws:asset:path"]
        assert staged.is_dir(), lid
    layers = [
        synthesized.outdir / r["Metadata"]["aws:asset:path"]
        for r in synthesized.of_type("AWS::Lambda::LayerVersion").values()
    ]
    assert any((layer / "python" / "compliance" / "config.py").exists() for layer in layers)
    assert any((layer / "migrations").is_dir() for layer in layers)
    assert any((layer / "python" / "pydantic_core").is_dir() for layer in layers)


# --- Security, database, API ----------------------------------------------------------------------------


def test_kms_key_rotates_and_lets_cloudwatch_logs_use_it(synthesized: Synthesized) -> None:
    (key,) = [
        k
        for lid, k in synthesized.of_type("AWS::KMS::Key").items()
        if k["Properties"].get("KeyUsage") is None and lid.startswith("SecurityKey")
    ]
    assert key["Properties"]["EnableKeyRotation"] is True
    sids = {st.get("Sid") for st in key["Properties"]["KeyPolicy"]["Statement"]}
    assert {"AllowCloudWatchLogs", "AllowCloudWatchAlarmsToPublish"} <= sids


def test_database_is_encrypted_multi_az_with_iam_auth_behind_a_tls_iam_proxy(
    synthesized: Synthesized, template: Template
) -> None:
    # Given the instance, its parameters and the proxy
    (instance,) = synthesized.of_type("AWS::RDS::DBInstance").values()
    (proxy,) = synthesized.of_type("AWS::RDS::DBProxy").values()
    (parameters,) = synthesized.of_type("AWS::RDS::DBParameterGroup").values()
    props = instance["Properties"]

    # Then storage is encrypted with the CMK, IAM auth is on, it survives an AZ and a stray delete
    assert props["StorageEncrypted"] is True
    assert "KmsKeyId" in props
    assert props["EnableIAMDatabaseAuthentication"] is True
    assert props["MultiAZ"] is True
    assert props["DeletionProtection"] is True
    assert props["BackupRetentionPeriod"] >= 7
    assert props["PubliclyAccessible"] is False
    assert parameters["Properties"]["Parameters"]["rds.force_ssl"] == "1"
    # And the proxy requires TLS and IAM for both secrets
    assert proxy["Properties"]["RequireTLS"] is True
    assert len(proxy["Properties"]["Auth"]) == 2
    assert all(auth["IAMAuth"] == "REQUIRED" for auth in proxy["Properties"]["Auth"])
    # And both secrets are generated, CMK-encrypted and rotated
    for lid, secret in synthesized.of_type("AWS::SecretsManager::Secret").items():
        if not lid.startswith("Database"):
            continue  # the DSR secrets: tests/infra/test_infra_dsr.py
        assert "GenerateSecretString" in secret["Properties"]
        assert "KmsKeyId" in secret["Properties"]
    assert len(synthesized.of_type("AWS::SecretsManager::RotationSchedule")) == 2
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "GenerateSecretString": Match.object_like(
                {"SecretStringTemplate": '{"username":"compliance_app"}'}
            )
        },
    )


def test_migration_trigger_runs_the_current_version_of_the_migration_function(
    synthesized: Synthesized,
) -> None:
    # Given the trigger
    (trigger,) = synthesized.of_type("Custom::Trigger").values()
    version_id = trigger["Properties"]["HandlerArn"]["Ref"]
    migration_id, _ = _function_by_handler(synthesized, "database", "migrate.handler")

    # Then it targets a version of the migration function, re-running when that version changes
    version = synthesized.resources[version_id]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == _ref(migration_id)
    assert trigger["Properties"]["ExecuteOnHandlerChange"] is True
    # And a layer change (migrations ship in the domain layer) changes that version
    assert synthesized.app.node.try_get_context("@aws-cdk/aws-lambda:recognizeLayerVersion") is True


def test_idempotency_table(synthesized: Synthesized) -> None:
    (table,) = synthesized.of_type("AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def _resource_paths(synthesized: Synthesized) -> dict[str, str]:
    """Logical id of each AWS::ApiGateway::Resource -> its full path."""
    resources = synthesized.of_type("AWS::ApiGateway::Resource")
    (api_id,) = synthesized.of_type("AWS::ApiGateway::RestApi")

    def path(lid: str) -> str:
        props = resources[lid]["Properties"]
        parent = props["ParentId"]
        prefix = "" if parent == {"Fn::GetAtt": [api_id, "RootResourceId"]} else path(parent["Ref"])
        return f"{prefix}/{props['PathPart']}"

    return {lid: path(lid) for lid in resources}


def test_every_method_uses_the_request_authorizer(synthesized: Synthesized) -> None:
    # Given the authorizer and the methods
    (authorizer_id, authorizer), *_ = synthesized.of_type("AWS::ApiGateway::Authorizer").items()
    props = authorizer["Properties"]
    assert props["Type"] == "REQUEST"
    assert props["IdentitySource"] == "method.request.header.Authorization"
    assert props["AuthorizerResultTtlInSeconds"] == 30
    auth_fn_id, _ = _function_by_handler(synthesized, "auth", "authorizer.handler")
    assert auth_fn_id in json.dumps(props["AuthorizerUri"])

    # Then every non-OPTIONS method requires it, but the one route a data subject calls with their code
    paths = _resource_paths(synthesized)
    open_routes = set()
    for lid, method in synthesized.of_type("AWS::ApiGateway::Method").items():
        props = method["Properties"]
        if props["HttpMethod"] == "OPTIONS":
            continue
        if props["AuthorizationType"] == "NONE":
            assert "AuthorizerId" not in props, lid
            open_routes.add((props["HttpMethod"], paths[props["ResourceId"]["Ref"]]))
            continue
        assert props["AuthorizationType"] == "CUSTOM", lid
        assert props["AuthorizerId"] == _ref(authorizer_id), lid
    assert open_routes == UNAUTHENTICATED_ROUTES


def test_routes_reach_their_functions_through_lambda_proxy(synthesized: Synthesized) -> None:
    # Given the API's methods
    paths = _resource_paths(synthesized)
    functions = {
        "ingest": _function_by_handler(synthesized, "ingest", "api.handler")[0],
        "admin": _function_by_handler(synthesized, "admin", "api.handler")[0],
        "audit": _function_by_handler(synthesized, "audit", "api.handler")[0],
        "pii": _function_by_handler(synthesized, "pii", "api.handler")[0],
        "dsr": _function_by_handler(synthesized, "dsr", "api.handler")[0],
    }
    routes = {}
    for method in synthesized.of_type("AWS::ApiGateway::Method").values():
        props = method["Properties"]
        integration = props["Integration"]
        assert integration["Type"] == "AWS_PROXY"
        target = next(name for name, lid in functions.items() if lid in json.dumps(integration["Uri"]))
        routes[(props["HttpMethod"], paths[props["ResourceId"]["Ref"]])] = target
    # Then the routes are exactly those of the brief
    assert routes == EXPECTED_ROUTES


@pytest.mark.parametrize(
    ("response_type", "status"),
    [("UNAUTHORIZED", 401), ("ACCESS_DENIED", 403), ("DEFAULT_4XX", 400), ("DEFAULT_5XX", 500)],
)
def test_gateway_responses_are_problem_json(
    synthesized: Synthesized, response_type: str, status: int
) -> None:
    # Given the gateway response of this type
    (response,) = [
        r["Properties"]
        for r in synthesized.of_type("AWS::ApiGateway::GatewayResponse").values()
        if r["Properties"]["ResponseType"] == response_type
    ]
    # Then it answers application/problem+json with type, title, status and detail
    assert response["StatusCode"] == str(status)
    assert (
        response["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
    )
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body["status"] == status
    assert body["type"].startswith(c.PROBLEM_TYPE_BASE)
    assert body["title"]
    assert body["detail"]


def test_stage_is_traced_throttled_access_logged_and_behind_waf(synthesized: Synthesized) -> None:
    (stage_id, stage), *_ = synthesized.of_type("AWS::ApiGateway::Stage").items()
    props = stage["Properties"]
    assert props["TracingEnabled"] is True
    assert props["StageName"] == c.API_STAGE_NAME
    access_log = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "status", "ip"} <= set(access_log)
    settings = props["MethodSettings"][0]
    assert settings["ThrottlingRateLimit"] == c.API_THROTTLE_RATE_LIMIT
    assert settings["ThrottlingBurstLimit"] == c.API_THROTTLE_BURST_LIMIT
    (association,) = synthesized.of_type("AWS::WAFv2::WebACLAssociation").values()
    assert stage_id in json.dumps(association["Properties"]["ResourceArn"])
