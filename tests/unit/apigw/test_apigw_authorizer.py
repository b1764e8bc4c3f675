"""The REQUEST authorizer as API Gateway runs it: identity source, policy, context, cache."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_tools.local.apigw import LambdaInvokeError
from compliance_tools.local.apigw_auth import parse_decision, wildcard
from compliance_tools.local.apigw_gateway import Gateway
from tests.unit.apigw.apigw_fixtures import (
    ACCOUNT,
    REGION,
    FakeClock,
    FakeLambdas,
    json_body,
    make_gateway,
    request,
    template,
)

EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"
ARN = "arn:aws:execute-api:eu-west-1:1:abc"


def _policy(effect: str, resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return {
        "principalId": "key-9",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        **extra,
    }


def test_missing_identity_source_is_401_without_invoking(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given a request without the Authorization header
    # When it reaches an authorized method
    response = gateway.handle(request("POST", "/v1/usage", body=b"{}", token=None))

    # Then the UNAUTHORIZED gateway response comes back and no Lambda ran
    assert response.status == 401
    assert lambdas.calls == []
    body = json_body(response)
    assert body["message"] == "Unauthorized"
    assert body["type"] == "UNAUTHORIZED"
    assert body["stage"] == "prod"
    assert response.header("Access-Control-Allow-Origin") == "*"
    assert response.header("x-amzn-ErrorType") == "UnauthorizedException"


def test_authorizer_receives_a_request_event(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given an authorized request on a path with a parameter
    # When it goes through the gateway
    gateway.handle(request("POST", "/v1/api-keys/k-7/revoke?why=lost"))

    # Then the authorizer got a REQUEST event with the method ARN of this very request
    (event,) = lambdas.events("AuthorizerFn")
    api_id = gateway.api.api_id
    assert event["type"] == "REQUEST"
    arn_prefix = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{api_id}"
    assert event["methodArn"] == f"{arn_prefix}/prod/POST/v1/api-keys/k-7/revoke"
    assert event["resource"] == "/v1/api-keys/{key_id}/revoke"
    assert event["path"] == "/v1/api-keys/k-7/revoke"
    assert event["httpMethod"] == "POST"
    assert event["headers"]["Authorization"] == "Bearer good"
    assert event["multiValueHeaders"]["Authorization"] == ["Bearer good"]
    assert event["queryStringParameters"] == {"why": "lost"}
    assert event["pathParameters"] == {"key_id": "k-7"}
    assert event["stageVariables"] == {"tier": "local"}
    assert event["requestContext"]["resourcePath"] == "/v1/api-keys/{key_id}/revoke"
    assert "authorizer" not in event["requestContext"]


def test_unauthorized_error_is_401(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given an authorizer failing with the error "Unauthorized" (as a Python authorizer raises it)
    def reject(event: dict[str, Any]) -> Any:
        raise LambdaInvokeError("Unauthorized", "Exception")

    lambdas.handlers["AuthorizerFn"] = reject

    # When a request comes
    response = gateway.handle(request("POST", "/v1/usage", body=b"{}"))

    # Then the client gets 401 and the integration never runs
    assert response.status == 401
    assert json_body(response)["message"] == "Unauthorized"
    assert lambdas.events("IngestFn") == []


class PayloadError(Exception):
    """Shaped like lambdas.LambdaFunctionError: the Lambda error payload, a prefixed str()."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(f"AuthorizerFn: {payload['errorType']}: {payload['errorMessage']}")
        self.payload = payload


def test_unauthorized_is_read_from_a_lambda_error_payload(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given an invoke that reports failures with the Lambda error payload
    def reject(event: dict[str, Any]) -> Any:
        raise PayloadError({"errorMessage": "Unauthorized", "errorType": "Exception", "stackTrace": []})

    lambdas.handlers["AuthorizerFn"] = reject

    # When a request comes
    response = gateway.handle(request("GET", "/v1/api-keys"))

    # Then the errorMessage decides: 401
    assert response.status == 401


def test_explicit_deny_is_403(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given an authorizer denying everything
    lambdas.handlers["AuthorizerFn"] = lambda event: _policy("Deny", "*")

    # When a request comes
    response = gateway.handle(request("POST", "/v1/usage", body=b"{}"))

    # Then API Gateway's untouched ACCESS_DENIED answer comes back
    assert response.status == 403
    assert json_body(response) == {"Message": EXPLICIT_DENY}
    assert response.header("x-amzn-ErrorType") == "AccessDeniedException"
    assert lambdas.events("IngestFn") == []


def test_policy_not_covering_the_method_is_403(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given an authorizer allowing only GET on api-keys
    lambdas.handlers["AuthorizerFn"] = lambda event: _policy(
        "Allow", event["methodArn"].split("/", 1)[0] + "/*/GET/v1/api-keys"
    )

    # When a POST comes
    response = gateway.handle(request("POST", "/v1/api-keys", body=b"{}"))

    # Then it is denied (implicitly)
    assert response.status == 403
    assert json_body(response) == {"Message": "User is not authorized to access this resource"}


def test_authorizer_failure_is_500(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given authorizers that crash or answer nonsense
    def crash(event: dict[str, Any]) -> Any:
        raise LambdaInvokeError("connection refused", "OperationalError")

    outcomes = [
        crash,
        lambda event: {"policyDocument": {}},
        lambda event: _policy("Allow", "*", context={"nested": {"a": 1}}),
        lambda event: _policy("Maybe", "*"),
    ]
    for authorizer in outcomes:
        lambdas.handlers["AuthorizerFn"] = authorizer
        gateway.authorizer_cache.clear()

        # When a request comes
        response = gateway.handle(request("POST", "/v1/usage", body=b"{}"))

        # Then API Gateway's authorizer failure answer comes back
        assert response.status == 500
        assert json_body(response) == {"message": None}
        assert response.header("x-amzn-ErrorType") == "AuthorizerConfigurationException"
    assert lambdas.events("IngestFn") == []


def test_cached_result_skips_the_authorizer_until_ttl(
    gateway: Gateway, lambdas: FakeLambdas, clock: FakeClock
) -> None:
    # Given one authorized call
    assert gateway.handle(request("POST", "/v1/usage", body=b"{}")).status == 200

    # When the same token calls again within the TTL (another method too)
    clock.now += 299
    second = gateway.handle(request("GET", "/v1/api-keys"))

    # Then the authorizer is not invoked again, and its context still reaches the integration
    assert second.status == 200
    assert len(lambdas.events("AuthorizerFn")) == 1
    assert lambdas.events("AdminFn")[0]["requestContext"]["authorizer"]["orgId"] == "org-1"

    # And after the TTL it is invoked again; another token is never served from the cache
    clock.now += 2
    gateway.handle(request("GET", "/v1/api-keys"))
    gateway.handle(request("GET", "/v1/api-keys", token="Bearer other"))
    assert len(lambdas.events("AuthorizerFn")) == 3


def test_cached_policy_is_evaluated_against_each_method_arn(gateway: Gateway, lambdas: FakeLambdas) -> None:
    # Given an authorizer whose policy covers only the method that triggered it (the classic caching trap)
    lambdas.handlers["AuthorizerFn"] = lambda event: _policy("Allow", event["methodArn"])
    assert gateway.handle(request("POST", "/v1/usage", body=b"{}")).status == 200

    # When the same token calls another method within the TTL
    response = gateway.handle(request("GET", "/v1/api-keys"))

    # Then the cached policy denies it, as in AWS
    assert response.status == 403
    assert len(lambdas.events("AuthorizerFn")) == 1


def test_ttl_zero_invokes_every_time(lambdas: FakeLambdas) -> None:
    # Given an authorizer without caching
    tpl = template()
    tpl["Resources"]["ApiAuthorizer"]["Properties"]["AuthorizerResultTtlInSeconds"] = 0
    gw = make_gateway(tpl, lambdas)

    # When the same token calls twice
    gw.handle(request("GET", "/v1/api-keys"))
    gw.handle(request("GET", "/v1/api-keys"))

    # Then the authorizer ran twice
    assert len(lambdas.events("AuthorizerFn")) == 2


@pytest.mark.parametrize(
    ("pattern", "arn", "matches"),
    [
        (f"{ARN}/*", f"{ARN}/prod/GET/v1/x", True),
        ("arn:aws:execute-api:*:*:abc/prod/*/v1/*", f"{ARN}/prod/POST/v1/usage", True),
        (f"{ARN}/prod/GE?/v1/x", f"{ARN}/prod/GET/v1/x", True),
        (f"{ARN}/dev/*", f"{ARN}/prod/GET/v1/x", False),
        (f"{ARN}/prod/GET/v1", f"{ARN}/prod/GET/v1/x", False),
    ],
)
def test_policy_resource_wildcards(pattern: str, arn: str, matches: bool) -> None:
    # Given a policy resource pattern
    # When matched against a method ARN
    # Then * spans any characters and ? exactly one
    assert (wildcard(pattern).fullmatch(arn) is not None) is matches


def test_deny_wins_over_allow() -> None:
    # Given a policy allowing everything but denying DELETE
    decision = parse_decision(
        {
            "principalId": "p",
            "policyDocument": {
                "Statement": [
                    {"Action": "execute-api:*", "Effect": "Allow", "Resource": ["arn:aws:execute-api:*"]},
                    {"Action": "*", "Effect": "Deny", "Resource": "arn:aws:execute-api:*/DELETE/*"},
                ]
            },
        },
        latency_ms=3,
    )

    # When evaluated
    # Then DELETE is explicitly denied and GET allowed
    assert decision.verdict("arn:aws:execute-api:r:1:api/prod/DELETE/v1/x") == "explicit-deny"
    assert decision.verdict("arn:aws:execute-api:r:1:api/prod/GET/v1/x") == "allow"


def test_token_authorizer_gets_the_token_and_checks_the_expression(lambdas: FakeLambdas) -> None:
    # Given a TOKEN authorizer with a validation expression
    tpl = template()
    props = tpl["Resources"]["ApiAuthorizer"]["Properties"]
    props["Type"] = "TOKEN"
    props["IdentityValidationExpression"] = "^Bearer [a-z]+$"
    gw = make_gateway(tpl, lambdas)

    # When a well-formed and a malformed token come
    good = gw.handle(request("GET", "/v1/api-keys", token="Bearer good"))
    bad = gw.handle(request("GET", "/v1/api-keys", token="Basic x=="))

    # Then the authorizer sees only the good one, as a TOKEN event; the other is 401 untouched
    assert good.status == 200
    assert bad.status == 401
    (event,) = lambdas.events("AuthorizerFn")
    assert set(event) == {"type", "authorizationToken", "methodArn"}
    assert event["type"] == "TOKEN"
    assert event["authorizationToken"] == "Bearer good"


def test_iam_and_api_key_methods_need_their_credentials(lambdas: FakeLambdas) -> None:
    # Given a method with AWS_IAM authorization and another requiring an API key
    tpl = template()
    res = tpl["Resources"]
    res["ApiKeysGet"]["Properties"]["AuthorizationType"] = "AWS_IAM"
    del res["ApiKeysGet"]["Properties"]["AuthorizerId"]
    res["RootGet"]["Properties"]["ApiKeyRequired"] = True
    gw = make_gateway(tpl, lambdas)

    # When they are called without, then with, the credential
    unsigned = gw.handle(request("GET", "/v1/api-keys", token=None))
    signed = gw.handle(request("GET", "/v1/api-keys", token="AWS4-HMAC-SHA256 Credential=..."))
    keyless = gw.handle(request("GET", "/", token=None))
    keyed = gw.handle(request("GET", "/", token=None, headers=[("x-api-key", "k1")]))

    # Then AWS's answers come back without credentials (signatures and keys are not verified locally)
    assert unsigned.status == 403
    assert json_body(unsigned) == {"message": "Missing Authentication Token"}
    assert signed.status == 200
    assert keyless.status == 403
    assert json_body(keyless) == {"message": "Forbidden"}
    assert keyed.status == 200
    assert lambdas.events("FilesFn")[0]["requestContext"]["identity"]["apiKey"] == "k1"
