"""Answers API Gateway gives itself: unknown routes, gateway responses, limits, validation, CORS mocks."""

from __future__ import annotations

from typing import Any

from compliance_tools.local.apigw_gateway import MAX_REQUEST_BYTES, Gateway
from tests.unit.apigw.apigw_fixtures import API, FakeLambdas, json_body, make_gateway, request, template

EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"
HEADER = "gatewayresponse.header."
JSON = "application/json"


def _gateway_response(response_type: str, **props: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::GatewayResponse",
        "Properties": {"RestApiId": {"Ref": API}, "ResponseType": response_type, **props},
    }


def test_unknown_route_is_missing_authentication_token(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given paths the API does not have, and a method a known resource does not have
    for method, path in [("GET", "/nope"), ("GET", "/prod/v1/nope"), ("DELETE", "/v1/usage")]:
        # When requested
        response = gateway.handle(request(method, path))

        # Then AWS's 403 comes back and nothing runs (not even the authorizer)
        assert response.status == 403, path
        assert json_body(response) == {"message": "Missing Authentication Token"}
        assert response.header("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    assert lambdas.calls == []


def test_default_4xx_applies_to_unconfigured_types(lambdas: FakeLambdas) -> None:
    # Given a DEFAULT_4XX gateway response with a CORS header and its own template
    tpl = template()
    tpl["Resources"]["Default4xx"] = _gateway_response(
        "DEFAULT_4XX",
        ResponseParameters={f"{HEADER}Access-Control-Allow-Origin": "method.request.header.Origin"},
        ResponseTemplates={JSON: '{"error":"$context.error.message","id":"$context.requestId"}'},
    )
    gw = make_gateway(tpl, lambdas)

    # When an unknown route is requested
    response = gw.handle(request("GET", "/nope", headers=[("Origin", "http://localhost:5173")]))

    # Then MISSING_AUTHENTICATION_TOKEN is rendered through DEFAULT_4XX
    assert response.status == 403
    body = json_body(response)
    assert body["error"] == "Missing Authentication Token"
    assert body["id"] == response.header("x-amzn-RequestId")
    assert response.header("Access-Control-Allow-Origin") == "http://localhost:5173"


def test_default_5xx_status_override_and_template(lambdas: FakeLambdas) -> None:
    # Given a DEFAULT_5XX response with a template, and a failing Lambda
    tpl = template()
    tpl["Resources"]["Default5xx"] = _gateway_response(
        "DEFAULT_5XX",
        ResponseTemplates={JSON: '{"message":$context.error.messageString,"path":"$context.path"}'},
    )
    gw = make_gateway(tpl, lambdas)
    del lambdas.handlers["FilesFn"]

    # When the Lambda fails
    response = gw.handle(request("GET", "/v1/files/x", token=None))

    # Then the 502 keeps its status and renders the template
    assert response.status == 502
    assert json_body(response) == {"message": "Internal server error", "path": "/v1/files/x"}


def test_specific_response_without_template_keeps_the_default_body(lambdas: FakeLambdas) -> None:
    # Given an ACCESS_DENIED response that only adds a header and changes the status
    tpl = template()
    tpl["Resources"]["Denied"] = _gateway_response(
        "ACCESS_DENIED",
        StatusCode="404",
        ResponseParameters={"gatewayresponse.header.X-Reason": "'denied'"},
    )
    gw = make_gateway(tpl, lambdas)
    lambdas.handlers["AuthorizerFn"] = lambda event: {
        "principalId": "p",
        "policyDocument": {"Statement": [{"Action": "*", "Effect": "Deny", "Resource": "*"}]},
    }

    # When access is denied
    response = gw.handle(request("GET", "/v1/api-keys"))

    # Then the configured status and header come with the standard message body
    assert response.status == 404
    assert response.header("X-Reason") == "denied"
    assert json_body(response) == {"message": EXPLICIT_DENY}


def test_body_over_10_mb_is_413(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given a body one byte over API Gateway's quota
    body = b"x" * (MAX_REQUEST_BYTES + 1)

    # When it is posted
    response = gateway.handle(request("POST", "/v1/usage", body=body))

    # Then 413 comes back as AWS sends it, and nothing runs
    assert response.status == 413
    assert response.body == b"HTTP content length exceeded 10485760 bytes."
    assert lambdas.calls == []


def test_event_over_lambda_quota_is_413_request_too_long(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given a body under 10 MB whose event exceeds Lambda's 6 MB invocation quota
    body = b'"' + b"x" * (7 * 1024 * 1024) + b'"'

    # When it is posted
    response = gateway.handle(request("POST", "/v1/usage", body=body, headers=[("Content-Type", JSON)]))

    # Then API Gateway answers REQUEST_TOO_LARGE without invoking the integration
    assert response.status == 413
    assert json_body(response) == {"message": "Request Too Long"}
    assert lambdas.events("IngestFn") == []


def test_request_validator_checks_parameters_and_body(lambdas: FakeLambdas) -> None:
    # Given a method validated against required parameters and a JSON-schema model
    tpl = template()
    res = tpl["Resources"]
    res["Validator"] = {
        "Type": "AWS::ApiGateway::RequestValidator",
        "Properties": {
            "RestApiId": {"Ref": API},
            "ValidateRequestBody": True,
            "ValidateRequestParameters": True,
        },
    }
    res["KeyModel"] = {
        "Type": "AWS::ApiGateway::Model",
        "Properties": {
            "RestApiId": {"Ref": API},
            "ContentType": "application/json",
            "Schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        },
    }
    props = res["ApiKeysPost"]["Properties"]
    props["RequestValidatorId"] = {"Ref": "Validator"}
    props["RequestParameters"] = {
        "method.request.header.Idempotency-Key": True,
        "method.request.querystring.x": False,
    }
    props["RequestModels"] = {"application/json": {"Ref": "KeyModel"}}
    gw = make_gateway(tpl, lambdas)
    json_type = ("Content-Type", "application/json")

    # When requests miss the header, carry a bad body, or are valid
    no_header = gw.handle(request("POST", "/v1/api-keys", headers=[json_type], body=b'{"name": "a"}'))
    bad_body = gw.handle(
        request("POST", "/v1/api-keys", headers=[json_type, ("Idempotency-Key", "1")], body=b'{"name": 3}')
    )
    valid = gw.handle(
        request("POST", "/v1/api-keys", headers=[json_type, ("Idempotency-Key", "1")], body=b'{"name": "a"}')
    )

    # Then the first two are 400s API Gateway would send, the last reaches the Lambda
    assert no_header.status == 400
    assert json_body(no_header) == {"message": "Missing required request parameters: [Idempotency-Key]"}
    assert bad_body.status == 400
    assert json_body(bad_body) == {"message": "Invalid request body"}
    assert valid.status == 200
    assert len(lambdas.events("AdminFn")) == 1


def test_cors_preflight_answers_from_the_mock_integration(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given the OPTIONS method CDK adds for CORS
    # When a preflight comes (without credentials, as browsers send it)
    response = gateway.handle(
        request("OPTIONS", "/v1/usage", token=None, headers=[("Origin", "http://localhost:5173")])
    )

    # Then the integration response's status and headers come back, no Lambda involved
    assert response.status == 204
    assert response.header("Access-Control-Allow-Origin") == "*"
    assert response.header("Access-Control-Allow-Methods") == "OPTIONS,POST"
    assert response.header("Access-Control-Allow-Headers") == "Content-Type,Authorization"
    assert response.body == b""
    assert lambdas.calls == []


def test_a_mapped_content_type_replaces_the_default_one(lambdas: FakeLambdas) -> None:
    # Given a gateway response that maps its own Content-Type (problem+json), as the stack's do
    tpl = template()
    tpl["Resources"]["Default4xx"] = _gateway_response(
        "DEFAULT_4XX",
        ResponseParameters={f"{HEADER}Content-Type": "'application/problem+json'"},
        ResponseTemplates={JSON: '{"title":"Not found"}'},
    )
    gw = make_gateway(tpl, lambdas)
    # When it answers
    response = gw.handle(request("GET", "/nope"))
    # Then exactly one Content-Type is sent, the mapped one
    content_types = [value for name, value in response.headers if name.lower() == "content-type"]
    assert content_types == ["application/problem+json"]
