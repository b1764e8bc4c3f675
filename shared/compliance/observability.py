"""The one place that creates the Powertools Logger, Tracer and Metrics.

Every module logs, traces and emits metrics through these instances, so service name, namespace and log
format are set once. The Tracer is created on first use: the X-Ray SDK pulls in botocore at import
(~250 ms on two cores), and a handler module's import is the part of every cold start we control.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = "compliance"
METRICS_NAMESPACE = "ComplianceControlPlane"

F = TypeVar("F", bound=Callable[..., Any])


class LazyTracer:
    """A Powertools Tracer built at the first invocation instead of at import."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._tracer: Tracer | None = None
        self._lock = threading.Lock()

    @property
    def real(self) -> Tracer:
        if self._tracer is None:
            with self._lock:
                if self._tracer is None:
                    from aws_lambda_powertools import Tracer

                    self._tracer = Tracer(service=self._service)
        return self._tracer

    def capture_lambda_handler(self, handler: F) -> F:
        wrapped: list[Callable[..., Any]] = []

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            if not wrapped:
                wrapped.append(self.real.capture_lambda_handler(handler))
            return wrapped[0](event, context)

        return wrapper  # type: ignore[return-value]

    def put_annotation(self, key: str, value: str | int | float | bool) -> None:
        # Powertools annotates value as numbers.Number, which int and float do not satisfy statically.
        self.real.put_annotation(key=key, value=value)  # type: ignore[arg-type]

    def put_metadata(self, key: str, value: Any) -> None:
        self.real.put_metadata(key=key, value=value)


# Explicit names (not only POWERTOOLS_* variables) so tests and tools emit the same shape as Lambda.
logger = Logger(service=SERVICE)
tracer = LazyTracer(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)

__all__ = ["logger", "metrics", "tracer"]
