"""In-memory stand-ins for the DSR service's collaborators (no network, no AWS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from compliance.aws.workflow import WorkflowUnavailableError

STATE_MACHINE = "arn:aws:states:us-east-1:000000000000:stateMachine:dsr"


@dataclass
class MemoryWorkflow:
    """:class:`compliance.aws.workflow.DsrWorkflow` that records its calls; ``fail`` makes every
    call raise the 503 the real client raises when Step Functions is unavailable."""

    fail: bool = False
    started: list[tuple[UUID, dict[str, Any]]] = field(default_factory=list)
    resumed: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    failed_tasks: list[tuple[str, str, str]] = field(default_factory=list)

    def _check(self) -> None:
        if self.fail:
            raise WorkflowUnavailableError("the workflow is unavailable (ServiceUnavailable)")

    def start(self, request_id: UUID, payload: dict[str, Any]) -> str:
        self._check()
        self.started.append((request_id, payload))
        return f"arn:aws:states:us-east-1:000000000000:execution:dsr:{request_id}"

    def resume(self, task_token: str, output: dict[str, Any]) -> None:
        self._check()
        self.resumed.append((task_token, output))

    def stop(self, execution_arn: str, cause: str) -> None:
        self._check()
        self.stopped.append((execution_arn, cause))

    def fail_task(self, task_token: str, error: str, cause: str) -> None:
        self._check()
        self.failed_tasks.append((task_token, error, cause))
