"""HTTP request <-> Lambda proxy event (REST, payload format 1.0), shaped like API Gateway's."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from compliance_tools.local.apigw_template import Route, Stage

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Hop-by-hop headers describe the local TCP connection, not the request API Gateway forwards.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
_PROXY_RESULT_KEYS = frozenset({"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"})
# Response headers API Gateway owns: it recomputes them, or keeps the integration's under x-amzn-Remapped-.
_DROPPED_RESPONSE_HEADERS = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})
_REMAPPED_RESPONSE_HEADERS = frozenset({"date", "server", "www-authenticate"})
_IDENTITY_NULLS = (
    "cognitoIdentityPoolId",
    "accountId",
    "cognitoIdentityId",
    "caller",
    "principalOrgId",
    "accessKey",
    "cognitoAuthenticationType",
    "cognitoAuthenticationProvider",
    "userArn",
)


@dataclass
class HttpRequest:
    """What the socket layer read: method, raw target, headers in arrival order, body bytes."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"
    server_host: str = "127.0.0.1"
    server_port: int = 0
    protocol: str = "HTTP/1.1"


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    # For the access log: why an error response was sent (never sent to the client).
    detail: str = ""

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


class MalformedProxyResultError(ValueError):
    """The integration returned something API Gateway would call 'Malformed Lambda proxy response'."""


@dataclass
class RequestScope:
    """One request as API Gateway sees it after routing: the source of events and context variables."""

    request_id: str
    extended_request_id: str
    epoch_ms: int
    method: str
    path: str
    full_path: str
    stage: Stage
    headers: dict[str, str]
    multi_headers: dict[str, list[str]]
    query: dict[str, str]
    multi_query: dict[str, list[str]]
    source_ip: str
    domain_name: str
    protocol: str
    route: Route | None = None
    path_parameters: dict[str, str] = field(default_factory=dict)
    authorizer: dict[str, Any] | None = None
    api_key: str | None = None
    _header_index: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._header_index = {name.lower(): name for name in self.multi_headers}

    def header(self, name: str) -> str | None:
        key = self._header_index.get(name.lower())
        return None if key is None else self.headers.get(key)

    def multi_header(self, name: str) -> list[str] | None:
        key = self._header_index.get(name.lower())
        return None if key is None else self.multi_headers.get(key)

    @property
    def user_agent(self) -> str | None:
        return self.header("User-Agent")

    @property
    def resource_path(self) -> str | None:
        return self.route.resource_path if self.route else None

    @property
    def request_time(self) -> str:
        """``14/Sep/2019:17:25:59 +0000``, locale-independent like AWS."""
        t = time.gmtime(self.epoch_ms / 1000)
        clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"


def new_extended_request_id() -> str:
    """Shaped like AWS's ``ABJaQEp0CYcFe-A=``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()[:15] + "="


def collect_headers(raw: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Single-value (last wins) and multi-value maps, keyed by the client's spelling of each name."""
    spelling: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in raw:
        lowered = name.lower()
        if lowered in _HOP_BY_HOP:
            continue
        key = spelling.setdefault(lowered, name)
        multi.setdefault(key, []).append(value)
    return {key: values[-1] for key, values in multi.items()}, multi


def collect_query(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return {key: values[-1] for key, values in multi.items()}, multi


def method_arn(region: str, account_id: str, api_id: str, stage: str, method: str, path: str) -> str:
    return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{method}/{path.lstrip('/')}"


def request_context(
    scope: RequestScope, *, api_id: str, account_id: str, with_authorizer: bool
) -> dict[str, Any]:
    route = scope.route
    identity: dict[str, Any] = dict.fromkeys(_IDENTITY_NULLS)
    identity["sourceIp"] = scope.source_ip
    identity["user"] = None
    identity["userAgent"] = scope.user_agent
    if scope.api_key is not None:
        identity["apiKey"] = scope.api_key
        identity["apiKeyId"] = None
    context: dict[str, Any] = {
        "resourceId": route.resource_id if route else None,
        "resourcePath": route.resource_path if route else None,
        "httpMethod": scope.method,
        "extendedRequestId": scope.extended_request_id,
        "requestTime": scope.request_time,
        "path": scope.full_path,
        "accountId": account_id,
        "protocol": scope.protocol,
        "stage": scope.stage.name,
        "domainPrefix": scope.domain_name.split(".", 1)[0],
        "requestTimeEpoch": scope.epoch_ms,
        "requestId": scope.request_id,
        "identity": identity,
        "domainName": scope.domain_name,
        "apiId": api_id,
    }
    if with_authorizer and scope.authorizer is not None:
        context["authorizer"] = dict(scope.authorizer)
    return context


def is_binary(content_type: str | None, binary_media_types: tuple[str, ...]) -> bool:
    if not content_type or not binary_media_types:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return any(fnmatch.fnmatchcase(media_type, pattern.lower()) for pattern in binary_media_types)


def encode_body(
    body: bytes, content_type: str | None, binary_media_types: tuple[str, ...]
) -> tuple[str | None, bool]:
    """Event ``body`` and ``isBase64Encoded``: base64 for binary media types and for non-UTF-8 bytes."""
    if not body:
        return None, False
    if not is_binary(content_type, binary_media_types):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass  # AWS would mangle it; base64 keeps the bytes intact
    return base64.b64encode(body).decode("ascii"), True


def proxy_event(
    scope: RequestScope,
    *,
    api_id: str,
    account_id: str,
    body: bytes,
    binary_media_types: tuple[str, ...],
) -> dict[str, Any]:
    text, is_base64 = encode_body(body, scope.header("Content-Type"), binary_media_types)
    return {
        "resource": scope.resource_path,
        "path": scope.path,
        "httpMethod": scope.method,
        "headers": dict(scope.headers) or None,
        "multiValueHeaders": {k: list(v) for k, v in scope.multi_headers.items()} or None,
        "queryStringParameters": dict(scope.query) or None,
        "multiValueQueryStringParameters": {k: list(v) for k, v in scope.multi_query.items()} or None,
        "pathParameters": dict(scope.path_parameters) or None,
        "stageVariables": dict(scope.stage.variables) or None,
        "requestContext": request_context(scope, api_id=api_id, account_id=account_id, with_authorizer=True),
        "body": text,
        "isBase64Encoded": is_base64,
    }


def request_authorizer_event(
    scope: RequestScope, *, arn: str, api_id: str, account_id: str
) -> dict[str, Any]:
    # The authorizer input carries empty maps where the proxy event carries nulls (see AWS's example input).
    return {
        "type": "REQUEST",
        "methodArn": arn,
        "resource": scope.resource_path,
        "path": scope.path,
        "httpMethod": scope.method,
        "headers": dict(scope.headers),
        "multiValueHeaders": {k: list(v) for k, v in scope.multi_headers.items()},
        "queryStringParameters": dict(scope.query),
        "multiValueQueryStringParameters": {k: list(v) for k, v in scope.multi_query.items()},
        "pathParameters": dict(scope.path_parameters),
        "stageVariables": dict(scope.stage.variables),
        "requestContext": request_context(scope, api_id=api_id, account_id=account_id, with_authorizer=False),
    }


def _scalar(value: Any, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedProxyResultError(f"{what} must be a string, number or boolean, got {type(value).__name__}")


def proxy_result_response(
    result: Any,
    *,
    binary_media_types: tuple[str, ...],
    accept: str | None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a Lambda proxy result; MalformedProxyResultError where AWS answers 502."""
    if not isinstance(result, Mapping):
        raise MalformedProxyResultError(f"result must be a JSON object, got {type(result).__name__}")
    unknown = set(result) - _PROXY_RESULT_KEYS
    if unknown:
        raise MalformedProxyResultError(f"unexpected keys {sorted(unknown)}")
    raw_status = result.get("statusCode")
    if isinstance(raw_status, bool) or not isinstance(raw_status, int | str):
        raise MalformedProxyResultError(f"statusCode must be an integer, got {raw_status!r}")
    try:
        status = int(raw_status)
    except ValueError as exc:
        raise MalformedProxyResultError(f"statusCode must be an integer, got {raw_status!r}") from exc
    if not 100 <= status <= 599:
        raise MalformedProxyResultError(f"statusCode {status} is not an HTTP status")

    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, Mapping) or not isinstance(multi, Mapping):
        raise MalformedProxyResultError("headers and multiValueHeaders must be JSON objects")
    headers: list[tuple[str, str]] = []
    multi_names = set()
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResultError(f"multiValueHeaders[{name!r}] must be a list")
        multi_names.add(str(name).lower())
        headers.extend((str(name), _scalar(v, f"multiValueHeaders[{name!r}]")) for v in values)
    # Where both carry a header, AWS keeps only the multiValueHeaders values.
    headers.extend(
        (str(name), _scalar(v, f"headers[{name!r}]"))
        for name, v in single.items()
        if str(name).lower() not in multi_names
    )
    headers = _owned_headers(headers)

    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedProxyResultError(f"body must be a string, got {type(body).__name__}")
    is_base64 = result.get("isBase64Encoded", False)
    if is_base64 is not None and not isinstance(is_base64, bool):
        raise MalformedProxyResultError("isBase64Encoded must be a boolean")
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    payload = (body or "").encode("utf-8")
    content_type = next(value for name, value in headers if name.lower() == "content-type")
    # Binary goes out decoded only when the API declares a matching binary media type; else as base64 text.
    if (
        is_base64
        and body
        and (is_binary(accept, binary_media_types) or is_binary(content_type, binary_media_types))
    ):
        try:
            payload = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedProxyResultError("isBase64Encoded body is not valid base64") from exc
    return status, headers, payload


def _owned_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in _DROPPED_RESPONSE_HEADERS:
            continue
        if lowered in _REMAPPED_RESPONSE_HEADERS:
            name = f"x-amzn-Remapped-{name}"
        out.append((name, value))
    return out
