"""Lambda authorizers as API Gateway runs them: identity sources, result cache, IAM policy evaluation."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from compliance_tools.local.apigw_events import RequestScope

# The error message an authorizer raises (or a Node callback passes) to ask for a 401.
UNAUTHORIZED_MESSAGE = "Unauthorized"
_CACHE_LIMIT = 10_000


class MalformedAuthorizerResultError(ValueError):
    """The authorizer answered something API Gateway rejects (it then answers 500)."""


@dataclass(frozen=True)
class Statement:
    allow: bool
    actions: tuple[re.Pattern[str], ...]
    resources: tuple[re.Pattern[str], ...]

    def applies(self, method_arn: str) -> bool:
        return any(p.fullmatch("execute-api:Invoke") for p in self.actions) and any(
            p.fullmatch(method_arn) for p in self.resources
        )


@dataclass(frozen=True)
class AuthorizerDecision:
    """What API Gateway keeps (and caches) of an authorizer's answer."""

    principal_id: str
    statements: tuple[Statement, ...]
    context: Mapping[str, str]
    latency_ms: int

    def verdict(self, method_arn: str) -> str:
        """``allow``, ``explicit-deny`` or ``implicit-deny`` for this method ARN (Deny wins, as in IAM)."""
        applicable = [s for s in self.statements if s.applies(method_arn)]
        if any(not s.allow for s in applicable):
            return "explicit-deny"
        return "allow" if applicable else "implicit-deny"

    def request_context(self, *, cached: bool) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.context)
        out["principalId"] = self.principal_id
        out["integrationLatency"] = 0 if cached else self.latency_ms
        return out


def wildcard(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM-style pattern: ``*`` any run of characters, ``?`` any one character."""
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


def _as_list(value: Any, what: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    raise MalformedAuthorizerResultError(f"{what} must be a string or a list of strings")


def _stringify(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    # AWS rejects objects and arrays in the context map.
    raise MalformedAuthorizerResultError(f"context[{key!r}] must be a string, number or boolean")


def parse_decision(result: Any, latency_ms: int) -> AuthorizerDecision:
    if isinstance(result, str | bytes):
        try:
            result = json.loads(result)
        except ValueError as exc:
            raise MalformedAuthorizerResultError("result is not JSON") from exc
    if not isinstance(result, Mapping):
        raise MalformedAuthorizerResultError("result must be a JSON object")
    principal = result.get("principalId")
    if principal is None or isinstance(principal, Mapping | list):
        raise MalformedAuthorizerResultError("principalId is missing")
    document = result.get("policyDocument")
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise MalformedAuthorizerResultError("policyDocument is not JSON") from exc
    if not isinstance(document, Mapping):
        raise MalformedAuthorizerResultError("policyDocument is missing")
    raw_statements = document.get("Statement")
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list):
        raise MalformedAuthorizerResultError("policyDocument.Statement is missing")
    statements = []
    for raw in raw_statements:
        if not isinstance(raw, Mapping):
            raise MalformedAuthorizerResultError("each Statement must be an object")
        effect = str(raw.get("Effect", ""))
        if effect not in {"Allow", "Deny"}:
            raise MalformedAuthorizerResultError(f"Effect must be Allow or Deny, got {effect!r}")
        statements.append(
            Statement(
                allow=effect == "Allow",
                actions=tuple(wildcard(a, ignore_case=True) for a in _as_list(raw.get("Action"), "Action")),
                resources=tuple(wildcard(r) for r in _as_list(raw.get("Resource"), "Resource")),
            )
        )
    raw_context = result.get("context") or {}
    if not isinstance(raw_context, Mapping):
        raise MalformedAuthorizerResultError("context must be an object")
    context = {str(k): s for k, v in raw_context.items() if (s := _stringify(str(k), v)) is not None}
    return AuthorizerDecision(str(principal), tuple(statements), context, latency_ms)


def identity_value(
    source: str, scope: RequestScope, context_values: Callable[[], Mapping[str, Any]]
) -> str | None:
    """The request's value for one identity source expression (None when absent)."""
    prefixes: tuple[tuple[str, Callable[[str], str | None]], ...] = (
        ("method.request.header.", scope.header),
        ("method.request.multivalueheader.", lambda n: ",".join(scope.multi_header(n) or []) or None),
        ("method.request.querystring.", scope.query.get),
        ("method.request.multivaluequerystring.", lambda n: ",".join(scope.multi_query.get(n) or []) or None),
        ("stageVariables.", scope.stage.variables.get),
    )
    for prefix, lookup in prefixes:
        if source.startswith(prefix):
            return lookup(source[len(prefix) :])
    if source.startswith("context."):
        value = context_values().get(source)
        return None if value is None else str(value)
    return None


class AuthorizerCache:
    """Decisions per (authorizer, identity values) for the authorizer's TTL; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, tuple[str, ...]], tuple[float, AuthorizerDecision]] = {}

    def get(self, key: tuple[str, tuple[str, ...]]) -> AuthorizerDecision | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: tuple[str, tuple[str, ...]], decision: AuthorizerDecision, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= _CACHE_LIMIT:
                now = self._clock()
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            self._entries[key] = (self._clock() + ttl_seconds, decision)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
