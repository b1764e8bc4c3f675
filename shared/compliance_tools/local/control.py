"""A small HTTP control server on 127.0.0.1 for other processes to drive the running runtime.

Routes (JSON in, JSON out):
  GET  /health                       -> {"status": "ok"}
  GET  /resources                    -> logical id -> physical id / ARN / URL
  GET  /rules                        -> the template's EventBridge rules
  POST /rules/{rule}/fire            -> fire a rule now (logical id, name or ARN); per-target report
  POST /functions/{function}/invoke  -> body is the event; {"result": ...} or {"error": {...}}
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)


class ControlApi:
    """What the control server can ask of the runtime."""

    def __init__(
        self,
        *,
        resources: Callable[[], dict[str, str]],
        rules: Callable[[], list[dict[str, Any]]],
        fire_rule: Callable[[str], list[dict[str, Any]]],
        invoke: Callable[[str, Any], dict[str, Any]],
    ) -> None:
        self.resources = resources
        self.rules = rules
        self.fire_rule = fire_rule
        self.invoke = invoke


class ControlServer:
    def __init__(self, api: ControlApi, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        handler = type("Handler", (_Handler,), {"api": api})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> int:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-control", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


class _Handler(BaseHTTPRequestHandler):
    api: ControlApi

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("control: " + format, *args)

    def do_GET(self) -> None:
        route = self.path.split("?", 1)[0].rstrip("/")
        if route == "/health":
            self._send(200, {"status": "ok"})
        elif route == "/resources":
            self._send(200, self.api.resources())
        elif route == "/rules":
            self._send(200, self.api.rules())
        else:
            self._send(404, {"error": f"no route GET {route}"})

    def do_POST(self) -> None:
        parts = [urllib.parse.unquote(part) for part in self.path.split("?", 1)[0].strip("/").split("/")]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            self._send(400, {"error": f"body is not JSON: {exc}"})
            return
        try:
            if len(parts) == 3 and parts[0] == "rules" and parts[2] == "fire":
                self._send(200, {"rule": parts[1], "targets": self.api.fire_rule(parts[1])})
            elif len(parts) == 3 and parts[0] == "functions" and parts[2] == "invoke":
                self._send(200, self.api.invoke(parts[1], body))
            else:
                self._send(404, {"error": f"no route POST {self.path}"})
        except LookupError as exc:
            self._send(404, {"error": str(exc.args[0]) if exc.args else str(exc)})
        except Exception as exc:
            logger.exception("control request %s failed", self.path)
            self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
