"""Lambda functions of the template, running in this process.

Each function's handler module is imported from its code asset under a unique module name (several
assets hold an ``api.py``), with ``os.environ`` temporarily set to the process environment plus the
function's own variables: handlers validate their settings at import (``@init_environment``), like a
Lambda cold start. The import happens under a lock and the environment is restored afterwards, so
invocations run concurrently on threads without touching ``os.environ``. Each execution environment
(one import of the module) handles one event at a time, as in Lambda; see ``LocalFunction``.
"""

from __future__ import annotations

import decimal
import importlib
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

logger = logging.getLogger(__name__)

# Serializes every handler import: os.environ and sys.path are process-wide.
_IMPORT_LOCK = threading.Lock()
# Per function; a template's ReservedConcurrentExecutions lowers it.
DEFAULT_MAX_ENVIRONMENTS = 4

LAMBDA_ROOT = "/opt/"


class FunctionNotFoundError(LookupError):
    """No function of the template answers to that logical id, name or ARN."""


class FunctionImportError(Exception):
    """A handler module failed to import (what Lambda reports as Runtime.ImportModuleError)."""


class LambdaFunctionError(Exception):
    """The handler raised: carries the Lambda-style error payload (errorType, errorMessage, ...)."""

    def __init__(self, function: str, payload: dict[str, Any]) -> None:
        super().__init__(f"{function}: {payload.get('errorType')}: {payload.get('errorMessage')}")
        self.function = function
        self.payload = payload

    @property
    def error_type(self) -> str:
        return str(self.payload.get("errorType", "Unhandled"))


@dataclass(frozen=True)
class FunctionSpec:
    """One ``AWS::Lambda::Function`` of the template, resolved to local values."""

    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    code_dir: Path | None
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout_s: int = 3
    memory_mb: int = 128
    layer_dirs: tuple[Path, ...] = ()
    reserved_concurrency: int | None = None

    @property
    def is_python(self) -> bool:
        return self.runtime.startswith("python")


class LambdaContext:
    """The ``context`` argument of a handler, as the Python Lambda runtime builds it."""

    def __init__(self, spec: FunctionSpec, request_id: str, invoked_arn: str | None = None) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = invoked_arn or spec.arn
        self.memory_limit_in_mb = spec.memory_mb
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity: Any = None
        self.client_context: Any = None
        self.tenant_id: str | None = None
        self._deadline = time.monotonic() + spec.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class InvocationResult:
    """A finished invocation: the handler's JSON result, or a Lambda-style error payload."""

    function: str
    request_id: str
    payload: Any
    error: dict[str, Any] | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise LambdaFunctionError(self.function, self.error)
        return self.payload


def map_opt_paths(environment: Mapping[str, str], layer_dirs: Sequence[Path]) -> dict[str, str]:
    """Point ``/opt/...`` values at the layer folders: Lambda extracts every layer into /opt.

    Later layers win, as when Lambda merges them. A path no layer holds is left as it is (logged).
    """
    mapped = dict(environment)
    for name, value in environment.items():
        if not value.startswith(LAMBDA_ROOT):
            continue
        relative = value[len(LAMBDA_ROOT) :]
        for layer_dir in reversed(layer_dirs):
            candidate = layer_dir / relative
            if candidate.exists():
                mapped[name] = str(candidate)
                break
        else:
            logger.warning("%s=%s: no layer holds that path; left unmapped", name, value)
    return mapped


def _json_default(value: Any) -> Any:
    # The Python Lambda runtime serializes Decimal (DynamoDB numbers) too.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _module_token(logical_id: str) -> str:
    return re.sub(r"\W", "_", logical_id)


class LocalFunction:
    """One function: a small pool of execution environments and how to invoke it.

    Like Lambda, an execution environment handles one event at a time (handler modules keep
    per-request state: Powertools' resolvers, pools, caches), so each environment is its own import
    of the handler module, created on demand (a cold start) up to ``max_environments``; an event
    waits for a free environment beyond that, as with reserved concurrency.
    """

    def __init__(self, spec: FunctionSpec, max_environments: int = DEFAULT_MAX_ENVIRONMENTS) -> None:
        self.spec = spec
        self.max_environments = max(1, max_environments)
        self.import_error: str | None = None
        self._idle: list[Callable[[Any, Any], Any]] = []
        self._environments = 0
        self._available = threading.Condition()

    @property
    def loaded(self) -> bool:
        return self._environments > 0

    @property
    def environments(self) -> int:
        return self._environments

    def load(self) -> None:
        """Create the first execution environment (the cold start); raises FunctionImportError."""
        handler = self._import(0)
        with self._available:
            self._environments += 1
            self._idle.append(handler)
        self.import_error = None

    def _import(self, index: int) -> Callable[[Any, Any], Any]:
        """Import the handler module anew, under its own package, with the function's environment."""
        spec = self.spec
        if spec.code_dir is None or not spec.code_dir.is_dir():
            raise FunctionImportError(f"{spec.logical_id}: code folder not found ({spec.code_dir})")
        module_path, _, attribute = spec.handler.rpartition(".")
        if not module_path or not attribute:
            raise FunctionImportError(f"{spec.logical_id}: malformed handler {spec.handler!r}")
        package = f"_local_lambda_{_module_token(spec.logical_id)}_{index}"
        qualified = f"{package}.{module_path.replace('/', '.')}"
        code_dir = str(spec.code_dir)
        with _IMPORT_LOCK:
            saved_path = list(sys.path)
            before = set(sys.modules)
            # Only the function's own variables are swapped in and back: other threads keep seeing
            # the process-wide ones (AWS_ENDPOINT_URL, credentials) at every moment.
            overrides = self.environment()
            saved = {name: os.environ.get(name) for name in overrides}
            os.environ.update(overrides)
            sys.path.insert(0, code_dir)  # /var/task comes first on a Lambda's sys.path
            for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
                del sys.modules[name]  # a previous runtime's copy: import anew with this environment
            try:
                root = types.ModuleType(package)
                root.__path__ = [code_dir]
                root.__package__ = package
                sys.modules[package] = root
                module = importlib.import_module(qualified)
                handler = getattr(module, attribute)
            except Exception as exc:
                self.import_error = f"Unable to import module '{module_path}': {exc}"
                detail = "".join(traceback.format_exception(exc))
                raise FunctionImportError(
                    f"{spec.logical_id} ({spec.handler} in {code_dir}) failed to import:\n{detail}"
                ) from exc
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                sys.path[:] = saved_path
                self._forget_plain_siblings(before, code_dir)
        if not callable(handler):
            raise FunctionImportError(f"{spec.logical_id}: {spec.handler} is not callable")
        return cast(Callable[[Any, Any], Any], handler)

    def _acquire(self) -> Callable[[Any, Any], Any]:
        with self._available:
            while not self._idle and self._environments >= self.max_environments:
                self._available.wait()
            if self._idle:
                return self._idle.pop()
            index = self._environments
            self._environments += 1
        try:
            return self._import(index)
        except BaseException:
            with self._available:
                self._environments -= 1
                self._available.notify()
            raise

    def _release(self, handler: Callable[[Any, Any], Any]) -> None:
        with self._available:
            self._idle.append(handler)
            self._available.notify()

    def environment(self) -> dict[str, str]:
        spec = self.spec
        return {
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            **spec.environment,
        }

    @staticmethod
    def _forget_plain_siblings(before: set[str], code_dir: str) -> None:
        # A sibling imported by plain name ("import schemas") must not shadow another asset's
        # module of the same name; the handler module keeps its own reference to it.
        for name in set(sys.modules) - before:
            if name.startswith("_local_lambda_"):
                continue
            module_file = getattr(sys.modules.get(name), "__file__", None)
            if module_file and Path(module_file).resolve().is_relative_to(Path(code_dir).resolve()):
                del sys.modules[name]

    def invoke(self, event: Any, *, invoked_arn: str | None = None) -> InvocationResult:
        spec = self.spec
        request_id = str(uuid.uuid4())
        if not self.loaded:
            not_loaded: dict[str, Any] = {
                "errorType": "Runtime.ImportModuleError",
                "errorMessage": self.import_error or f"{spec.logical_id} is not loaded",
                "requestId": request_id,
            }
            return InvocationResult(spec.logical_id, request_id, not_loaded, not_loaded, 0.0)
        # Lambda hands the handler a fresh JSON document: no object is shared with the caller.
        event = json.loads(json.dumps(event, default=_json_default))
        context = LambdaContext(spec, request_id, invoked_arn)
        started = time.perf_counter()
        error: dict[str, Any] | None = None
        try:
            handler = self._acquire()
        except FunctionImportError as exc:
            failed: dict[str, Any] = {
                "errorType": "Runtime.ImportModuleError",
                "errorMessage": str(exc),
                "requestId": request_id,
            }
            return InvocationResult(spec.logical_id, request_id, failed, failed, 0.0)
        try:
            result = handler(event, context)
            try:
                payload = json.loads(json.dumps(result, default=_json_default))
            except (TypeError, ValueError) as exc:
                error = {
                    "errorType": "Runtime.MarshalError",
                    "errorMessage": f"Unable to marshal response: {exc}",
                }
        except Exception as exc:
            logger.exception("%s raised (request %s)", spec.logical_id, request_id)
            error = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "requestId": request_id,
                # Without this module's own frame, as Lambda shows only the handler's.
                "stackTrace": traceback.format_tb(exc.__traceback__.tb_next if exc.__traceback__ else None),
            }
        finally:
            self._release(handler)
        duration_ms = (time.perf_counter() - started) * 1000
        if duration_ms > spec.timeout_s * 1000:
            logger.warning(
                "%s took %.0f ms, over its %d s timeout: Lambda would have stopped it",
                spec.logical_id,
                duration_ms,
                spec.timeout_s,
            )
        if error is not None:
            return InvocationResult(spec.logical_id, request_id, error, error, duration_ms)
        return InvocationResult(spec.logical_id, request_id, payload, None, duration_ms)


class FunctionRegistry:
    """Every function of the template, addressable by logical id, function name or ARN."""

    def __init__(self, async_workers: int = 4) -> None:
        self._functions: dict[str, LocalFunction] = {}
        self._by_name: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self._executor = ThreadPoolExecutor(max_workers=async_workers, thread_name_prefix="lambda-async")

    def add(self, spec: FunctionSpec) -> None:
        if not spec.is_python:
            # e.g. the CDK's own Node.js custom-resource providers: nothing of ours runs there.
            self.skipped[spec.logical_id] = f"runtime {spec.runtime} is not run locally"
            logger.info("skipping %s: runtime %s is not run locally", spec.logical_id, spec.runtime)
            return
        environments = DEFAULT_MAX_ENVIRONMENTS
        if spec.reserved_concurrency is not None:
            environments = min(environments, spec.reserved_concurrency)
        self._functions[spec.logical_id] = LocalFunction(spec, environments)
        self._by_name[spec.name] = spec.logical_id

    def load_all(self, *, strict: bool = True) -> None:
        """Import every handler. ``strict`` raises on the first import error; otherwise invoking a
        broken function answers Runtime.ImportModuleError, as in Lambda."""
        failures: list[str] = []
        for function in self._functions.values():
            if function.loaded:
                continue
            try:
                function.load()
                logger.info("loaded %s (%s)", function.spec.logical_id, function.spec.handler)
            except FunctionImportError as exc:
                logger.error("%s", exc)
                failures.append(str(exc))
        if failures and strict:
            raise FunctionImportError("\n\n".join(failures))

    def __iter__(self) -> Iterator[LocalFunction]:
        return iter(self._functions.values())

    def __len__(self) -> int:
        return len(self._functions)

    def __contains__(self, name: object) -> bool:
        try:
            self.get(str(name))
        except FunctionNotFoundError:
            return False
        return True

    @property
    def logical_ids(self) -> list[str]:
        return list(self._functions)

    def get(self, name: str) -> LocalFunction:
        """By logical id, function name, ``name:qualifier``, ARN, or a unique logical-id prefix."""
        if name in self._functions:
            return self._functions[name]
        candidate = name
        if candidate.startswith("arn:"):
            # arn:aws:lambda:region:account:function:name[:qualifier]
            parts = candidate.split(":")
            candidate = parts[6] if len(parts) > 6 else candidate
        elif ":function:" in candidate:
            candidate = candidate.split(":function:", 1)[1]
        candidate = candidate.split(":", 1)[0]
        if candidate in self._by_name:
            return self._functions[self._by_name[candidate]]
        if candidate in self._functions:
            return self._functions[candidate]
        # A unique logical-id prefix (``IngestApiFunction``): CDK appends a hash to every logical id.
        prefixed = [lid for lid in self._functions if lid.startswith(candidate)]
        if len(prefixed) == 1:
            return self._functions[prefixed[0]]
        skipped = self.skipped.get(candidate)
        raise FunctionNotFoundError(f"{name}: {skipped}" if skipped else f"no local function {name!r}")

    def invoke_result(self, name: str, event: Any) -> InvocationResult:
        function = self.get(name)
        invoked_arn = name if name.startswith("arn:") else None
        return function.invoke(event, invoked_arn=invoked_arn)

    def invoke(self, name: str, event: Any) -> Any:
        """Invoke synchronously: the handler's result, or :class:`LambdaFunctionError`."""
        return self.invoke_result(name, event).unwrap()

    def invoke_async(self, name: str, event: Any) -> Future[InvocationResult]:
        """Like InvocationType=Event: runs on a worker thread; errors are logged by the invocation."""
        function = self.get(name)
        return self._executor.submit(function.invoke, event)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
