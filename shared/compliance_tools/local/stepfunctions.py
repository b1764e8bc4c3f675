"""Step Functions executions run by moto's ASL interpreter, with Lambda tasks run in-process.

moto (``stepfunctions.execute_state_machine`` on) interprets the state machine and calls Lambda
through a boto3 client made by ``lambda_eval_utils.boto_client_for`` (both for
``arn:aws:states:::lambda:invoke[.waitForTaskToken]`` and for a bare function ARN as the
``Resource``). We wrap that factory: the Lambda client it returns gets a botocore
``before-call.lambda.Invoke`` handler that answers from the local function registry instead of
sending the request to moto's Lambda (which would need Docker). Tokens of ``.waitForTaskToken``
tasks reach the function in its payload; ``SendTaskSuccess``/``SendTaskFailure`` from the function
go to moto like any other call.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.response import StreamingBody
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

from compliance_tools.local.lambdas import FunctionNotFoundError, InvocationResult

logger = logging.getLogger(__name__)

InvokeResult = Callable[[str, Any], InvocationResult]
InvokeAsync = Callable[[str, Any], Future[InvocationResult]]

_FACTORY = "boto_client_for"  # looked up by name at each call inside lambda_eval_utils
_PARAMS_KEY = "compliance_local_invoke_params"
_lock = threading.Lock()
_original_client_for: Callable[..., Any] | None = None
_invoke: InvokeResult | None = None
_invoke_async: InvokeAsync | None = None


def install(invoke: InvokeResult, invoke_async: InvokeAsync) -> None:
    """Route moto's Step Functions Lambda tasks to ``invoke`` (one runtime per process)."""
    global _original_client_for, _invoke, _invoke_async
    with _lock:
        if _original_client_for is None:
            _original_client_for = getattr(lambda_eval_utils, _FACTORY)
            setattr(lambda_eval_utils, _FACTORY, _client_for)
        _invoke, _invoke_async = invoke, invoke_async


def uninstall() -> None:
    global _original_client_for, _invoke, _invoke_async
    with _lock:
        if _original_client_for is not None:
            setattr(lambda_eval_utils, _FACTORY, _original_client_for)
            _original_client_for = None
        _invoke = _invoke_async = None


def _client_for(region: str, service: str, state_credentials: Any = None) -> Any:
    assert _original_client_for is not None
    client = _original_client_for(region=region, service=service, state_credentials=state_credentials)
    if service == "lambda":
        client.meta.events.register("before-parameter-build.lambda.Invoke", _remember_params)
        client.meta.events.register("before-call.lambda.Invoke", _invoke_in_process)
    return client


def _remember_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # before-call only sees the serialized HTTP request; keep the API parameters for it.
    context[_PARAMS_KEY] = dict(params)


def _invoke_in_process(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    invoke, invoke_async = _invoke, _invoke_async
    params = context.get(_PARAMS_KEY)
    if invoke is None or invoke_async is None or params is None:
        return None  # no local runtime: let the request go to moto
    name = str(params["FunctionName"])
    event = _decode(params.get("Payload"))
    request_id = str(uuid.uuid4())
    try:
        if params.get("InvocationType") == "Event":
            invoke_async(name, event)
            return _response(202, {"StatusCode": 202, "Payload": _body(b"")}, request_id)
        result = invoke(name, event)
    except FunctionNotFoundError as exc:
        error = {"Error": {"Code": "ResourceNotFoundException", "Message": str(exc)}}
        return _response(404, error, request_id)
    body = json.dumps(result.payload).encode()
    parsed: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": _body(body)}
    if not result.ok:
        parsed["FunctionError"] = "Unhandled"
    return _response(200, parsed, request_id)


def _decode(payload: Any) -> Any:
    if payload is None:
        return {}
    if isinstance(payload, bytes | bytearray):
        payload = payload.decode("utf-8")
    if isinstance(payload, str):
        return json.loads(payload) if payload.strip() else {}
    return payload


def _body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def _response(status: int, parsed: dict[str, Any], request_id: str) -> tuple[AWSResponse, dict[str, Any]]:
    headers = HTTPHeaders()
    headers["x-amzn-requestid"] = request_id
    parsed["ResponseMetadata"] = {
        "RequestId": request_id,
        "HTTPStatusCode": status,
        "HTTPHeaders": dict(headers),
        "RetryAttempts": 0,
    }
    return AWSResponse("http://local-runtime/lambda", status, headers, None), parsed
