"""RFC 9457 problem details: the one place where domain errors become HTTP responses."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from compliance.errors import DomainError
from compliance.observability import logger, metrics

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.compliance.invalid/problems/"

# A list that exceeds its limit means the request is too large, not malformed (413, not 400).
_TOO_LARGE_FIELDS = {("body", "records"), ("body", "texts")}


def problem(
    status: int, title: str, detail: str, *, request_id: str | None = None, **extra: Any
) -> Response[str]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["instance"] = f"urn:request:{request_id}"
    # The members RFC 9457 defines are ours: an error's extras add to them, never replace them.
    body.update({key: value for key, value in extra.items() if value is not None and key not in body})
    return Response(status_code=status, content_type=PROBLEM_JSON, body=json.dumps(body, default=str))


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Say which field failed and why, never echoing the input (it may hold personal data)."""
    out = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        out.append(
            {
                "field": ".".join(loc) or "body",
                "type": str(err.get("type", "")),
                "message": str(err.get("msg", "")),
            }
        )
    return out


def _is_too_large(errors: Sequence[Mapping[str, Any]]) -> bool:
    return any(
        err.get("type") == "too_long" and tuple(err.get("loc", ()))[:2] in _TOO_LARGE_FIELDS for err in errors
    )


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Map request validation and typed domain errors to problem+json, once for every API function."""

    def request_id() -> str | None:
        return app.current_event.request_context.request_id

    def _invalid_request(exc: RequestValidationError) -> Response[str]:
        errors = list(exc.errors())
        too_large = _is_too_large(errors)
        metrics.add_metric(name="RequestTooLarge" if too_large else "RequestInvalid", unit="Count", value=1)
        if too_large:
            return problem(413, "Payload too large", "too many items in the request", request_id=request_id())
        return problem(
            400,
            "Invalid request",
            "the request body or parameters are invalid",
            request_id=request_id(),
            errors=field_errors(errors),
        )

    def _domain_error(exc: DomainError) -> Response[str]:
        if exc.status >= 500:
            logger.error("domain error", extra={"error_type": type(exc).__name__, "detail": exc.detail})
        # An error's own "request_id" (a DSR's) is not the API request's: it travels as dsr_request_id.
        extra = {("dsr_request_id" if k == "request_id" else k): v for k, v in exc.extra.items()}
        return problem(exc.status, exc.title, exc.detail, request_id=request_id(), **extra)

    def _not_found(_: Exception) -> Response[str]:
        return problem(404, "Not found", "no such resource", request_id=request_id())

    # Registered by call, not as decorators: Powertools' exception_handler/not_found are unannotated,
    # so decorating would erase the handlers' types under mypy strict.
    app.exception_handler(RequestValidationError)(_invalid_request)
    app.exception_handler(DomainError)(_domain_error)
    app.not_found(_not_found)
