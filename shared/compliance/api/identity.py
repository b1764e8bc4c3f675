"""The caller, as the REQUEST authorizer resolved it into the request context."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.errors import ForbiddenError, UnauthenticatedError
from compliance.models.auth import Principal, Role

if TYPE_CHECKING:
    # Annotation only: the authorizer imports this module and has no use for the resolver (~100 ms).
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

ROLES_SEPARATOR = ","


def principal_context(principal: Principal) -> dict[str, str]:
    """What the authorizer puts in its context (API Gateway only passes flat string values)."""
    return {
        "org_id": str(principal.org_id),
        "key_id": str(principal.key_id),
        "roles": ROLES_SEPARATOR.join(sorted(role.value for role in principal.roles)),
    }


def principal_from_context(authorizer: dict[str, Any] | None) -> Principal:
    if not authorizer or "org_id" not in authorizer:
        # A route without the authorizer is a wiring bug; refuse rather than serve anonymously.
        raise UnauthenticatedError("no authenticated principal")
    try:
        roles = frozenset(Role(r) for r in str(authorizer.get("roles", "")).split(ROLES_SEPARATOR) if r)
        return Principal(org_id=UUID(authorizer["org_id"]), key_id=UUID(authorizer["key_id"]), roles=roles)
    except (KeyError, ValueError) as exc:
        raise UnauthenticatedError("malformed authorizer context") from exc


def require(app: APIGatewayRestResolver, allowed: Iterable[Role]) -> Callable[[], Principal]:
    """A dependency (``Depends``) yielding the caller if it holds one of ``allowed`` roles, else 403."""
    allowed_roles = frozenset(allowed)

    def dependency() -> Principal:
        principal = principal_from_context(app.current_event.request_context.authorizer.raw_event)
        if not principal.roles & allowed_roles:
            raise ForbiddenError("this API key lacks a role allowed on this route")
        return principal

    return dependency
