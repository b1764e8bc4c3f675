"""Local API Gateway (REST, v1): serves the template's RestApi on 127.0.0.1 with Lambda proxy events.

``ApiGatewayServer(template, resolve, invoke).start()`` binds a port; each HTTP request becomes the event
API Gateway would send (payload format 1.0), authorizers and gateway responses included. The pieces:
``apigw_template`` (template -> route table), ``apigw_gateway`` (one request, no sockets),
``apigw_events`` / ``apigw_auth`` / ``apigw_responses`` (event shapes, authorizers, error responses).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from compliance_tools.local.apigw_events import HttpRequest, HttpResponse
from compliance_tools.local.apigw_gateway import MAX_REQUEST_BYTES, Gateway, Invoke, too_large_response
from compliance_tools.local.apigw_template import ApiDefinition, Route, TemplateError, parse_api

__all__ = [
    "ApiDefinition",
    "ApiGatewayServer",
    "Gateway",
    "HttpRequest",
    "HttpResponse",
    "LambdaInvokeError",
    "Route",
    "TemplateError",
    "parse_api",
]

logger = logging.getLogger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class LambdaInvokeError(Exception):
    """A failed invocation, as Lambda reports it (``errorMessage`` / ``errorType``).

    ``invoke`` raises it (or any exception: its ``error_message`` attribute, else ``str()``, is read).
    An authorizer failing with the message ``Unauthorized`` makes API Gateway answer 401.
    """

    def __init__(
        self, error_message: str, error_type: str = "Exception", stack_trace: list[str] | None = None
    ) -> None:
        super().__init__(error_message)
        self.error_message = error_message
        self.error_type = error_type
        self.stack_trace = stack_trace or []


class _BodyTooLargeError(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-apigateway"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
        except _BodyTooLargeError:
            # The body stays unread on the socket: answer and drop the connection.
            self.close_connection = True
            self._write(too_large_response(), started)
            return
        except (ValueError, ConnectionError):
            self.close_connection = True
            self._write(
                HttpResponse(400, [("Content-Type", "text/plain")], b"Bad Request", "unreadable body"),
                started,
            )
            return
        request = HttpRequest(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            server_host=str(self.server.server_address[0]),
            server_port=self.server.server_address[1],
            protocol=self.request_version,
        )
        try:
            response = self.server.gateway.handle(request)
        except Exception as exc:  # a bug here must not kill the connection thread silently
            logger.exception("API Gateway emulator failed on %s %s", self.command, self.path)
            self.close_connection = True
            response = HttpResponse(
                500,
                [("Content-Type", "application/json")],
                b'{"message": "Internal server error"}',
                f"emulator error: {type(exc).__name__}: {exc}",
            )
        self._write(response, started)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_REQUEST_BYTES:
            raise _BodyTooLargeError
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BYTES:
                raise _BodyTooLargeError
            chunks.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def _write(self, response: HttpResponse, started: float) -> None:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        # CR/LF inside a header would split the response (AWS rejects such headers).
        lines += [f"{_clean(name)}: {_clean(value)}" for name, value in response.headers]
        lines.append(f"Content-Length: {len(response.body)}")
        lines.append(f"Date: {self.date_time_string()}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        # One write: headers and body leave in the same segment.
        self.wfile.write(head if self.command == "HEAD" else head + response.body)
        self.wfile.flush()
        log = self.server.access_log
        if log is not None:
            elapsed = (time.perf_counter() - started) * 1000
            note = f" ({response.detail})" if response.detail else ""
            log(f"{self.command} {self.path} -> {response.status} {elapsed:.1f}ms{note}")

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's stderr line per request (access_log replaces it)."""


def _clean(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._serve)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], gateway: Gateway, access_log: Callable[[str], None] | None
    ) -> None:
        self.gateway = gateway
        self.access_log = access_log
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-request is routine; anything else keeps the stdlib's traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Keep-alive connections outlive serve_forever; end them so stop() really stops."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class ApiGatewayServer:
    """The template's REST API on ``host:port``; ``invoke(function_logical_id, event)`` runs the Lambdas."""

    def __init__(
        self,
        template: dict[str, Any],
        resolve: Callable[[Any], Any],
        invoke: Invoke,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        rest_api: str | None = None,
        access_log: Callable[[str], None] | None = None,
    ) -> None:
        self.api = parse_api(template, resolve, rest_api=rest_api)
        self.gateway = Gateway(self.api, invoke, region=region, account_id=account_id)
        self.host = host
        self.port = port
        self.access_log = access_log
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every method of the API (``route.describe()`` prints one line)."""
        return self.api.routes

    @property
    def stage(self) -> str:
        """The stage served at ``/path``; every stage is also served at ``/{stage}/path``."""
        return self.api.default_stage.name

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> int:
        """Bind and serve in a background thread; returns the bound port."""
        if self._server is not None:
            return self.port
        self._server = _Server((self.host, self.port), self.gateway, self.access_log)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"apigw:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ApiGatewayServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
