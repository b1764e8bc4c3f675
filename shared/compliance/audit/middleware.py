"""One ``api.request`` audit event for every call an API function answers, or no answer (503).

Where the response is known depends on how Powertools ends the call:

- A route that returns, or raises (domain error, 401/403 from a ``Depends`` dependency, a
  response-validation error): this middleware sees it. It turns an exception into the response
  itself, with the handler the app registered for it (``register_error_handlers``), so the status it
  records is the status the client gets. An exception nobody handles is recorded as a 500, then
  re-raised as before.
- A request that fails request validation (400/413) or has an unsupported content type (415):
  Powertools validates requests in a middleware that runs *before* every user middleware, and its
  error never reaches this one. Those are recorded by the exception handlers wrapped here.
- No route matched: the not-found handler marks the call, so the event names no raw path (it may
  carry personal data) but the unmatched route ``*``.

Fail closed: if the sink refuses the event, the response becomes the 503 problem of
:class:`AuditUnavailableError`, for reads too (an action never happens unrecorded; a read's data is
then not disclosed). Calls that already changed state before that point (a created key, a queued
batch) are recorded by their own domain events or are idempotent on retry; see the callers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from compliance.api.identity import principal_from_context
from compliance.errors import AuditUnavailableError, UnauthenticatedError
from compliance.models.auth import Principal

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
    from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

    from compliance.audit.sink import AuditSink

SinkProvider = Callable[[], "AuditSink"]

# Per-call flags in app.context (Powertools clears it after every call).
_RECORDED = "audit_recorded"
_UNMATCHED = "audit_unmatched_route"


def caller(authorizer: dict[str, Any] | None) -> Principal | None:
    """The authenticated caller, or None (recorded as anonymous, in the system organisation)."""
    try:
        return principal_from_context(authorizer)
    except UnauthenticatedError:
        return None


def register_audit_middleware(app: APIGatewayRestResolver, sink_provider: SinkProvider) -> None:
    """Audit every call of ``app``. Call after ``register_error_handlers(app)``: it wraps them."""
    from aws_lambda_powertools.event_handler.depends import DependencyResolutionError
    from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFound
    from aws_lambda_powertools.event_handler.openapi.exceptions import (
        RequestUnsupportedContentType,
        RequestValidationError,
    )

    from compliance.api.problems import problem

    manager = app.exception_handler_manager
    invalid_request = manager.lookup_exception_handler(RequestValidationError)
    route_not_found = manager.lookup_exception_handler(RouteNotFound)
    refuse = manager.lookup_exception_handler(AuditUnavailableError)
    if invalid_request is None or route_not_found is None or refuse is None:
        raise RuntimeError("register_error_handlers(app) must run before register_audit_middleware(app)")

    def record(status: int) -> None:
        """Publish this call's event once; raises AuditUnavailableError if the sink refuses it."""
        if app.context.get(_RECORDED):
            return
        app.context[_RECORDED] = True
        # On the first call, not at import: the event models are ~20 ms of every cold start.
        from compliance.audit import emit

        event = app.current_event
        route = None if app.context.get(_UNMATCHED) else app.request.route
        audit_event = emit.api_request(
            principal=caller(event.request_context.authorizer.raw_event),
            method=event.http_method,
            route=route,
            status=status,
            origin=emit.RequestOrigin.from_event(event.raw_event),
            occurred_at=datetime.now(UTC),
        )
        emit.publish(sink_provider(), [audit_event])

    def recorded(response: Response[Any]) -> Response[Any]:
        """For responses made outside the middleware: record, or answer 503 instead."""
        try:
            record(response.status_code)
        except AuditUnavailableError as exc:
            return _response(refuse(exc))
        return response

    def handled(exc: Exception) -> Response[Any] | None:
        """The response the app's exception handlers make of ``exc`` (as Powertools would), or None."""
        if (
            isinstance(exc, DependencyResolutionError)
            and isinstance(exc.__cause__, Exception)
            and DependencyResolutionError not in manager.get_registered_handlers()
        ):
            exc = exc.__cause__
        handler = manager.lookup_exception_handler(type(exc))
        return None if handler is None else _response(handler(exc))

    def audit_middleware(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
        try:
            response = next_middleware(app)
        except Exception as exc:
            error_response = handled(exc)
            if error_response is None:
                record(500)  # an unhandled error still leaves a trace, then fails as before
                raise
            response = error_response
        record(response.status_code)  # AuditUnavailableError -> the app's 503 problem
        return response

    def invalid_request_recorded(exc: RequestValidationError) -> Response[Any]:
        return recorded(_response(invalid_request(exc)))

    def unsupported_content_type(_: RequestUnsupportedContentType) -> Response[Any]:
        return recorded(problem(415, "Unsupported media type", "the request body must be application/json"))

    def route_not_found_marked(exc: Exception) -> Response[Any]:
        app.context[_UNMATCHED] = True  # the middleware records it, without the raw path
        return _response(route_not_found(exc))

    app.use([audit_middleware])
    # Registered by call, not as decorators (see register_error_handlers: keeps the types under mypy).
    app.exception_handler(RequestValidationError)(invalid_request_recorded)
    app.exception_handler(RequestUnsupportedContentType)(unsupported_content_type)
    app.not_found(route_not_found_marked)


def _response(value: object) -> Response[Any]:
    from aws_lambda_powertools.event_handler import Response

    if not isinstance(value, Response):  # pragma: no cover - every registered handler returns one
        raise TypeError(f"exception handler returned {type(value).__name__}, not a Response")
    return value
