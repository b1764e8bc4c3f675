"""Template -> route table: the API Gateway (REST, v1) part of a synthesized CloudFormation template.

Pure functions and frozen data: nothing here opens a socket, so the route table is unit-testable.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

Resolver = Callable[[Any], Any]

# CloudFormation's default for AuthorizerResultTtlInSeconds.
DEFAULT_AUTHORIZER_TTL = 300
# A REST API without a stage is unreachable in AWS; CDK's RestApi names its stage "prod".
FALLBACK_STAGE = "prod"

_LAMBDA_URI = re.compile(r":lambda:path/2015-03-31/functions/(?P<arn>.+?)/invocations$")
_SUB_VARIABLE = re.compile(r"\$\{(?P<name>[^}!][^}]*)\}")
_FUNCTION_TYPES = frozenset({"AWS::Lambda::Function", "AWS::Serverless::Function"})
_EMPTY: Mapping[str, Any] = MappingProxyType({})

# Built-in models every REST API has (referenced by name, not by a template resource).
_BUILTIN_MODELS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "Empty": {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "title": "Empty Schema",
            "type": "object",
        },
        "Error": {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "title": "Error Schema",
            "type": "object",
            "properties": {"message": {"type": "string"}},
        },
    }
)


class TemplateError(ValueError):
    """The template holds an API shape the emulator cannot serve."""


@dataclass(frozen=True)
class Authorizer:
    """A Lambda authorizer (REQUEST or TOKEN)."""

    logical_id: str
    name: str
    type: str
    function_id: str
    identity_sources: tuple[str, ...]
    ttl_seconds: int
    identity_validation_expression: str | None = None


@dataclass(frozen=True)
class MockResponse:
    """One integration response of a MOCK integration (CORS preflight, typically)."""

    status_code: int
    selection_pattern: str | None
    parameters: Mapping[str, str]
    templates: Mapping[str, str]


@dataclass(frozen=True)
class Integration:
    type: str
    function_id: str | None = None
    responses: tuple[MockResponse, ...] = ()


@dataclass(frozen=True)
class RequestValidator:
    validate_body: bool
    validate_parameters: bool


@dataclass(frozen=True)
class Route:
    """One method on one resource."""

    http_method: str
    resource_path: str
    resource_id: str
    authorization_type: str
    authorizer: Authorizer | None
    integration: Integration
    api_key_required: bool = False
    validator: RequestValidator | None = None
    required_parameters: tuple[str, ...] = ()
    request_models: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)

    @property
    def function_id(self) -> str | None:
        return self.integration.function_id

    def describe(self) -> str:
        """One line for printing: ``POST /v1/usage -> IngestApi (CUSTOM: TokenAuthorizer)``."""
        target = self.integration.function_id or self.integration.type
        auth = self.authorization_type
        if self.authorizer is not None:
            auth = f"{auth}: {self.authorizer.logical_id}"
        return f"{self.http_method:7} {self.resource_path} -> {target} ({auth})"


@dataclass(frozen=True)
class GatewayResponseConfig:
    response_type: str
    status_code: int | None
    parameters: Mapping[str, str]
    templates: Mapping[str, str]


@dataclass(frozen=True)
class Stage:
    name: str
    variables: Mapping[str, str]


@dataclass(frozen=True)
class ApiDefinition:
    """Everything the gateway needs from the template, for one RestApi."""

    logical_id: str
    api_id: str
    name: str
    stages: tuple[Stage, ...]
    routes: tuple[Route, ...]
    resource_ids: Mapping[str, str]
    gateway_responses: Mapping[str, GatewayResponseConfig]
    binary_media_types: tuple[str, ...]

    def stage(self, name: str) -> Stage | None:
        return next((stage for stage in self.stages if stage.name == name), None)

    @property
    def default_stage(self) -> Stage:
        return self.stages[0]


# --- route matching ------------------------------------------------------------------------------


class _Node:
    __slots__ = ("greedy", "literal", "methods", "param", "resource_path")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: tuple[str, _Node] | None = None
        self.greedy: tuple[str, _Node] | None = None
        self.methods: dict[str, Route] = {}
        self.resource_path: str | None = None


class RouteTable:
    """Matches a request path like API Gateway: literal segments over ``{param}`` over ``{proxy+}``."""

    def __init__(self, routes: tuple[Route, ...], resource_paths: tuple[str, ...] = ()) -> None:
        self._root = _Node()
        for path in resource_paths:
            self._node(path)
        for route in routes:
            self._node(route.resource_path).methods[route.http_method] = route

    def _node(self, resource_path: str) -> _Node:
        node = self._root
        for part in _segments(resource_path):
            if part.startswith("{") and part.endswith("+}"):
                if node.greedy is None:
                    node.greedy = (part[1:-2], _Node())
                node = node.greedy[1]
            elif part.startswith("{") and part.endswith("}"):
                if node.param is None:
                    node.param = (part[1:-1], _Node())
                node = node.param[1]
            else:
                node = node.literal.setdefault(part, _Node())
        node.resource_path = resource_path
        return node

    def resource_exists(self, segments: list[str]) -> bool:
        return next(_walk(self._root, segments, 0, {}), None) is not None

    def match(self, method: str, segments: list[str]) -> tuple[Route, dict[str, str]] | None:
        """The most specific resource having ``method`` (or ANY), with its path parameters."""
        for node, params in _walk(self._root, segments, 0, {}):
            route = node.methods.get(method) or node.methods.get("ANY")
            if route is not None:
                return route, params
        return None


def _walk(
    node: _Node, segments: list[str], index: int, params: dict[str, str]
) -> Iterator[tuple[_Node, dict[str, str]]]:
    if index == len(segments):
        if node.resource_path is not None:
            yield node, params
        return
    segment = segments[index]
    child = node.literal.get(segment)
    if child is not None:
        yield from _walk(child, segments, index + 1, params)
    if node.param is not None and segment:
        name, child = node.param
        yield from _walk(child, segments, index + 1, {**params, name: segment})
    if node.greedy is not None:
        name, child = node.greedy
        if child.resource_path is not None:
            yield child, {**params, name: "/".join(segments[index:])}


def _segments(path: str) -> list[str]:
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


# --- parsing -------------------------------------------------------------------------------------


def parse_api(
    template: Mapping[str, Any], resolve: Resolver | None = None, *, rest_api: str | None = None
) -> ApiDefinition:
    """Read one ``AWS::ApiGateway::RestApi`` (the only one, or ``rest_api``) and all that hangs off it."""
    resources: Mapping[str, Any] = template.get("Resources") or {}
    api_id = _pick_rest_api(resources, rest_api)
    parser = _Parser(resources, api_id, resolve)
    return parser.parse()


def _pick_rest_api(resources: Mapping[str, Any], wanted: str | None) -> str:
    apis = [lid for lid, res in resources.items() if _type(res) == "AWS::ApiGateway::RestApi"]
    if wanted is not None:
        if wanted not in apis:
            raise TemplateError(f"no AWS::ApiGateway::RestApi named {wanted!r} (found: {apis})")
        return wanted
    if len(apis) != 1:
        raise TemplateError(f"expected exactly one AWS::ApiGateway::RestApi, found {apis}; pass rest_api=")
    return apis[0]


def _type(resource: Any) -> str:
    return str(resource.get("Type", "")) if isinstance(resource, Mapping) else ""


def _props(resource: Any) -> Mapping[str, Any]:
    props = resource.get("Properties") if isinstance(resource, Mapping) else None
    return props if isinstance(props, Mapping) else {}


def _target(value: Any) -> str | None:
    """The logical id a ``Ref`` / ``Fn::GetAtt`` points at."""
    if isinstance(value, Mapping):
        if "Ref" in value and isinstance(value["Ref"], str):
            return value["Ref"]
        attr = value.get("Fn::GetAtt")
        if isinstance(attr, list) and attr and isinstance(attr[0], str):
            return attr[0]
        if isinstance(attr, str):
            return attr.split(".", 1)[0]
    return None


def _referenced_ids(value: Any) -> Iterator[str]:
    """Every logical id an intrinsic refers to, in document order."""
    if isinstance(value, Mapping):
        target = _target(value)
        if target is not None:
            yield target
            return
        sub = value.get("Fn::Sub")
        if sub is not None:
            text, variables = (sub[0], sub[1]) if isinstance(sub, list) and len(sub) == 2 else (sub, {})
            if isinstance(text, str):
                for match in _SUB_VARIABLE.finditer(text):
                    name = match.group("name").split(".", 1)[0]
                    if isinstance(variables, Mapping) and name in variables:
                        yield from _referenced_ids(variables[name])
                    else:
                        yield name
            return
        for item in value.values():
            yield from _referenced_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from _referenced_ids(item)


def stable_id(seed: str, length: int) -> str:
    """A deterministic lowercase id shaped like API Gateway's (``a1b2c3d4e5``)."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big")
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(length):
        digest, rem = divmod(digest, 36)
        out.append(alphabet[rem])
    return "".join(out)


class _Parser:
    def __init__(self, resources: Mapping[str, Any], api: str, resolve: Resolver | None) -> None:
        self.resources = resources
        self.api = api
        self.resolve = resolve
        self._paths: dict[str, str] = {}

    # -- helpers --

    def _of_type(self, type_name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for logical_id, resource in self.resources.items():
            if _type(resource) == type_name:
                props = _props(resource)
                if _target(props.get("RestApiId")) == self.api:
                    yield logical_id, props

    def _text(self, value: Any, what: str) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if self.resolve is not None and value is not None:
            resolved = self.resolve(value)
            if isinstance(resolved, str | int | float):
                return str(resolved)
        raise TemplateError(f"cannot read {what}: {value!r}")

    # -- pieces --

    def parse(self) -> ApiDefinition:
        api_props = _props(self.resources[self.api])
        resource_paths = {"/": "/"}
        for logical_id, _ in self._of_type("AWS::ApiGateway::Resource"):
            resource_paths[logical_id] = self._resource_path(logical_id, ())
        resource_ids = {path: stable_id(f"{self.api}:{path}", 6) for path in resource_paths.values()}
        authorizers = {
            lid: self._authorizer(lid, props) for lid, props in self._of_type("AWS::ApiGateway::Authorizer")
        }
        validators = {
            lid: RequestValidator(
                validate_body=bool(props.get("ValidateRequestBody", False)),
                validate_parameters=bool(props.get("ValidateRequestParameters", False)),
            )
            for lid, props in self._of_type("AWS::ApiGateway::RequestValidator")
        }
        models = self._models()
        routes = tuple(
            self._route(lid, props, resource_ids, authorizers, validators, models)
            for lid, props in self._of_type("AWS::ApiGateway::Method")
        )
        routes = tuple(sorted(routes, key=lambda r: (r.resource_path, r.http_method)))
        return ApiDefinition(
            logical_id=self.api,
            api_id=stable_id(self.api, 10),
            name=self._text(api_props.get("Name", self.api), "RestApi Name"),
            stages=self._stages(),
            routes=routes,
            resource_ids=MappingProxyType(resource_ids),
            gateway_responses=MappingProxyType(self._gateway_responses()),
            binary_media_types=tuple(
                self._text(t, "BinaryMediaTypes").replace("~1", "/")
                for t in api_props.get("BinaryMediaTypes") or ()
            ),
        )

    def _resource_path(self, logical_id: str, seen: tuple[str, ...]) -> str:
        if logical_id in self._paths:
            return self._paths[logical_id]
        if logical_id in seen:
            raise TemplateError(f"resource cycle through {logical_id}")
        resource = self.resources.get(logical_id)
        if _type(resource) != "AWS::ApiGateway::Resource":
            raise TemplateError(f"{logical_id} is not an AWS::ApiGateway::Resource")
        props = _props(resource)
        parent = self._parent_path(props.get("ParentId"), (*seen, logical_id))
        part = self._text(props.get("PathPart"), f"{logical_id}.PathPart")
        path = f"{parent.rstrip('/')}/{part}"
        self._paths[logical_id] = path
        return path

    def _parent_path(self, value: Any, seen: tuple[str, ...]) -> str:
        target = _target(value)
        if target is None:
            raise TemplateError(f"cannot follow resource reference {value!r}")
        if target == self.api:  # Fn::GetAtt [RestApi, RootResourceId]
            return "/"
        return self._resource_path(target, seen)

    def _function_id(self, uri: Any, what: str) -> str:
        """Walk the integration/authorizer URI down to the Lambda function's logical id."""
        for ref in _referenced_ids(uri):
            function = self._as_function(ref, ())
            if function is not None:
                return function
        text: Any = uri
        if not isinstance(text, str) and self.resolve is not None:
            text = self.resolve(uri)
        if isinstance(text, str):
            match = _LAMBDA_URI.search(text)
            arn = match.group("arn") if match else text
            name = arn.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in arn else arn
            for logical_id, resource in self.resources.items():
                if _type(resource) not in _FUNCTION_TYPES:
                    continue
                configured = _props(resource).get("FunctionName")
                if logical_id == name or (configured is not None and self._maybe_text(configured) == name):
                    return logical_id
        raise TemplateError(f"cannot find the Lambda function behind {what}: {uri!r}")

    def _maybe_text(self, value: Any) -> str | None:
        try:
            return self._text(value, "FunctionName")
        except Exception:  # an unresolvable name just does not match
            return None

    def _as_function(self, logical_id: str, seen: tuple[str, ...]) -> str | None:
        resource = self.resources.get(logical_id)
        kind = _type(resource)
        if kind in _FUNCTION_TYPES:
            return logical_id
        if kind in {"AWS::Lambda::Alias", "AWS::Lambda::Version"} and logical_id not in seen:
            for ref in _referenced_ids(_props(resource).get("FunctionName")):
                found = self._as_function(ref, (*seen, logical_id))
                if found is not None:
                    return found
        return None

    def _authorizer(self, logical_id: str, props: Mapping[str, Any]) -> Authorizer:
        kind = self._text(props.get("Type", "TOKEN"), f"{logical_id}.Type").upper()
        if kind not in {"REQUEST", "TOKEN"}:
            raise TemplateError(
                f"authorizer {logical_id}: type {kind} is not emulated (REQUEST and TOKEN are)"
            )
        source = props.get("IdentitySource")
        sources = (
            tuple(s.strip() for s in self._text(source, "IdentitySource").split(",") if s.strip())
            if source
            else ()
        )
        ttl = props.get("AuthorizerResultTtlInSeconds")
        expression = props.get("IdentityValidationExpression")
        return Authorizer(
            logical_id=logical_id,
            name=self._text(props.get("Name", logical_id), f"{logical_id}.Name"),
            type=kind,
            function_id=self._function_id(props.get("AuthorizerUri"), f"authorizer {logical_id}"),
            identity_sources=sources,
            ttl_seconds=DEFAULT_AUTHORIZER_TTL if ttl is None else int(self._text(ttl, "TTL")),
            identity_validation_expression=None
            if expression is None
            else self._text(expression, "expression"),
        )

    def _models(self) -> dict[str, Mapping[str, Any]]:
        models: dict[str, Mapping[str, Any]] = dict(_BUILTIN_MODELS)
        for logical_id, props in self._of_type("AWS::ApiGateway::Model"):
            schema = props.get("Schema", {})
            if isinstance(schema, str):
                schema = json.loads(schema)
            if not isinstance(schema, Mapping):
                raise TemplateError(f"model {logical_id}: Schema must be a JSON object")
            models[logical_id] = schema
            if "Name" in props:
                models[self._text(props["Name"], f"{logical_id}.Name")] = schema
        return models

    def _route(
        self,
        logical_id: str,
        props: Mapping[str, Any],
        resource_ids: Mapping[str, str],
        authorizers: Mapping[str, Authorizer],
        validators: Mapping[str, RequestValidator],
        models: Mapping[str, Mapping[str, Any]],
    ) -> Route:
        path = self._parent_path(props.get("ResourceId"), ())
        auth_type = self._text(props.get("AuthorizationType", "NONE"), "AuthorizationType").upper()
        authorizer = None
        authorizer_ref = _target(props.get("AuthorizerId"))
        if authorizer_ref is not None:
            if authorizer_ref not in authorizers:
                raise TemplateError(f"method {logical_id}: unknown authorizer {authorizer_ref}")
            authorizer = authorizers[authorizer_ref]
        if auth_type == "CUSTOM" and authorizer is None:
            raise TemplateError(f"method {logical_id}: AuthorizationType CUSTOM without AuthorizerId")
        if auth_type == "COGNITO_USER_POOLS":
            raise TemplateError(f"method {logical_id}: COGNITO_USER_POOLS authorization is not emulated")
        validator_ref = _target(props.get("RequestValidatorId"))
        request_models: dict[str, Mapping[str, Any]] = {}
        for content_type, model in (props.get("RequestModels") or {}).items():
            name = _target(model) or self._text(model, "RequestModels")
            if name not in models:
                raise TemplateError(f"method {logical_id}: unknown model {name}")
            request_models[str(content_type).lower()] = models[name]
        return Route(
            http_method=self._text(props.get("HttpMethod", "ANY"), "HttpMethod").upper(),
            resource_path=path,
            resource_id=resource_ids[path],
            authorization_type=auth_type,
            authorizer=authorizer if auth_type == "CUSTOM" else None,
            integration=self._integration(logical_id, props.get("Integration") or {}),
            api_key_required=bool(props.get("ApiKeyRequired", False)),
            validator=validators.get(validator_ref) if validator_ref else None,
            required_parameters=tuple(
                sorted(
                    name
                    for name, required in (props.get("RequestParameters") or {}).items()
                    if required is True
                )
            ),
            request_models=MappingProxyType(request_models),
        )

    def _integration(self, logical_id: str, props: Mapping[str, Any]) -> Integration:
        kind = self._text(props.get("Type", "MOCK"), "Integration.Type").upper()
        if kind == "AWS_PROXY":
            return Integration(
                type=kind, function_id=self._function_id(props.get("Uri"), f"method {logical_id}")
            )
        responses = tuple(
            MockResponse(
                status_code=int(self._text(item.get("StatusCode", "200"), "StatusCode")),
                selection_pattern=item.get("SelectionPattern") or None,
                parameters=MappingProxyType(
                    {
                        str(k): self._text(v, "ResponseParameters")
                        for k, v in (item.get("ResponseParameters") or {}).items()
                    }
                ),
                templates=MappingProxyType(
                    {
                        str(k): self._text(v, "ResponseTemplates")
                        for k, v in (item.get("ResponseTemplates") or {}).items()
                    }
                ),
            )
            for item in props.get("IntegrationResponses") or ()
        )
        return Integration(type=kind, responses=responses)

    def _gateway_responses(self) -> dict[str, GatewayResponseConfig]:
        out: dict[str, GatewayResponseConfig] = {}
        for _, props in self._of_type("AWS::ApiGateway::GatewayResponse"):
            kind = self._text(props.get("ResponseType"), "ResponseType").upper()
            status = props.get("StatusCode")
            out[kind] = GatewayResponseConfig(
                response_type=kind,
                status_code=None if status is None else int(self._text(status, "StatusCode")),
                parameters=MappingProxyType(
                    {
                        str(k): self._text(v, "ResponseParameters")
                        for k, v in (props.get("ResponseParameters") or {}).items()
                    }
                ),
                templates=MappingProxyType(
                    {
                        str(k): self._text(v, "ResponseTemplates")
                        for k, v in (props.get("ResponseTemplates") or {}).items()
                    }
                ),
            )
        return out

    def _stages(self) -> tuple[Stage, ...]:
        stages: list[Stage] = []
        for _, props in self._of_type("AWS::ApiGateway::Stage"):
            stages.append(
                Stage(
                    self._text(props.get("StageName"), "StageName"), self._variables(props.get("Variables"))
                )
            )
        for _, props in self._of_type("AWS::ApiGateway::Deployment"):
            if props.get("StageName") is not None:
                description = props.get("StageDescription") or {}
                name = self._text(props["StageName"], "StageName")
                if all(stage.name != name for stage in stages):
                    stages.append(Stage(name, self._variables(description.get("Variables"))))
        return tuple(stages) or (Stage(FALLBACK_STAGE, MappingProxyType({})),)

    def _variables(self, value: Any) -> Mapping[str, str]:
        if not isinstance(value, Mapping):
            return MappingProxyType({})
        return MappingProxyType({str(k): self._text(v, f"stage variable {k}") for k, v in value.items()})
