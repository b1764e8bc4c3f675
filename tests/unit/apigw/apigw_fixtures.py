"""Shared by the apigw tests: a hand-written CDK-shaped template, fake Lambdas, fixtures."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from compliance_tools.local.apigw import LambdaInvokeError
from compliance_tools.local.apigw_events import HttpRequest, HttpResponse
from compliance_tools.local.apigw_gateway import Gateway
from compliance_tools.local.apigw_template import parse_api

API = "ComplianceApiA1B2C3D4"
ROOT = {"Fn::GetAtt": [API, "RootResourceId"]}
ACCOUNT = "123456789012"
CORS = "method.response.header.Access-Control-Allow"
REGION = "eu-west-1"


def lambda_uri(function: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":apigateway:",
                {"Ref": "AWS::Region"},
                ":lambda:path/2015-03-31/functions/",
                {"Fn::GetAtt": [function, "Arn"]},
                "/invocations",
            ],
        ]
    }


def resource(parent: Any, part: str) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::Resource",
        "Properties": {"ParentId": parent, "PathPart": part, "RestApiId": {"Ref": API}},
    }


def method(resource_ref: Any, verb: str, function: str, *, authorized: bool = True) -> dict[str, Any]:
    props: dict[str, Any] = {
        "HttpMethod": verb,
        "ResourceId": resource_ref,
        "RestApiId": {"Ref": API},
        "AuthorizationType": "CUSTOM" if authorized else "NONE",
        "Integration": {"IntegrationHttpMethod": "POST", "Type": "AWS_PROXY", "Uri": lambda_uri(function)},
    }
    if authorized:
        props["AuthorizerId"] = {"Ref": "ApiAuthorizer"}
    return {"Type": "AWS::ApiGateway::Method", "Properties": props}


def function(handler: str) -> dict[str, Any]:
    return {"Type": "AWS::Lambda::Function", "Properties": {"Handler": handler, "Runtime": "python3.13"}}


TEMPLATE: dict[str, Any] = {
    "Resources": {
        API: {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "compliance"}},
        "ApiDeployment": {"Type": "AWS::ApiGateway::Deployment", "Properties": {"RestApiId": {"Ref": API}}},
        "ApiStage": {
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {
                "RestApiId": {"Ref": API},
                "DeploymentId": {"Ref": "ApiDeployment"},
                "StageName": "prod",
                "Variables": {"tier": "local"},
            },
        },
        "AuthorizerFn": function("authorizer.handler"),
        "IngestFn": function("api.handler"),
        "AdminFn": function("api.handler"),
        "FilesFn": function("files.handler"),
        "ApiAuthorizer": {
            "Type": "AWS::ApiGateway::Authorizer",
            "Properties": {
                "Name": "bearer",
                "RestApiId": {"Ref": API},
                "Type": "REQUEST",
                "IdentitySource": "method.request.header.Authorization",
                "AuthorizerResultTtlInSeconds": 300,
                "AuthorizerUri": lambda_uri("AuthorizerFn"),
            },
        },
        "V1": resource(ROOT, "v1"),
        "Usage": resource({"Ref": "V1"}, "usage"),
        "ApiKeys": resource({"Ref": "V1"}, "api-keys"),
        "ApiKey": resource({"Ref": "ApiKeys"}, "{key_id}"),
        "Revoke": resource({"Ref": "ApiKey"}, "revoke"),
        "Files": resource({"Ref": "V1"}, "files"),
        "FilesProxy": resource({"Ref": "Files"}, "{proxy+}"),
        "UsagePost": method({"Ref": "Usage"}, "POST", "IngestFn"),
        "ApiKeysGet": method({"Ref": "ApiKeys"}, "GET", "AdminFn"),
        "ApiKeysPost": method({"Ref": "ApiKeys"}, "POST", "AdminFn"),
        "ApiKeyGet": method({"Ref": "ApiKey"}, "GET", "AdminFn"),
        "RevokePost": method({"Ref": "Revoke"}, "POST", "AdminFn"),
        "FilesAny": method({"Ref": "FilesProxy"}, "ANY", "FilesFn", authorized=False),
        "RootGet": method(ROOT, "GET", "FilesFn", authorized=False),
        "UsageOptions": {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "HttpMethod": "OPTIONS",
                "ResourceId": {"Ref": "Usage"},
                "RestApiId": {"Ref": API},
                "AuthorizationType": "NONE",
                "Integration": {
                    "Type": "MOCK",
                    "RequestTemplates": {"application/json": "{ statusCode: 200 }"},
                    "IntegrationResponses": [
                        {
                            "StatusCode": "204",
                            "ResponseParameters": {
                                f"{CORS}-Headers": "'Content-Type,Authorization'",
                                f"{CORS}-Origin": "'*'",
                                f"{CORS}-Methods": "'OPTIONS,POST'",
                            },
                        }
                    ],
                },
                "MethodResponses": [{"StatusCode": "204"}],
            },
        },
        "UnauthorizedResponse": {
            "Type": "AWS::ApiGateway::GatewayResponse",
            "Properties": {
                "RestApiId": {"Ref": API},
                "ResponseType": "UNAUTHORIZED",
                "StatusCode": "401",
                "ResponseParameters": {
                    "gatewayresponse.header.Access-Control-Allow-Origin": "'*'",
                    "gatewayresponse.header.WWW-Authenticate": "'Bearer'",
                },
                "ResponseTemplates": {
                    "application/json": (
                        '{"message":$context.error.messageString,"type":"$context.error.responseType",'
                        '"requestId":"$context.requestId","stage":"${context.stage}"}'
                    )
                },
            },
        },
    }
}


def template() -> dict[str, Any]:
    return copy.deepcopy(TEMPLATE)


@dataclass
class FakeLambdas:
    """``invoke`` for the gateway: per-function handlers, every call recorded."""

    handlers: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        self.calls.append((function_id, event))
        handler = self.handlers.get(function_id)
        if handler is None:
            raise LambdaInvokeError(f"no handler for {function_id}", "KeyError")
        return handler(event)

    def events(self, function_id: str) -> list[dict[str, Any]]:
        return [event for fid, event in self.calls if fid == function_id]


def allow_all(event: dict[str, Any]) -> dict[str, Any]:
    """An authorizer allowing every method of the API, with a context like the real one."""
    api_arn = event["methodArn"].split("/", 1)[0]
    return {
        "principalId": "key-123",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": f"{api_arn}/*"}],
        },
        "context": {"orgId": "org-1", "role": "admin", "quota": 5, "active": True},
    }


def echo(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def lambdas() -> FakeLambdas:
    handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
        "AuthorizerFn": allow_all,
        "IngestFn": echo,
        "AdminFn": echo,
        "FilesFn": echo,
    }
    return FakeLambdas(handlers=handlers)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(lambdas: FakeLambdas, clock: FakeClock) -> Gateway:
    return make_gateway(template(), lambdas, clock)


def make_gateway(tpl: dict[str, Any], lambdas: FakeLambdas, clock: FakeClock | None = None) -> Gateway:
    return Gateway(
        parse_api(tpl),
        lambdas.invoke,
        region=REGION,
        account_id=ACCOUNT,
        monotonic=clock or FakeClock(),
    )


def request(
    method: str,
    target: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    token: str | None = "Bearer good",
) -> HttpRequest:
    all_headers = [("Host", "127.0.0.1:3000"), ("User-Agent", "pytest")]
    if token is not None:
        all_headers.append(("Authorization", token))
    all_headers += headers or []
    return HttpRequest(
        method=method,
        target=target,
        headers=all_headers,
        body=body,
        source_ip="127.0.0.9",
        server_host="127.0.0.1",
        server_port=3000,
    )


def json_body(response: HttpResponse) -> Any:
    import json

    return json.loads(response.body)
