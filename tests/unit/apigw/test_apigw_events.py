"""HTTP request -> Lambda proxy event (payload format 1.0), and the Lambda result -> HTTP response."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from compliance_tools.local.apigw_gateway import Gateway
from tests.unit.apigw.apigw_fixtures import ACCOUNT, FakeLambdas, json_body, make_gateway, request, template


def _returning(result: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda event: result


def _single_event(lambdas: FakeLambdas, function_id: str) -> dict[str, Any]:
    events = lambdas.events(function_id)
    assert len(events) == 1
    return events[0]


def test_proxy_event_has_the_aws_shape(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given an authorized POST with a JSON body, repeated query parameters and a repeated header
    req = request(
        "POST",
        "/v1/usage?dry_run=true&tag=a&tag=b%20c",
        headers=[("Content-Type", "application/json"), ("X-Multi", "1"), ("X-Multi", "2")],
        body=b'{"records": []}',
    )

    # When it goes through the gateway
    response = gateway.handle(req)

    # Then the integration gets a REST proxy event shaped like AWS's
    assert response.status == 200
    event = _single_event(lambdas, "IngestFn")
    assert list(event) == [
        "resource",
        "path",
        "httpMethod",
        "headers",
        "multiValueHeaders",
        "queryStringParameters",
        "multiValueQueryStringParameters",
        "pathParameters",
        "stageVariables",
        "requestContext",
        "body",
        "isBase64Encoded",
    ]
    assert event["resource"] == "/v1/usage"
    assert event["path"] == "/v1/usage"
    assert event["httpMethod"] == "POST"
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["headers"]["X-Multi"] == "2"
    assert event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.9"
    assert event["queryStringParameters"] == {"dry_run": "true", "tag": "b c"}
    assert event["multiValueQueryStringParameters"] == {"dry_run": ["true"], "tag": ["a", "b c"]}
    assert event["pathParameters"] is None
    assert event["stageVariables"] == {"tier": "local"}
    assert event["body"] == '{"records": []}'
    assert event["isBase64Encoded"] is False


def test_request_context_carries_identity_stage_and_authorizer(
    gateway: Gateway, lambdas: FakeLambdas
) -> None:
    # Given an authorized request on the stage-prefixed path
    # When it goes through the gateway
    gateway.handle(request("GET", "/prod/v1/api-keys/k-1"))

    # Then requestContext is filled like AWS's (the path keeps the stage, the resource does not)
    event = _single_event(lambdas, "AdminFn")
    ctx = event["requestContext"]
    assert event["path"] == "/v1/api-keys/k-1"
    assert event["pathParameters"] == {"key_id": "k-1"}
    assert ctx["path"] == "/prod/v1/api-keys/k-1"
    assert ctx["resourcePath"] == "/v1/api-keys/{key_id}"
    assert ctx["httpMethod"] == "GET"
    assert ctx["stage"] == "prod"
    assert ctx["accountId"] == ACCOUNT
    assert ctx["apiId"] == gateway.api.api_id
    assert ctx["resourceId"] == gateway.api.resource_ids["/v1/api-keys/{key_id}"]
    assert ctx["protocol"] == "HTTP/1.1"
    assert ctx["domainName"] == "127.0.0.1:3000"
    assert re.fullmatch(r"[0-9a-f-]{36}", ctx["requestId"])
    assert isinstance(ctx["requestTimeEpoch"], int)
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", ctx["requestTime"])
    assert ctx["identity"]["sourceIp"] == "127.0.0.9"
    assert ctx["identity"]["userAgent"] == "pytest"
    assert ctx["identity"]["cognitoIdentityId"] is None
    # The authorizer's context arrives stringified, with principalId
    assert ctx["authorizer"]["principalId"] == "key-123"
    assert ctx["authorizer"]["orgId"] == "org-1"
    assert ctx["authorizer"]["quota"] == "5"
    assert ctx["authorizer"]["active"] == "true"


def test_empty_maps_are_null_like_aws(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given a stage without variables and a bare GET
    tpl = template()
    del tpl["Resources"]["ApiStage"]["Properties"]["Variables"]
    gw = make_gateway(tpl, lambdas)

    # When it goes through the gateway
    gw.handle(request("GET", "/", token=None))

    # Then absent query, path parameters, stage variables and body are null
    event = _single_event(lambdas, "FilesFn")
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert "authorizer" not in event["requestContext"]


def test_greedy_proxy_and_trailing_slash(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given a path under the greedy proxy, ending with a slash
    # When it goes through the gateway
    response = gateway.handle(request("PUT", "/v1/files/reports/2024/q1.csv/", token=None))

    # Then the proxy parameter holds the rest of the path
    assert response.status == 200
    event = _single_event(lambdas, "FilesFn")
    assert event["resource"] == "/v1/files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "reports/2024/q1.csv"}


def test_binary_bodies_are_base64(lambdas: FakeLambdas) -> None:
    # Given an API declaring a binary media type, and a request in that type
    tpl = template()
    tpl["Resources"]["ComplianceApiA1B2C3D4"]["Properties"]["BinaryMediaTypes"] = ["application/octet-stream"]
    gw = make_gateway(tpl, lambdas)
    payload = bytes(range(256))

    # When it goes through the gateway (and a text body of a non-binary type too)
    octets = [("Content-Type", "application/octet-stream")]
    gw.handle(request("POST", "/v1/files/blob", headers=octets, body=payload))
    gw.handle(request("POST", "/v1/files/text", headers=[("Content-Type", "text/plain")], body=b"hello"))

    # Then the binary body is base64 with isBase64Encoded, the text one is passed as is
    binary, text = lambdas.events("FilesFn")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == payload
    assert text["isBase64Encoded"] is False
    assert text["body"] == "hello"


def test_result_headers_merge_and_default_content_type(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given a Lambda returning both header maps and no Content-Type
    lambdas.handlers["AdminFn"] = lambda event: {
        "statusCode": 201,
        "headers": {"X-One": "1", "Set-Cookie": "ignored"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": '{"id": "k-1"}',
    }

    # When it is called
    response = gateway.handle(request("POST", "/v1/api-keys", body=b"{}"))

    # Then status, merged headers (multi-value wins) and the JSON default content type come back
    assert response.status == 201
    assert json_body(response) == {"id": "k-1"}
    assert ("X-One", "1") in response.headers
    assert [v for k, v in response.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert response.header("Content-Type") == "application/json"
    assert response.header("x-amzn-RequestId")


def test_base64_result_is_decoded_for_binary_media_types(lambdas: FakeLambdas) -> None:
    # Given an API with a binary media type and a Lambda returning base64
    tpl = template()
    tpl["Resources"]["ComplianceApiA1B2C3D4"]["Properties"]["BinaryMediaTypes"] = ["image/png"]
    gw = make_gateway(tpl, lambdas)
    lambdas.handlers["FilesFn"] = lambda event: {
        "statusCode": 200,
        "headers": {"Content-Type": "image/png"},
        "body": base64.b64encode(b"\x89PNG").decode(),
        "isBase64Encoded": True,
    }

    # When it is called
    response = gw.handle(request("GET", "/v1/files/logo.png", headers=[("Accept", "image/png")]))

    # Then the client gets the bytes
    assert response.body == b"\x89PNG"


def test_lambda_error_is_502(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given a Lambda that raises
    def boom(event: dict[str, Any]) -> Any:
        raise RuntimeError("database down")

    lambdas.handlers["IngestFn"] = boom

    # When it is called
    response = gateway.handle(request("POST", "/v1/usage", body=b"{}"))

    # Then API Gateway's 502 comes back, the cause only in the access-log detail
    assert response.status == 502
    assert json_body(response) == {"message": "Internal server error"}
    assert response.header("x-amzn-ErrorType") == "InternalServerErrorException"
    assert "database down" in response.detail


def test_malformed_results_are_502(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given Lambdas returning what API Gateway rejects
    malformed: list[Any] = [
        None,
        "ok",
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "x", "cookies": ["a=1"]},
        {"body": "no status"},
        {"statusCode": 200, "headers": {"X": {"nested": 1}}},
    ]
    for result in malformed:
        lambdas.handlers["IngestFn"] = _returning(result)

        # When each is called
        response = gateway.handle(request("POST", "/v1/usage", body=b"{}"))

        # Then each is a 502
        assert response.status == 502, result
        assert json_body(response) == {"message": "Internal server error"}
