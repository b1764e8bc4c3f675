"""The HTTP server itself, over loopback sockets on an ephemeral port (fast, no network beyond 127.0.0.1)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from compliance_tools.local.apigw import ApiGatewayServer
from compliance_tools.local.apigw_gateway import MAX_REQUEST_BYTES
from tests.unit.apigw.apigw_fixtures import FakeLambdas, template


@pytest.fixture
def server(lambdas: FakeLambdas) -> Iterator[ApiGatewayServer]:
    log: list[str] = []
    srv = ApiGatewayServer(template(), lambda value: None, lambdas.invoke, access_log=log.append)
    srv.start()
    yield srv
    srv.stop()


def _connect(srv: ApiGatewayServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)


def _json(response: http.client.HTTPResponse) -> Any:
    return json.loads(response.read())


def test_keep_alive_connection_serves_many_requests(server: ApiGatewayServer, lambdas: FakeLambdas) -> None:
    # Given one HTTP/1.1 connection
    conn = _connect(server)
    auth = {"Authorization": "Bearer good", "Content-Type": "application/json"}

    # When several requests go over it
    statuses = []
    for i in range(5):
        conn.request("POST", "/v1/usage", body=json.dumps({"n": i}), headers=auth)
        response = conn.getresponse()
        assert _json(response) == {"ok": True}
        statuses.append(response.status)
    conn.close()

    # Then all are served, the sender's address reaches the event, and the authorizer ran once (cache)
    assert statuses == [200] * 5
    events = lambdas.events("IngestFn")
    assert [json.loads(e["body"]) for e in events] == [{"n": i} for i in range(5)]
    assert events[0]["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert events[0]["headers"]["Host"] == f"127.0.0.1:{server.port}"
    assert len(lambdas.events("AuthorizerFn")) == 1


def test_stage_prefixed_and_plain_paths_are_both_served(
    server: ApiGatewayServer, lambdas: FakeLambdas
) -> None:
    # Given the server
    conn = _connect(server)

    # When the same method is called with and without the stage prefix
    for path in ("/prod/v1/api-keys/k1", "/v1/api-keys/k1"):
        conn.request("GET", path, headers={"Authorization": "Bearer good"})
        assert conn.getresponse().read() == b'{"ok": true}'
    conn.close()

    # Then both reach the Lambda with the same resource and stage
    first, second = lambdas.events("AdminFn")
    assert first["requestContext"]["path"] == "/prod/v1/api-keys/k1"
    assert second["requestContext"]["path"] == "/v1/api-keys/k1"
    assert first["path"] == second["path"] == "/v1/api-keys/k1"
    assert first["requestContext"]["stage"] == second["requestContext"]["stage"] == "prod"


def test_oversized_body_is_refused_before_reading_it(server: ApiGatewayServer, lambdas: FakeLambdas) -> None:
    # Given a request announcing a body over 10 MB
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    head = (
        f"POST /v1/usage HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"
        f"Content-Length: {MAX_REQUEST_BYTES + 1}\r\n\r\n"
    )
    sock.sendall(head.encode())

    # When the server answers (without the body ever being sent)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()

    # Then it is a 413 and the connection is closed
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in data
    assert lambdas.calls == []


def test_chunked_request_body_and_head(server: ApiGatewayServer, lambdas: FakeLambdas) -> None:
    # Given a chunked upload
    conn = _connect(server)
    conn.request("PUT", "/v1/files/a.txt", body=iter([b"hello ", b"world"]), encode_chunked=True)
    put = conn.getresponse()
    put.read()

    # When a HEAD follows on the same connection
    conn.request("HEAD", "/v1/files/a.txt")
    head = conn.getresponse()
    head_body = head.read()
    conn.close()

    # Then the chunked body arrived whole and HEAD got headers only
    assert put.status == 200
    assert lambdas.events("FilesFn")[0]["body"] == "hello world"
    assert head.status == 200
    assert head_body == b""
    assert head.getheader("Content-Length") == str(len(b'{"ok": true}'))


def test_unknown_route_over_http(server: ApiGatewayServer) -> None:
    # Given the server
    conn = _connect(server)

    # When an unknown path is requested
    conn.request("GET", "/does/not/exist")
    response = conn.getresponse()

    # Then AWS's 403 comes back
    assert response.status == 403
    assert _json(response) == {"message": "Missing Authentication Token"}
    conn.close()


def test_stop_closes_idle_keep_alive_connections(lambdas: FakeLambdas) -> None:
    # Given a server with an open keep-alive connection
    srv = ApiGatewayServer(template(), lambda value: None, lambdas.invoke)
    port = srv.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/")
    conn.getresponse().read()

    # When the server stops
    srv.stop()

    # Then the connection is closed and the port no longer accepts
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/")
        conn.getresponse()
    conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_routes_are_listed_for_printing(server: ApiGatewayServer) -> None:
    # Given the server
    # When its routes are listed
    lines = [route.describe() for route in server.routes]

    # Then each method appears with its function
    assert "GET     /v1/api-keys/{key_id} -> AdminFn (CUSTOM: ApiAuthorizer)" in lines
    assert server.stage == "prod"
