"""The DSR state machine behind a small interface: start, resume after verification, stop.

Every request runs as one Step Functions execution named by the request id, so starting twice is
idempotent (``ExecutionAlreadyExists`` answers with the same execution's ARN) and the console finds
a request by its id. boto3 is imported on first use: the DSR handler imports this module at cold
start. Failures leave as :class:`WorkflowUnavailableError` (503) with the AWS error code only: the
service's message can quote the input.
"""

from __future__ import annotations

import json
from typing import Any, Final, Protocol
from uuid import UUID

from compliance.errors import DomainError

#: A stop's cause is shown in the console and kept with the execution: a fixed phrase, no input.
MAX_CAUSE_CHARS: Final = 256
_ALREADY_EXISTS: Final = "ExecutionAlreadyExists"
# StopExecution on an execution that already ended is no error in the API; these codes say the
# execution is not running any more (or never was), which is what a stop wants.
_ALREADY_STOPPED: Final = frozenset({"ExecutionDoesNotExist", "ExecutionNotRunning"})
# A task that timed out or whose execution ended no longer waits: failing it is already done.
_TASK_GONE: Final = frozenset({"TaskTimedOut", "TaskDoesNotExist"})


class WorkflowUnavailableError(DomainError):
    """Step Functions refused or failed the call."""

    status = 503
    title = "Workflow unavailable"


class DsrWorkflow(Protocol):
    def start(self, request_id: UUID, payload: dict[str, Any]) -> str:
        """Start the request's execution (name = ``str(request_id)``); its ARN. Idempotent."""
        ...

    def resume(self, task_token: str, output: dict[str, Any]) -> None:
        """Complete the task waiting on ``task_token`` (SendTaskSuccess) with ``output``."""
        ...

    def stop(self, execution_arn: str, cause: str) -> None:
        """Stop the execution; one that has already ended is left as it is."""
        ...


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN of the execution ``name`` of a standard state machine (what StartExecution returns)."""
    prefix, marker, machine = state_machine_arn.partition(":stateMachine:")
    if not marker or not machine:
        raise ValueError("not a state machine ARN")
    return f"{prefix}:execution:{machine}:{name}"


class StepFunctionsWorkflow:
    """:class:`DsrWorkflow` on one state machine; ``client`` is a boto3 ``stepfunctions`` client
    (the process's shared one by default, created on first use)."""

    def __init__(self, state_machine_arn: str, client: Any = None) -> None:
        self._arn = state_machine_arn
        self._client = client

    def __repr__(self) -> str:
        return f"StepFunctionsWorkflow({self._arn!r})"

    def _sfn(self) -> Any:
        if self._client is None:
            from compliance.aws.clients import client

            self._client = client("stepfunctions")
        return self._client

    def start(self, request_id: UUID, payload: dict[str, Any]) -> str:
        from compliance.aws.clients import error_code

        name = str(request_id)
        try:
            response = self._sfn().start_execution(
                stateMachineArn=self._arn, name=name, input=json.dumps(payload, sort_keys=True)
            )
        except Exception as exc:
            code = error_code(exc)
            if code == _ALREADY_EXISTS:
                return execution_arn(self._arn, name)
            raise WorkflowUnavailableError(f"the workflow could not start ({code})", error=code) from exc
        return str(response["executionArn"])

    def resume(self, task_token: str, output: dict[str, Any]) -> None:
        from compliance.aws.clients import error_code

        try:
            self._sfn().send_task_success(taskToken=task_token, output=json.dumps(output, sort_keys=True))
        except Exception as exc:
            code = error_code(exc)
            raise WorkflowUnavailableError(f"the workflow could not resume ({code})", error=code) from exc

    def fail_task(self, task_token: str, error: str, cause: str) -> None:
        """Fail the task waiting on ``task_token`` (SendTaskFailure), e.g. an expired verification;
        a task that no longer waits is left as it is. ``error`` and ``cause``: fixed codes."""
        from compliance.aws.clients import error_code

        try:
            self._sfn().send_task_failure(
                taskToken=task_token, error=error[:256], cause=cause[:MAX_CAUSE_CHARS]
            )
        except Exception as exc:
            code = error_code(exc)
            if code in _TASK_GONE:
                return
            raise WorkflowUnavailableError(
                f"the workflow could not fail the task ({code})", error=code
            ) from exc

    def stop(self, execution_arn: str, cause: str) -> None:
        from compliance.aws.clients import error_code

        try:
            self._sfn().stop_execution(executionArn=execution_arn, cause=cause[:MAX_CAUSE_CHARS])
        except Exception as exc:
            code = error_code(exc)
            if code in _ALREADY_STOPPED:
                return
            raise WorkflowUnavailableError(f"the workflow could not stop ({code})", error=code) from exc
