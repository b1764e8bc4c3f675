"""Template -> route table, and route matching, without sockets."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_tools.local.apigw_template import RouteTable, TemplateError, parse_api
from tests.unit.apigw.apigw_fixtures import API, ROOT, function, method, resource, template

FUNCTIONS = "lambda:path/2015-03-31/functions/"


def _segments(path: str) -> list[str]:
    return [part for part in path.strip("/").split("/") if part]


def test_routes_resolve_nested_paths_and_function_ids() -> None:
    # Given a CDK-shaped template
    # When it is parsed
    api = parse_api(template())

    # Then every method has its full resource path and the logical id of its Lambda
    table = {(r.http_method, r.resource_path): r.function_id for r in api.routes}
    assert table == {
        ("GET", "/"): "FilesFn",
        ("POST", "/v1/usage"): "IngestFn",
        ("OPTIONS", "/v1/usage"): None,
        ("GET", "/v1/api-keys"): "AdminFn",
        ("POST", "/v1/api-keys"): "AdminFn",
        ("GET", "/v1/api-keys/{key_id}"): "AdminFn",
        ("POST", "/v1/api-keys/{key_id}/revoke"): "AdminFn",
        ("ANY", "/v1/files/{proxy+}"): "FilesFn",
    }


def test_authorizer_stage_and_gateway_responses_are_read() -> None:
    # Given the template
    # When it is parsed
    api = parse_api(template())

    # Then the authorizer, the stage and the gateway responses are known
    usage = next(r for r in api.routes if r.resource_path == "/v1/usage" and r.http_method == "POST")
    assert usage.authorization_type == "CUSTOM"
    assert usage.authorizer is not None
    assert usage.authorizer.function_id == "AuthorizerFn"
    assert usage.authorizer.identity_sources == ("method.request.header.Authorization",)
    assert usage.authorizer.ttl_seconds == 300
    assert [(s.name, dict(s.variables)) for s in api.stages] == [("prod", {"tier": "local"})]
    assert set(api.gateway_responses) == {"UNAUTHORIZED"}
    assert api.gateway_responses["UNAUTHORIZED"].status_code == 401
    assert len(api.api_id) == 10
    assert api.api_id == parse_api(template()).api_id  # stable across boots
    assert "POST    /v1/usage -> IngestFn (CUSTOM: ApiAuthorizer)" in [r.describe() for r in api.routes]


def test_function_found_through_fn_sub_alias_and_literal_arn() -> None:
    # Given integrations pointing at a function by Fn::Sub, through an alias, and by a literal ARN
    tpl = template()
    res: dict[str, Any] = tpl["Resources"]
    res["SubFn"] = function("a.handler")
    res["AliasedFn"] = function("b.handler")
    res["NamedFn"] = {"Type": "AWS::Lambda::Function", "Properties": {"FunctionName": "named-fn"}}
    res["Live"] = {
        "Type": "AWS::Lambda::Alias",
        "Properties": {"FunctionName": {"Ref": "AliasedFn"}, "Name": "live"},
    }
    res["Sub"] = resource(ROOT, "sub")
    res["Alias"] = resource(ROOT, "alias")
    res["Named"] = resource(ROOT, "named")
    sub_method = method({"Ref": "Sub"}, "GET", "SubFn", authorized=False)
    sub_method["Properties"]["Integration"]["Uri"] = {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:" + FUNCTIONS + "${SubFn.Arn}/invocations"
    }
    alias_method = method({"Ref": "Alias"}, "GET", "x", authorized=False)
    alias_method["Properties"]["Integration"]["Uri"] = {
        "Fn::Join": ["", [f"arn:aws:apigateway:eu-west-1:{FUNCTIONS}", {"Ref": "Live"}, "/invocations"]]
    }
    named_method = method({"Ref": "Named"}, "GET", "x", authorized=False)
    named_method["Properties"]["Integration"]["Uri"] = (
        f"arn:aws:apigateway:eu-west-1:{FUNCTIONS}"
        "arn:aws:lambda:eu-west-1:123456789012:function:named-fn/invocations"
    )
    res.update({"SubGet": sub_method, "AliasGet": alias_method, "NamedGet": named_method})

    # When it is parsed
    api = parse_api(tpl)

    # Then each resolves to the function's logical id
    by_path = {r.resource_path: r.function_id for r in api.routes}
    assert by_path["/sub"] == "SubFn"
    assert by_path["/alias"] == "AliasedFn"
    assert by_path["/named"] == "NamedFn"


def test_literal_segments_beat_parameters_which_beat_greedy_proxy() -> None:
    # Given a table with a literal, a parameter and a greedy resource under the same parent
    table = RouteTable(parse_api(template()).routes)
    extra = parse_api(_with_literal_sibling()).routes
    table = RouteTable(extra)

    # When paths are matched
    literal = table.match("GET", _segments("/v1/api-keys/mine"))
    param = table.match("GET", _segments("/v1/api-keys/abc-123"))
    nested = table.match("POST", _segments("/v1/api-keys/abc-123/revoke"))
    greedy = table.match("DELETE", _segments("/v1/files/a/b/c.txt"))

    # Then the most specific resource wins and parameters are captured
    assert literal is not None and literal[0].resource_path == "/v1/api-keys/mine" and literal[1] == {}
    assert param is not None and param[1] == {"key_id": "abc-123"}
    assert nested is not None and nested[0].resource_path == "/v1/api-keys/{key_id}/revoke"
    assert greedy is not None and greedy[1] == {"proxy": "a/b/c.txt"}


def test_unknown_paths_and_methods_do_not_match() -> None:
    # Given the table
    table = RouteTable(parse_api(template()).routes)

    # When unknown paths, a wrong method, or the greedy parent itself are matched
    # Then nothing matches (a greedy proxy needs at least one segment)
    assert table.match("GET", _segments("/v2/usage")) is None
    assert table.match("GET", _segments("/v1/usage")) is None
    assert table.match("GET", _segments("/v1/files")) is None
    assert table.match("GET", []) is not None  # the root has its own GET


def test_several_rest_apis_need_a_choice() -> None:
    # Given a template with two RestApis
    tpl = template()
    tpl["Resources"]["OtherApi"] = {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "other"}}

    # When parsed without saying which
    # Then the parser refuses; naming one works
    with pytest.raises(TemplateError, match="exactly one"):
        parse_api(tpl)
    assert parse_api(tpl, rest_api=API).name == "compliance"
    assert parse_api(tpl, rest_api="OtherApi").routes == ()


def test_intrinsic_names_go_through_resolve() -> None:
    # Given a stage name given as a parameter reference
    tpl = template()
    tpl["Resources"]["ApiStage"]["Properties"]["StageName"] = {"Ref": "StageParam"}

    # When parsed with a resolver
    api = parse_api(tpl, lambda value: "dev" if value == {"Ref": "StageParam"} else None)

    # Then the resolved name is used
    assert api.default_stage.name == "dev"


def _with_literal_sibling() -> dict[str, Any]:
    tpl = template()
    tpl["Resources"]["Mine"] = resource({"Ref": "ApiKeys"}, "mine")
    tpl["Resources"]["MineGet"] = method({"Ref": "Mine"}, "GET", "AdminFn")
    return tpl
