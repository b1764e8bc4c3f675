"""The embedded PostgreSQL manager (compliance_tools.pg): TLS only, restarts, reuse."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from compliance_tools.pg import EmbeddedPostgres, PgEndpoint


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    # A cluster of its own (not under pytest's tmp_path: see tests/conftest.py).
    data_dir = Path(tempfile.mkdtemp(prefix="compliance-pg-manager-"))
    pg = EmbeddedPostgres(data_dir, durable=False)
    pg.start()
    yield pg
    pg.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_plaintext_connections_are_refused(server: EmbeddedPostgres) -> None:
    # Given the running server / When a client connects without TLS
    endpoint = server.start()
    with pytest.raises(psycopg.OperationalError, match="TLS is required"):
        psycopg.connect(endpoint.dsn().replace("sslmode=require", "sslmode=disable"))
    # Then it is refused, while a TLS client gets in
    with psycopg.connect(endpoint.dsn()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.pgconn.ssl_in_use


def test_the_server_listens_on_loopback_only(server: EmbeddedPostgres) -> None:
    endpoint = server.start()
    with psycopg.connect(endpoint.dsn()) as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings"
                " WHERE name IN ('listen_addresses', 'unix_socket_permissions')"
            ).fetchall()
        )
    assert settings == {"listen_addresses": "", "unix_socket_permissions": "0700"}
    assert endpoint.host == "127.0.0.1"


def test_a_second_manager_reuses_the_running_server(server: EmbeddedPostgres) -> None:
    # Given a running server
    endpoint = server.start()
    with psycopg.connect(endpoint.dsn()) as conn:
        pid = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
    # When another manager (another process, say) starts the same data directory
    started = time.perf_counter()
    again = EmbeddedPostgres(server.data_dir).start()
    # Then it returns at once with the same endpoint, the same server
    assert time.perf_counter() - started < 1.0
    assert again == endpoint
    with psycopg.connect(again.dsn()) as conn:
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone() == pid


def test_data_and_port_survive_a_restart(server: EmbeddedPostgres) -> None:
    # Given data written to the running server
    endpoint = server.start()
    with psycopg.connect(endpoint.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS survives (note text)")
        conn.execute("INSERT INTO survives VALUES ('kept')")
    # When it is stopped and started again
    server.stop()
    assert not server.is_running()
    restarted = server.start()
    # Then it comes back on the same port with the data
    assert restarted.port == endpoint.port
    with psycopg.connect(restarted.dsn()) as conn:
        assert ("kept",) in conn.execute("SELECT note FROM survives").fetchall()


def test_a_dead_tls_front_is_restarted(server: EmbeddedPostgres) -> None:
    # Given the TLS front process died
    endpoint = server.start()
    front_pid = json.loads(server.front_state.read_text())["pid"]
    os.kill(front_pid, signal.SIGKILL)
    time.sleep(0.1)
    # When the server is started again / Then a new front serves the same port
    again = server.start()
    assert again.port == endpoint.port
    assert json.loads(server.front_state.read_text())["pid"] != front_pid
    with psycopg.connect(again.dsn()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_tls_key_is_private_to_the_server_user(server: EmbeddedPostgres) -> None:
    key = server.pgdata / "server.key"
    mode = stat.S_IMODE(key.stat().st_mode)
    assert mode == 0o600
    if os.geteuid() == 0:
        import pwd

        assert pwd.getpwuid(key.stat().st_uid).pw_name == "pgserver"


def test_an_explicit_port_other_than_the_running_one_is_refused(server: EmbeddedPostgres) -> None:
    endpoint = server.start()
    with pytest.raises(RuntimeError, match="already served"):
        EmbeddedPostgres(server.data_dir, port=endpoint.port + 1).start()


def test_endpoint_is_a_plain_value(server: EmbeddedPostgres) -> None:
    endpoint = server.start()
    assert isinstance(endpoint, PgEndpoint)
    assert endpoint.url("compliance").startswith(
        f"postgresql://postgres@127.0.0.1:{endpoint.port}/compliance"
    )
