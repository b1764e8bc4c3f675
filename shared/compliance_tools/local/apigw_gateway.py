"""One request through API Gateway (REST): route, authorize, validate, integrate. No sockets here."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from compliance_tools.local.apigw_auth import (
    UNAUTHORIZED_MESSAGE,
    AuthorizerCache,
    AuthorizerDecision,
    MalformedAuthorizerResultError,
    identity_value,
    parse_decision,
)
from compliance_tools.local.apigw_events import (
    HttpRequest,
    HttpResponse,
    MalformedProxyResultError,
    RequestScope,
    collect_headers,
    collect_query,
    method_arn,
    new_extended_request_id,
    proxy_event,
    proxy_result_response,
    request_authorizer_event,
)
from compliance_tools.local.apigw_responses import (
    choose_template,
    gateway_response,
    mapped_value,
    render_template,
    template_variables,
)
from compliance_tools.local.apigw_template import ApiDefinition, Authorizer, Route, RouteTable, Stage

Invoke = Callable[[str, dict[str, Any]], Any]

# API Gateway's payload quota (REST): 10 MB.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
# Lambda's synchronous invocation payload quota; API Gateway answers 413 when the event exceeds it.
MAX_INVOKE_PAYLOAD_BYTES = 6 * 1024 * 1024
_TOO_LARGE_BODY = f"HTTP content length exceeded {MAX_REQUEST_BYTES} bytes.".encode()
_MESSAGES = {
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "UNAUTHORIZED": UNAUTHORIZED_MESSAGE,
    "INTERNAL": "Internal server error",
    "EXPLICIT_DENY": "User is not authorized to access this resource with an explicit deny",
    "IMPLICIT_DENY": "User is not authorized to access this resource",
    "TOO_LONG": "Request Too Long",
}


def lambda_error_message(exc: BaseException) -> str:
    """The Lambda ``errorMessage`` of a failed invocation.

    Read from ``error_message`` (LambdaInvokeError), else from a Lambda error ``payload`` dict
    (lambdas.LambdaFunctionError), else ``str(exc)``.
    """
    message = getattr(exc, "error_message", None)
    if isinstance(message, str):
        return message
    payload = getattr(exc, "payload", None)
    if isinstance(payload, Mapping) and isinstance(payload.get("errorMessage"), str):
        return str(payload["errorMessage"])
    return str(exc)


def too_large_response() -> HttpResponse:
    """What AWS answers for a body over 10 MB (plain text, before any gateway response applies)."""
    return HttpResponse(
        413,
        [("Content-Type", "text; charset=utf-8")],
        _TOO_LARGE_BODY,
        detail=f"body over {MAX_REQUEST_BYTES} bytes",
    )


class Gateway:
    """The socket-free core: ``handle(HttpRequest) -> HttpResponse``; safe to call from many threads."""

    def __init__(
        self,
        api: ApiDefinition,
        invoke: Invoke,
        *,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.invoke = invoke
        self.region = region
        self.account_id = account_id
        self.clock = clock
        self.monotonic = monotonic
        self.table = RouteTable(api.routes, tuple(api.resource_ids))
        self.authorizer_cache = AuthorizerCache(monotonic)
        self._stages = {stage.name: stage for stage in api.stages}
        self._schemas = _SchemaValidators(api.routes)

    # -- routing --

    def _locate(
        self, method: str, segments: list[str]
    ) -> tuple[Stage, list[str], tuple[Route, dict[str, str]] | None]:
        """Serve both ``/{stage}/path`` (execute-api style) and ``/path`` (custom-domain style)."""
        if segments and segments[0] in self._stages:
            rest = segments[1:]
            found = self.table.match(method, rest)
            if found is not None or self.table.resource_exists(rest):
                return self._stages[segments[0]], rest, found
        return self.api.default_stage, segments, self.table.match(method, segments)

    def _scope(self, request: HttpRequest) -> RequestScope:
        target = request.target.split("#", 1)[0]
        raw_path, _, query_string = target.partition("?")
        if not raw_path.startswith("/"):
            raw_path = "/" + raw_path  # absolute-form targets are not expected from local clients
        segments = [unquote(part) for part in raw_path.split("/")[1:]]
        if segments and segments[-1] == "":
            segments.pop()
        method = request.method.upper()
        stage, segments, found = self._locate(method, segments)

        headers, multi_headers = collect_headers(request.headers)
        self._forwarding_headers(headers, multi_headers, request)
        pairs = [
            (unquote(name), unquote(value))
            for name, _, value in (item.partition("=") for item in query_string.split("&") if item)
        ]
        query, multi_query = collect_query(pairs)
        host = next((v for k, v in headers.items() if k.lower() == "host"), None)
        scope = RequestScope(
            request_id=str(uuid.uuid4()),
            extended_request_id=new_extended_request_id(),
            epoch_ms=int(self.clock() * 1000),
            method=method,
            path="/" + "/".join(segments),
            full_path=raw_path,
            stage=stage,
            headers=headers,
            multi_headers=multi_headers,
            query=query,
            multi_query=multi_query,
            source_ip=request.source_ip,
            domain_name=host or f"{request.server_host}:{request.server_port}",
            protocol=request.protocol,
        )
        if found is not None:
            scope.route, scope.path_parameters = found
        return scope

    @staticmethod
    def _forwarding_headers(
        headers: dict[str, str], multi: dict[str, list[str]], request: HttpRequest
    ) -> None:
        """The headers API Gateway's front end adds before the request reaches the integration."""
        names = {name.lower(): name for name in multi}
        forwarded_for = names.get("x-forwarded-for", "X-Forwarded-For")
        previous = headers.get(forwarded_for)
        added = {
            forwarded_for: f"{previous}, {request.source_ip}" if previous else request.source_ip,
            "X-Forwarded-Port": str(request.server_port),
            "X-Forwarded-Proto": "http",
            "X-Amzn-Trace-Id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}",
        }
        for name, value in added.items():
            if name != forwarded_for and name.lower() in names:
                continue
            headers[name] = value
            multi[name] = [value]

    # -- the request --

    def handle(self, request: HttpRequest) -> HttpResponse:
        if len(request.body) > MAX_REQUEST_BYTES:
            return too_large_response()
        scope = self._scope(request)
        route = scope.route
        if route is None:
            # AWS answers unknown paths and unknown methods alike, so nothing leaks about the API's shape.
            return self._error(
                scope, "MISSING_AUTHENTICATION_TOKEN", _MESSAGES["MISSING_AUTHENTICATION_TOKEN"]
            )

        if route.authorization_type == "AWS_IAM" and not scope.header("Authorization"):
            return self._error(
                scope, "MISSING_AUTHENTICATION_TOKEN", _MESSAGES["MISSING_AUTHENTICATION_TOKEN"]
            )
        if route.authorizer is not None:
            denied = self._authorize(route.authorizer, scope)
            if denied is not None:
                return denied
        if route.api_key_required:
            scope.api_key = scope.header("x-api-key")
            if not scope.api_key:
                return self._error(scope, "INVALID_API_KEY", "Forbidden")
        invalid = self._validate(route, scope, request.body)
        if invalid is not None:
            return invalid

        if route.integration.type == "AWS_PROXY" and route.function_id is not None:
            return self._proxy(route.function_id, scope, request.body)
        if route.integration.type == "MOCK":
            return self._mock(route, scope)
        return self._error(
            scope,
            "API_CONFIGURATION_ERROR",
            _MESSAGES["INTERNAL"],
            detail=f"integration type {route.integration.type} is not emulated",
        )

    def _error(
        self,
        scope: RequestScope,
        response_type: str,
        message: str | None,
        *,
        status: int | None = None,
        validation_error: str | None = None,
        detail: str = "",
    ) -> HttpResponse:
        return gateway_response(
            response_type,
            message,
            api=self.api,
            account_id=self.account_id,
            scope=scope,
            request_id=scope.request_id,
            extended_request_id=scope.extended_request_id,
            status=status,
            validation_error=validation_error,
            detail=detail,
        )

    # -- authorizer --

    def _context_values(self, scope: RequestScope) -> Callable[[], Mapping[str, Any]]:
        return lambda: template_variables(scope, api=self.api, account_id=self.account_id)

    def _authorize(self, authorizer: Authorizer, scope: RequestScope) -> HttpResponse | None:
        """None when the request may go on (``scope.authorizer`` then set), else the error response."""
        arn = method_arn(
            self.region, self.account_id, self.api.api_id, scope.stage.name, scope.method, scope.path
        )
        values = [
            identity_value(source, scope, self._context_values(scope))
            for source in authorizer.identity_sources
        ]
        # With caching on, every identity source must be present and non-empty, else 401 without invoking.
        validated = authorizer.type == "TOKEN" or authorizer.ttl_seconds > 0
        if validated and (not values or not all(values)):
            return self._error(scope, "UNAUTHORIZED", UNAUTHORIZED_MESSAGE, detail="identity source missing")
        token = values[0] if values else None
        expression = authorizer.identity_validation_expression
        if authorizer.type == "TOKEN" and expression and token and re.fullmatch(expression, token) is None:
            return self._error(scope, "UNAUTHORIZED", UNAUTHORIZED_MESSAGE, detail="token fails validation")

        key = (authorizer.logical_id, tuple(value or "" for value in values))
        decision = self.authorizer_cache.get(key) if authorizer.ttl_seconds > 0 else None
        cached = decision is not None
        if decision is None:
            event = (
                {"type": "TOKEN", "authorizationToken": token, "methodArn": arn}
                if authorizer.type == "TOKEN"
                else request_authorizer_event(
                    scope, arn=arn, api_id=self.api.api_id, account_id=self.account_id
                )
            )
            started = self.monotonic()
            try:
                result = self.invoke(authorizer.function_id, event)
            except Exception as exc:
                message = lambda_error_message(exc)
                if message == UNAUTHORIZED_MESSAGE:
                    return self._error(
                        scope, "UNAUTHORIZED", UNAUTHORIZED_MESSAGE, detail="authorizer: Unauthorized"
                    )
                return self._error(
                    scope,
                    "AUTHORIZER_CONFIGURATION_ERROR",
                    None,
                    detail=f"authorizer error: {type(exc).__name__}: {message}",
                )
            try:
                decision = parse_decision(result, int((self.monotonic() - started) * 1000))
            except MalformedAuthorizerResultError as exc:
                return self._error(
                    scope,
                    "AUTHORIZER_CONFIGURATION_ERROR",
                    None,
                    detail=f"malformed authorizer result: {exc}",
                )
            self.authorizer_cache.put(key, decision, authorizer.ttl_seconds)
        return self._apply(decision, arn, scope, cached=cached)

    def _apply(
        self, decision: AuthorizerDecision, arn: str, scope: RequestScope, *, cached: bool
    ) -> HttpResponse | None:
        verdict = decision.verdict(arn)
        if verdict == "explicit-deny":
            return self._error(
                scope, "ACCESS_DENIED", _MESSAGES["EXPLICIT_DENY"], detail=f"policy denies {arn}"
            )
        if verdict == "implicit-deny":
            return self._error(
                scope, "ACCESS_DENIED", _MESSAGES["IMPLICIT_DENY"], detail=f"policy does not allow {arn}"
            )
        scope.authorizer = decision.request_context(cached=cached)
        return None

    # -- request validation --

    def _validate(self, route: Route, scope: RequestScope, body: bytes) -> HttpResponse | None:
        validator = route.validator
        if validator is None:
            return None
        if validator.validate_parameters and route.required_parameters:
            missing = [
                name.rsplit(".", 1)[-1]
                for name in route.required_parameters
                if not self._parameter(name, scope)
            ]
            if missing:
                message = f"Missing required request parameters: [{', '.join(missing)}]"
                return self._error(scope, "BAD_REQUEST_PARAMETERS", message, validation_error=message)
        if validator.validate_body and route.request_models:
            content_type = (
                (scope.header("Content-Type") or "application/json").split(";", 1)[0].strip().lower()
            )
            schema = route.request_models.get(content_type) or route.request_models.get("$default")
            if schema is not None:
                errors = self._schemas.errors(schema, body)
                if errors:
                    return self._error(
                        scope,
                        "BAD_REQUEST_BODY",
                        "Invalid request body",
                        validation_error=f"[{', '.join(errors)}]",
                    )
        return None

    @staticmethod
    def _parameter(name: str, scope: RequestScope) -> str | None:
        for prefix, lookup in (
            ("method.request.header.", scope.header),
            ("method.request.querystring.", scope.query.get),
            ("method.request.path.", scope.path_parameters.get),
        ):
            if name.startswith(prefix):
                return lookup(name[len(prefix) :])
        return None

    # -- integrations --

    def _proxy(self, function_id: str, scope: RequestScope, body: bytes) -> HttpResponse:
        event = proxy_event(
            scope,
            api_id=self.api.api_id,
            account_id=self.account_id,
            body=body,
            binary_media_types=self.api.binary_media_types,
        )
        # Only a large body can push the event past Lambda's quota; measure exactly only then.
        if len(body) * 4 // 3 > MAX_INVOKE_PAYLOAD_BYTES - 256 * 1024:
            size = len(json.dumps(event).encode())
            if size > MAX_INVOKE_PAYLOAD_BYTES:
                return self._error(
                    scope, "REQUEST_TOO_LARGE", _MESSAGES["TOO_LONG"], detail=f"event is {size} bytes"
                )
        try:
            result = self.invoke(function_id, event)
        except Exception as exc:
            return self._error(
                scope,
                "DEFAULT_5XX",
                _MESSAGES["INTERNAL"],
                status=502,
                detail=f"{function_id} failed: {type(exc).__name__}: {lambda_error_message(exc)}",
            )
        try:
            status, headers, payload = proxy_result_response(
                result, binary_media_types=self.api.binary_media_types, accept=scope.header("Accept")
            )
        except MalformedProxyResultError as exc:
            return self._error(
                scope,
                "DEFAULT_5XX",
                _MESSAGES["INTERNAL"],
                status=502,
                detail=f"Malformed Lambda proxy response from {function_id}: {exc}",
            )
        headers += self._tracing_headers(scope)
        return HttpResponse(status, headers, payload)

    def _mock(self, route: Route, scope: RequestScope) -> HttpResponse:
        responses = route.integration.responses
        chosen = next((r for r in responses if not r.selection_pattern), responses[0] if responses else None)
        if chosen is None:
            return HttpResponse(
                200, [("Content-Type", "application/json"), *self._tracing_headers(scope)], b""
            )
        variables = template_variables(scope, api=self.api, account_id=self.account_id)
        headers: list[tuple[str, str]] = []
        body = b""
        content_type = "application/json"
        if chosen.templates:
            content_type, template = choose_template(chosen.templates, scope.header("Accept"))
            body = render_template(template, variables).strip().encode()
        headers.append(("Content-Type", content_type))
        for name, expression in chosen.parameters.items():
            if name.startswith("method.response.header."):
                value = mapped_value(expression, scope, variables)
                if value is not None:
                    headers.append((name[len("method.response.header.") :], value))
        return HttpResponse(chosen.status_code, headers + self._tracing_headers(scope), body)

    @staticmethod
    def _tracing_headers(scope: RequestScope) -> list[tuple[str, str]]:
        trace = scope.header("X-Amzn-Trace-Id")
        out = [("x-amzn-RequestId", scope.request_id), ("x-amz-apigw-id", scope.extended_request_id)]
        if trace:
            out.append(("X-Amzn-Trace-Id", trace))
        return out


class _SchemaValidators:
    """Draft-4 JSON-schema validators (API Gateway models), compiled once per model at startup."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self._compiled: dict[int, Any] = {}
        schemas = [schema for route in routes for schema in route.request_models.values()]
        if not schemas:
            return
        try:
            import jsonschema
        except ImportError:  # dev tooling without jsonschema: bodies go unvalidated rather than fail
            return
        for schema in schemas:
            self._compiled.setdefault(id(schema), jsonschema.Draft4Validator(schema))

    def errors(self, schema: Mapping[str, Any], body: bytes) -> list[str]:
        """The body's validation errors; [] when valid."""
        validator = self._compiled.get(id(schema))
        if validator is None:
            return []
        try:
            document = json.loads(body or b"null")
        except ValueError as exc:
            return [f"Invalid JSON: {exc}"]
        return [error.message for error in validator.iter_errors(document)]
