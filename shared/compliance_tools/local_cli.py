"""`compliance local up | trigger` and `compliance invoke`: the local runtime from the command line."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from compliance_tools.local.runtime import LocalRuntime

# The template's stage; API Gateway serves it at /{stage}/..., the emulator at both /prod/... and /...
CURL_BODY = "docs/examples/usage-batch.json"


def boot(
    *,
    state_dir: Path,
    synth: bool,
    port: int = 0,
    start_api: bool = True,
    quiet_seed: bool = False,
    **runtime_options: Any,
) -> tuple[LocalRuntime, Any]:
    """Synthesize (or reuse cdk.out), boot the template, seed the demo organisation."""
    from compliance_tools.local.template import DEFAULT_ASSEMBLY_DIR, synthesize
    from compliance_tools.seed import seed_demo

    if synth:
        print("synthesizing the CDK app (cdk-nag packs run)...", flush=True)
        synthesize(DEFAULT_ASSEMBLY_DIR)
    seeded: list[Any] = []

    def on_ready(runtime: LocalRuntime) -> None:
        assert runtime.pg is not None
        seeded.append(seed_demo(runtime.database_dsn(), state_dir))

    runtime = LocalRuntime(
        DEFAULT_ASSEMBLY_DIR,
        data_dir=state_dir,
        api_port=port,
        start_api=start_api,
        on_ready=on_ready,
        **runtime_options,
    ).start()
    return runtime, seeded[0]


def up(*, port: int, state_dir: Path, synth: bool) -> int:
    runtime, seed = boot(state_dir=state_dir, synth=synth, port=port)
    # A flag, not an Event: a handler calling Event.set() can deadlock against the main
    # thread's own Event.wait() (both take the condition's non-reentrant lock).
    stopping: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _: stopping.append(signum))
    signal.signal(signal.SIGTERM, lambda signum, _: stopping.append(signum))
    try:
        base = f"http://127.0.0.1:{runtime.api_port}"
        print(f"\nCompliance control plane is up: {base}  (Ctrl-C stops it; data kept in {state_dir})")
        print(
            f"demo organisation {seed.org_id}; admin + ingest API key (kept in {state_dir}):\n"
            f"  {seed.admin_key}\n"
        )
        print("try:")
        print(f"  KEY={seed.admin_key}")
        print(
            f'  curl -s -X POST {base}/v1/usage -H "Authorization: Bearer $KEY" '
            f"-H 'Content-Type: application/json' -d @{CURL_BODY}"
        )
        print(f'  curl -s {base}/v1/api-keys -H "Authorization: Bearer $KEY"')
        print(
            f'  curl -s -X POST {base}/v1/api-keys -H "Authorization: Bearer $KEY" '
            '-H \'Content-Type: application/json\' -d \'{"name": "gateway", "roles": ["ingest"]}\''
        )
        print("routes:")
        for line in runtime.route_lines():
            print(f"  {line}")
        while not stopping:
            time.sleep(0.2)
    finally:
        print("stopping...", flush=True)
        runtime.stop()
    return 0


def trigger(rule: str, *, state_dir: Path) -> int:
    from compliance_tools.local.state import ControlError, RuntimeNotRunningError, fire_rule, state_path

    try:
        fired = fire_rule(rule, path=state_path(state_dir))
    except (ControlError, RuntimeNotRunningError) as exc:
        print(f"compliance local trigger: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(fired, indent=2, default=str))
    return 0


def invoke(function: str, event: Any, *, state_dir: Path) -> int:
    """Invoke in the running runtime if there is one, else in one booted for the call (no API, no pollers)."""
    from compliance_tools.local.state import RuntimeNotRunningError, invoke_function, read_state, state_path

    try:
        read_state(state_path(state_dir))
    except RuntimeNotRunningError:
        runtime, _ = boot(
            state_dir=state_dir,
            synth=False,
            start_api=False,
            start_pollers=False,
            start_scheduler=False,
            write_state_file=False,
        )
        try:
            outcome = runtime.invoke_result(function, event)
            answer: dict[str, Any] = (
                {"result": outcome.payload} if outcome.error is None else {"error": outcome.error}
            )
        finally:
            runtime.stop()
    else:
        answer = invoke_function(function, event, path=state_path(state_dir))
    print(json.dumps(answer, indent=2, default=str))
    return 0 if "error" not in answer else 1
