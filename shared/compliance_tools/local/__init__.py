"""The local runtime: the synthesized CloudFormation template booted on this machine.

Embedded PostgreSQL + an in-process moto server + every Lambda of the template run in-process,
with SQS pollers, an EventBridge scheduler, Step Functions executions and the API Gateway emulator.
Names are imported lazily: ``compliance local trigger`` needs only the state file client.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LocalRuntime": "compliance_tools.local.runtime",
    "RuntimeStartError": "compliance_tools.local.runtime",
    "LambdaFunctionError": "compliance_tools.local.lambdas",
    "InvocationResult": "compliance_tools.local.lambdas",
    "FunctionNotFoundError": "compliance_tools.local.lambdas",
    "FunctionImportError": "compliance_tools.local.lambdas",
    "CloudTemplate": "compliance_tools.local.template",
    "load_template": "compliance_tools.local.template",
    "synthesize": "compliance_tools.local.template",
    "RuntimeState": "compliance_tools.local.state",
    "RuntimeNotRunningError": "compliance_tools.local.state",
    "read_state": "compliance_tools.local.state",
    "fire_rule": "compliance_tools.local.state",
    "invoke_function": "compliance_tools.local.state",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
