"""Gateway responses (errors API Gateway answers itself) and the small template language they use."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from compliance_tools.local.apigw_events import HttpResponse, RequestScope
from compliance_tools.local.apigw_template import ApiDefinition, GatewayResponseConfig

DEFAULT_TEMPLATE = '{"message":$context.error.messageString}'

# Default status of each response type (AWS's "Gateway response types" table); DEFAULT_4XX/5XX have none.
DEFAULT_STATUS: Mapping[str, int] = {
    "ACCESS_DENIED": 403,
    "API_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "AUTHORIZER_FAILURE": 500,
    "BAD_REQUEST_PARAMETERS": 400,
    "BAD_REQUEST_BODY": 400,
    "EXPIRED_TOKEN": 403,
    "INTEGRATION_FAILURE": 504,
    "INTEGRATION_TIMEOUT": 504,
    "INVALID_API_KEY": 403,
    "INVALID_SIGNATURE": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "QUOTA_EXCEEDED": 429,
    "REQUEST_TOO_LARGE": 413,
    "RESOURCE_NOT_FOUND": 404,
    "THROTTLED": 429,
    "UNAUTHORIZED": 401,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "WAF_FILTERED": 403,
}

# The x-amzn-ErrorType header AWS sends with each kind of gateway response.
ERROR_TYPES: Mapping[str, str] = {
    "ACCESS_DENIED": "AccessDeniedException",
    "API_CONFIGURATION_ERROR": "InternalServerErrorException",
    "AUTHORIZER_CONFIGURATION_ERROR": "AuthorizerConfigurationException",
    "AUTHORIZER_FAILURE": "AuthorizerConfigurationException",
    "BAD_REQUEST_PARAMETERS": "BadRequestException",
    "BAD_REQUEST_BODY": "BadRequestException",
    "DEFAULT_4XX": "BadRequestException",
    "DEFAULT_5XX": "InternalServerErrorException",
    "INTEGRATION_FAILURE": "InternalServerErrorException",
    "INTEGRATION_TIMEOUT": "InternalServerErrorException",
    "INVALID_API_KEY": "ForbiddenException",
    "MISSING_AUTHENTICATION_TOKEN": "MissingAuthenticationTokenException",
    "REQUEST_TOO_LARGE": "BadRequestException",
    "UNAUTHORIZED": "UnauthorizedException",
    "UNSUPPORTED_MEDIA_TYPE": "UnsupportedMediaTypeException",
}

# ``$context.x.y`` / ``${context.x.y}`` / quiet ``$!context.x`` references (and $stageVariables.x).
_REFERENCE = re.compile(
    r"\$!?\{(?P<braced>(?:context|stageVariables)(?:\.[A-Za-z0-9_-]+)+)\}"
    r"|\$!?(?P<bare>(?:context|stageVariables)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
)
_DIRECTIVE = re.compile(r"^\s*#(?:set|if|elseif|else|end|foreach)\b.*$", re.MULTILINE)


def template_variables(
    scope: RequestScope | None,
    *,
    api: ApiDefinition,
    account_id: str,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The flat ``context.*`` / ``stageVariables.*`` names a template may reference."""
    values: dict[str, Any] = {"context.apiId": api.api_id, "context.accountId": account_id}
    if scope is not None:
        values.update(
            {
                "context.requestId": scope.request_id,
                "context.extendedRequestId": scope.extended_request_id,
                "context.httpMethod": scope.method,
                "context.path": scope.full_path,
                "context.protocol": scope.protocol,
                "context.stage": scope.stage.name,
                "context.domainName": scope.domain_name,
                "context.domainPrefix": scope.domain_name.split(".", 1)[0],
                "context.requestTime": scope.request_time,
                "context.requestTimeEpoch": scope.epoch_ms,
                "context.resourcePath": scope.resource_path,
                "context.resourceId": scope.route.resource_id if scope.route else None,
                "context.identity.sourceIp": scope.source_ip,
                "context.identity.userAgent": scope.user_agent,
                "context.identity.apiKey": scope.api_key,
            }
        )
        for key, value in (scope.authorizer or {}).items():
            values[f"context.authorizer.{key}"] = value
        for key, value in scope.stage.variables.items():
            values[f"stageVariables.{key}"] = value
    for key, value in (error or {}).items():
        values[f"context.error.{key}"] = value
    return values


def render_template(template: str, variables: Mapping[str, Any]) -> str:
    """Substitute variable references; VTL directives (#set, #if...) are dropped, unknown names are empty."""

    def substitute(match: re.Match[str]) -> str:
        value = variables.get(match.group("braced") or match.group("bare"))
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return _REFERENCE.sub(substitute, _DIRECTIVE.sub("", template))


def mapped_value(expression: str, scope: RequestScope | None, variables: Mapping[str, Any]) -> str | None:
    """A mapped value: ``'literal'``, ``method.request.header.X``, ``context.x``, ``stageVariables.x``."""
    expression = expression.strip()
    if len(expression) >= 2 and expression[0] == expression[-1] == "'":
        return expression[1:-1]
    if scope is not None:
        for prefix, lookup in (
            ("method.request.header.", scope.header),
            ("method.request.querystring.", scope.query.get),
            ("method.request.path.", scope.path_parameters.get),
        ):
            if expression.startswith(prefix):
                return lookup(expression[len(prefix) :])
    value = variables.get(expression)
    return None if value is None else str(value)


def choose_template(templates: Mapping[str, str], accept: str | None) -> tuple[str, str]:
    """(content type, template): the Accept-ed one if configured, else application/json, else the first."""
    if accept:
        for media_type in (part.split(";", 1)[0].strip().lower() for part in accept.split(",")):
            for content_type, template in templates.items():
                if content_type.lower() == media_type:
                    return content_type, template
    if "application/json" in templates:
        return "application/json", templates["application/json"]
    return next(iter(templates.items()))


def gateway_response(
    response_type: str,
    message: str | None,
    *,
    api: ApiDefinition,
    account_id: str,
    scope: RequestScope | None,
    request_id: str,
    extended_request_id: str,
    status: int | None = None,
    validation_error: str | None = None,
    detail: str = "",
) -> HttpResponse:
    """Render a gateway response: the type's own configuration, else DEFAULT_4XX/5XX's, else AWS's default."""
    default_status = status or DEFAULT_STATUS.get(response_type, 500)
    family = "DEFAULT_4XX" if default_status < 500 else "DEFAULT_5XX"
    config: GatewayResponseConfig | None = api.gateway_responses.get(response_type)
    family_config = api.gateway_responses.get(family)
    chosen = config or family_config
    code = default_status
    if config is not None and config.status_code is not None:
        code = config.status_code
    elif family_config is not None and family_config.status_code is not None:
        code = family_config.status_code

    error = {
        "message": message,
        "messageString": json.dumps(message),
        "responseType": response_type,
        "validationErrorString": validation_error,
    }
    variables = template_variables(scope, api=api, account_id=account_id, error=error)
    templates: Mapping[str, str] = chosen.templates if chosen and chosen.templates else {}
    if not templates:
        if chosen is None and response_type == "ACCESS_DENIED":
            # AWS's untouched ACCESS_DENIED answer spells the key with a capital M.
            templates = {"application/json": '{"Message":$context.error.messageString}'}
        else:
            templates = {"application/json": DEFAULT_TEMPLATE}
    content_type, template = choose_template(templates, scope.header("Accept") if scope else None)
    headers: list[tuple[str, str]] = [("Content-Type", content_type)]
    for name, expression in (chosen.parameters if chosen else {}).items():
        if name.startswith("gatewayresponse.header."):
            value = mapped_value(expression, scope, variables)
            if value is not None:
                header = name[len("gatewayresponse.header.") :]
                # A mapped header replaces the default of the same name (API Gateway sends one Content-Type).
                headers = [(h, v) for h, v in headers if h.lower() != header.lower()]
                headers.append((header, value))
    headers += [
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", ERROR_TYPES.get(response_type, ERROR_TYPES[family])),
        ("x-amz-apigw-id", extended_request_id),
    ]
    body = render_template(template, variables).encode("utf-8")
    return HttpResponse(code, headers, body, detail=detail or f"{response_type}: {message}")
