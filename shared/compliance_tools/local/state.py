"""The running runtime's state file (``.local/runtime.json``) and a client for its control server.

``compliance local up`` writes the file when the runtime is ready and removes it on stop; other
processes (``compliance local trigger RULE``) read it to find the ports.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_DATA_DIR = Path(".local")
STATE_FILE_NAME = "runtime.json"


class RuntimeNotRunningError(RuntimeError):
    """No live local runtime (no state file, or its process is gone)."""


class ControlError(RuntimeError):
    """The control server answered with an error."""


@dataclass(frozen=True)
class RuntimeState:
    pid: int
    started_at: str
    template: str
    region: str
    moto_endpoint: str
    control_port: int
    api_port: int | None = None
    pg: dict[str, Any] | None = None
    resources: dict[str, str] = field(default_factory=dict)

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    @property
    def api_url(self) -> str | None:
        return f"http://127.0.0.1:{self.api_port}" if self.api_port else None


def state_path(data_dir: Path | str = DEFAULT_DATA_DIR) -> Path:
    return Path(data_dir) / STATE_FILE_NAME


def write_state(path: Path, state: RuntimeState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2), encoding="utf-8")
    temporary.replace(path)  # readers never see a half-written file


def remove_state(path: Path) -> None:
    path.unlink(missing_ok=True)


def read_state(path: Path | None = None) -> RuntimeState:
    path = path or state_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuntimeNotRunningError(
            f"no local runtime state at {path}: start it with `compliance local up`"
        ) from None
    state = RuntimeState(**data)
    if not _alive(state.pid):
        raise RuntimeNotRunningError(f"the local runtime (pid {state.pid}) recorded in {path} is not running")
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def control_request(
    method: str, route: str, body: Any = None, *, path: Path | None = None, timeout: float = 300.0
) -> Any:
    """Call the running runtime's control server; returns the decoded JSON answer."""
    state = read_state(path)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
        state.control_url + route, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise ControlError(f"{method} {route}: HTTP {exc.code}: {detail}") from exc


def fire_rule(name: str, *, path: Path | None = None) -> dict[str, Any]:
    """Fire an EventBridge rule of the running runtime now (``compliance local trigger RULE``)."""
    answer: dict[str, Any] = control_request(
        "POST", f"/rules/{urllib.parse.quote(name, safe='')}/fire", path=path
    )
    return answer


def invoke_function(name: str, event: Any, *, path: Path | None = None) -> dict[str, Any]:
    """Invoke a function of the running runtime: ``{"result": ...}`` or ``{"error": {...}}``."""
    route = f"/functions/{urllib.parse.quote(name, safe='')}/invoke"
    answer: dict[str, Any] = control_request("POST", route, event, path=path)
    return answer
