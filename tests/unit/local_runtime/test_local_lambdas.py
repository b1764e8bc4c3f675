"""In-process Lambda functions: import with the function's environment, isolation, invocation."""

from __future__ import annotations

import os
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest

from compliance_tools.local.lambdas import (
    FunctionImportError,
    FunctionNotFoundError,
    FunctionRegistry,
    FunctionSpec,
    LambdaContext,
    LambdaFunctionError,
    map_opt_paths,
)

HANDLER = """
    import os

    import helper

    NAME = os.environ["WHO"]


    def handler(event, context):
        if event.get("fail"):
            raise KeyError("missing")
        if event.get("decimal"):
            return {"n": __import__("decimal").Decimal("1.5"), "i": __import__("decimal").Decimal("2")}
        if event.get("unserializable"):
            return {"x": object()}
        return {"who": NAME, "helper": helper.VALUE, "event": event, "arn": context.invoked_function_arn}
"""


def asset(root: Path, name: str, who_helper: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "api.py").write_text(textwrap.dedent(HANDLER))
    (folder / "helper.py").write_text(f"VALUE = {who_helper!r}\n")
    return folder


def spec(logical_id: str, code_dir: Path | None, who: str, runtime: str = "python3.13") -> FunctionSpec:
    name = f"stack-{logical_id.lower()}"
    return FunctionSpec(
        logical_id=logical_id,
        name=name,
        arn=f"arn:aws:lambda:eu-west-1:123456789012:function:{name}",
        handler="api.handler",
        runtime=runtime,
        code_dir=code_dir,
        environment={"WHO": who},
        timeout_s=10,
    )


@pytest.fixture
def registry(tmp_path: Path) -> FunctionRegistry:
    registry = FunctionRegistry()
    registry.add(spec("First", asset(tmp_path, "first", "helper-1"), "first"))
    registry.add(spec("Second", asset(tmp_path, "second", "helper-2"), "second"))
    registry.add(spec("Node", tmp_path, "node", runtime="nodejs22.x"))
    registry.load_all()
    yield registry
    registry.close()


def test_same_named_modules_of_different_assets_stay_apart(registry: FunctionRegistry) -> None:
    # Given two assets that both hold api.py and helper.py, loaded into one interpreter
    first = registry.invoke("First", {})
    second = registry.invoke("Second", {})
    # Then each function runs its own module, sibling and environment
    assert (first["who"], first["helper"]) == ("first", "helper-1")
    assert (second["who"], second["helper"]) == ("second", "helper-2")
    # And the environment used at import was restored
    assert "WHO" not in os.environ


def test_functions_are_found_by_logical_id_name_and_arns(registry: FunctionRegistry) -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:stack-first"
    assert registry.get("stack-first") is registry.get("First")
    assert registry.get(arn) is registry.get("First")
    assert registry.get(f"{arn}:1") is registry.get("First")
    assert registry.get("123456789012:function:stack-first") is registry.get("First")
    assert registry.invoke(f"{arn}:live", {})["arn"] == f"{arn}:live"
    assert "stack-second" in registry
    with pytest.raises(FunctionNotFoundError):
        registry.get("stack-third")


def test_non_python_runtimes_are_skipped_with_a_reason(registry: FunctionRegistry) -> None:
    assert registry.skipped == {"Node": "runtime nodejs22.x is not run locally"}
    with pytest.raises(FunctionNotFoundError, match="nodejs22"):
        registry.get("Node")


def test_handler_errors_are_lambda_style(registry: FunctionRegistry) -> None:
    result = registry.invoke_result("First", {"fail": True})
    assert result.error is not None
    assert result.error["errorType"] == "KeyError"
    assert result.error["errorMessage"] == "'missing'"
    assert any("api.py" in frame for frame in result.error["stackTrace"])
    with pytest.raises(LambdaFunctionError) as raised:
        registry.invoke("First", {"fail": True})
    assert raised.value.error_type == "KeyError"


def test_results_are_json_like_lambda_returns_them(registry: FunctionRegistry) -> None:
    assert registry.invoke("First", {"decimal": True}) == {"n": 1.5, "i": 2}
    result = registry.invoke_result("First", {"unserializable": True})
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.MarshalError"


def test_events_are_copied_not_shared(registry: FunctionRegistry) -> None:
    event = {"nested": {"value": 1}}
    returned = registry.invoke("First", event)
    assert returned["event"] == event
    assert returned["event"] is not event


def test_invoke_async_runs_on_a_worker(registry: FunctionRegistry) -> None:
    future = registry.invoke_async("Second", {"async": True})
    assert future.result(timeout=10).payload["who"] == "second"


def test_import_errors_are_collected_and_raised_in_strict_mode(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "api.py").write_text("raise RuntimeError('bad settings at import')\n")
    registry = FunctionRegistry()
    registry.add(spec("Broken", folder, "x"))
    with pytest.raises(FunctionImportError, match="bad settings at import"):
        registry.load_all(strict=True)
    # Non-strict: the function answers like Lambda does for an import error
    registry.load_all(strict=False)
    result = registry.invoke_result("Broken", {})
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
    assert "bad settings at import" in result.error["errorMessage"]
    registry.close()


def test_missing_code_folder_is_an_import_error(tmp_path: Path) -> None:
    registry = FunctionRegistry()
    registry.add(spec("Ghost", tmp_path / "nowhere", "x"))
    with pytest.raises(FunctionImportError, match="code folder not found"):
        registry.load_all()
    registry.close()


def test_context_counts_down_from_the_timeout() -> None:
    context = LambdaContext(spec("First", None, "x"), "req-1")
    remaining = context.get_remaining_time_in_millis()
    assert 9_000 < remaining <= 10_000
    time.sleep(0.05)
    assert context.get_remaining_time_in_millis() < remaining
    assert context.log_group_name == "/aws/lambda/stack-first"
    assert context.aws_request_id == "req-1"


def test_opt_paths_map_to_the_layer_that_holds_them(tmp_path: Path) -> None:
    deps, domain = tmp_path / "deps", tmp_path / "domain"
    (deps / "python").mkdir(parents=True)
    (domain / "migrations").mkdir(parents=True)
    environment = {
        "MIGRATIONS_DIR": "/opt/migrations",
        "PY": "/opt/python",
        "MISSING": "/opt/nothing",
        "X": "y",
    }
    mapped = map_opt_paths(environment, [deps, domain])
    assert mapped == {
        "MIGRATIONS_DIR": str(domain / "migrations"),
        "PY": str(deps / "python"),
        "MISSING": "/opt/nothing",
        "X": "y",
    }


def test_decimal_events_are_serialized() -> None:
    # The runtime serializes like the Lambda runtime: Decimal from DynamoDB is a number.
    from compliance_tools.local.lambdas import _json_default

    assert _json_default(Decimal("3")) == 3
    assert _json_default(Decimal("0.25")) == 0.25


SLOW_HANDLER = """
    import threading
    import time

    ACTIVE = [0]
    LOCK = threading.Lock()


    def handler(event, context):
        with LOCK:
            ACTIVE[0] += 1
            overlapping = ACTIVE[0]
        time.sleep(0.05)
        with LOCK:
            ACTIVE[0] -= 1
        return {"overlapping": overlapping, "environment": id(ACTIVE)}
"""


def test_an_environment_handles_one_event_at_a_time_and_more_are_created_on_demand(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Given a function that notes how many events its module sees at once, allowed 2 environments
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "api.py").write_text(textwrap.dedent(SLOW_HANDLER))
    registry = FunctionRegistry()
    registry.add(
        FunctionSpec(
            logical_id="SlowFunctionAB12",
            name="slow",
            arn="arn:aws:lambda:eu-west-1:1:function:slow",
            handler="api.handler",
            runtime="python3.13",
            code_dir=folder,
            reserved_concurrency=2,
        )
    )
    registry.load_all()
    # When six events arrive at once
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: registry.invoke("SlowFunctionAB12", {}), range(6)))
    # Then no module instance ever saw two events at once, and at most two environments were created
    assert {r["overlapping"] for r in results} == {1}
    assert len({r["environment"] for r in results}) <= 2
    assert registry.get("SlowFunction").environments <= 2  # a unique logical-id prefix finds it too
