"""Typed domain errors. API handlers map them to problem+json in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the library raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ValidationFailedError(DomainError):
    status = 400
    title = "Invalid request"


class PayloadTooLargeError(DomainError):
    status = 413
    title = "Payload too large"


class UnauthenticatedError(DomainError):
    status = 401
    title = "Unauthorized"


class ForbiddenError(DomainError):
    status = 403
    title = "Forbidden"


class NotFoundError(DomainError):
    status = 404
    title = "Not found"


class ConflictError(DomainError):
    status = 409
    title = "Conflict"


class ConfigurationError(DomainError):
    """The function's environment does not satisfy its settings model (fails the cold start)."""

    status = 500
    title = "Misconfigured function"


class DataAccessError(DomainError):
    """A database driver error, re-raised by the data-access layer (``raise ... from exc``)."""

    status = 503
    title = "Database unavailable"


class QueueError(DomainError):
    """SQS refused or failed to take messages."""

    status = 503
    title = "Queue unavailable"


class AuditUnavailableError(DomainError):
    """The audit trail could not take an event: the action it records is refused (fail closed)."""

    status = 503
    title = "Audit trail unavailable"


class IntegrityError(DomainError):
    """Stored audit data or a checkpoint failed verification (tampering or corruption)."""

    status = 500
    title = "Integrity check failed"
