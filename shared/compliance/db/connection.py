"""Connections to PostgreSQL: a small lazily opened pool, one transaction per unit of work.

In AWS the functions reach the database through RDS Proxy with IAM authentication: the
password is a signed token valid for 15 minutes, so it is produced per new connection
(the pool's ``kwargs`` callable), never once at start. Lambda runs one request at a time
per environment, hence a pool of at most two connections that keeps one warm across
invocations and checks it on checkout when it has been idle (the proxy may have closed it
while the environment was frozen).

Server-side prepared statements are off (``prepare_threshold=None``): named prepared
statements pin RDS Proxy sessions to one client.

psycopg and psycopg_pool are imported where first used, not at module import: the handlers
import this module at cold start, and the driver (~150 ms) is only needed by the first
request that reaches the database.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

from compliance.errors import ConfigurationError, DataAccessError

if TYPE_CHECKING:
    import psycopg
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from psycopg import sql
    from psycopg.rows import DictRow
    from psycopg_pool import ConnectionPool

    from compliance.config import DatabaseSettings

    DictConnection: TypeAlias = psycopg.Connection[DictRow]

PasswordProvider = Callable[[], str]

APPLICATION_NAME = "compliance"
_CHECK_IDLE_AFTER_S = 30.0


def data_access_error(exc: psycopg.Error) -> DataAccessError:
    """A DataAccessError for a driver error. Only the SQLSTATE and class travel: driver
    messages can quote row values (``Key (external_id)=(...) already exists``)."""
    code = exc.sqlstate or type(exc).__name__
    return DataAccessError(f"database operation failed ({code})", sqlstate=exc.sqlstate)


@contextmanager
def driver_errors() -> Iterator[None]:
    """Re-raise psycopg errors inside the block as :func:`data_access_error` (a domain error)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc


class Database:
    """A pool of connections to one database as one user, opened on first use.

    ``tenant(org_id)`` is the normal way in: one transaction in which row-level security
    shows only that organisation's rows. ``unscoped()`` is one transaction with no
    organisation: every tenant table looks empty; only SECURITY DEFINER functions (API-key
    lookup) return data. Driver errors leave both as ``DataAccessError``.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        password_provider: PasswordProvider | None = None,
        min_size: int = 1,
        max_size: int = 2,
        timeout_s: float = 10.0,
        name: str = APPLICATION_NAME,
    ) -> None:
        self._conninfo = conninfo
        self._password_provider = password_provider
        self._min_size = min_size
        self._max_size = max(max_size, min_size, 1)
        self._timeout_s = timeout_s
        self._name = name
        self._pool: ConnectionPool[DictConnection] | None = None
        self._lock = threading.Lock()
        self._last_used: weakref.WeakKeyDictionary[DictConnection, float] = weakref.WeakKeyDictionary()

    @contextmanager
    def tenant(self, org_id: UUID, *, snapshot: bool = False) -> Iterator[DictConnection]:
        """One transaction scoped to ``org_id`` (``app.org_id``, local to the transaction).

        ``snapshot``: read-only, and every statement sees the same snapshot (REPEATABLE READ),
        for readers that must not mix two moments (a subject's export read table by table)."""
        from psycopg import sql

        # A UUID's canonical text cannot carry SQL: safe as a literal, which lets BEGIN and
        # the setting travel in one round trip (a parameter would need a second one).
        scope = sql.Literal(str(UUID(str(org_id))))
        begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" if snapshot else "BEGIN"
        with self._transaction(
            sql.SQL(begin + "; SELECT set_config('app.org_id', {}, true)").format(scope)
        ) as conn:
            yield conn

    @contextmanager
    def unscoped(self) -> Iterator[DictConnection]:
        """One transaction without an organisation (sees no tenant rows)."""
        from psycopg import sql

        with self._transaction(sql.SQL("BEGIN")) as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[DictConnection]:
        """One transaction for work over several organisations: it starts with none in scope
        (like :meth:`unscoped`); the caller switches with :func:`scope` before each one's
        statements. Everything commits together or not at all."""
        with self.unscoped() as conn:
            yield conn

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, begin: sql.SQL | sql.Composed) -> Iterator[DictConnection]:
        """BEGIN (plus scope), yield, COMMIT; ROLLBACK if the block raises.

        Managed by hand rather than with ``conn.transaction()`` to save a round trip per
        unit of work; a ``conn.transaction()`` inside the block becomes a savepoint.
        """
        import psycopg

        try:
            pool = self._get_pool()
            conn = self._begin(pool, begin)
        except psycopg.Error as exc:
            raise data_access_error(exc) from exc
        try:
            try:
                yield conn
            except BaseException:
                with suppress(psycopg.Error):
                    conn.rollback()
                raise
            conn.commit()
        except psycopg.Error as exc:
            raise data_access_error(exc) from exc
        finally:
            self._last_used[conn] = time.monotonic()
            pool.putconn(conn)  # discarded by the pool if broken

    def _begin(self, pool: ConnectionPool[DictConnection], begin: sql.SQL | sql.Composed) -> DictConnection:
        """A pooled connection inside a new transaction. A connection found dead at BEGIN
        (closed by the proxy while idle) is replaced once: nothing was done on it yet."""
        import psycopg

        for attempt in (1, 2):
            conn = pool.getconn()
            try:
                conn.execute(begin)
                return conn
            except psycopg.OperationalError:
                broken = conn.broken or conn.closed
                pool.putconn(conn)
                if not broken or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, conn: DictConnection) -> None:
        """Pool checkout check: a round trip only for a connection idle for a while.

        A Lambda environment may have been frozen for minutes and RDS Proxy may have
        closed the connection meanwhile; between back-to-back requests it is alive.
        """
        import psycopg
        from psycopg_pool import ConnectionPool

        if conn.closed or conn.broken:
            raise psycopg.OperationalError("connection closed")
        last_used = self._last_used.get(conn)
        if last_used is None or time.monotonic() - last_used > _CHECK_IDLE_AFTER_S:
            ConnectionPool.check_connection(conn)

    def _get_pool(self) -> ConnectionPool[DictConnection]:
        import psycopg
        from psycopg.rows import DictRow
        from psycopg_pool import ConnectionPool

        with self._lock:
            if self._pool is None:
                pool: ConnectionPool[DictConnection] = ConnectionPool(
                    self._conninfo,
                    connection_class=psycopg.Connection[DictRow],
                    kwargs=self._connect_kwargs,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    open=False,
                    check=self._check,
                    timeout=self._timeout_s,
                    name=self._name,
                    num_workers=1,
                )
                try:
                    # Waiting for the first connection keeps a request made meanwhile from
                    # growing the pool: one connection per cold start, not two.
                    pool.open(wait=True, timeout=self._timeout_s)
                except BaseException:
                    pool.close()
                    raise
                self._pool = pool
            return self._pool

    def _connect_kwargs(self) -> dict[str, Any]:
        """Called by the pool for every new connection: the password is fresh each time."""
        from psycopg.rows import dict_row

        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row, "prepare_threshold": None}
        if self._password_provider is not None:
            kwargs["password"] = self._password_provider()
        return kwargs


def scope(conn: DictConnection, org_id: UUID) -> None:
    """Put ``org_id`` in scope for the rest of the transaction (until the next ``scope``).

    Transaction-local (``set_config(..., true)``): it ends with the transaction and never
    leaks to the pooled connection's next user. Driver errors leave as ``DataAccessError``.
    """
    import psycopg

    try:
        conn.execute("SELECT set_config('app.org_id', %s, true)", (str(UUID(str(org_id))),))
    except psycopg.Error as exc:
        raise data_access_error(exc) from exc


# -- credentials ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def iam_token_provider(
    host: str, port: int, user: str, region: str, *, client: RDSClient | None = None
) -> PasswordProvider:
    """RDS IAM auth tokens, signed locally with the function's credentials (no network call)."""
    holder: list[RDSClient] = [client] if client is not None else []
    lock = threading.Lock()

    def provide() -> str:
        with lock:
            if not holder:
                import boto3

                holder.append(boto3.client("rds", region_name=region))
        return holder[0].generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region)

    return provide


def secret_credentials(
    secret_arn: str, *, region: str | None = None, client: SecretsManagerClient | None = None
) -> Credentials:
    """The username/password JSON of a Secrets Manager secret (RDS master or app secret)."""
    if client is None:
        import boto3

        client = boto3.client("secretsmanager", region_name=region)
    try:
        secret = client.get_secret_value(SecretId=secret_arn)["SecretString"]
    except Exception as exc:  # botocore errors and missing SecretString alike
        raise DataAccessError("could not read the database credentials secret") from exc
    try:
        data = json.loads(secret)
        return Credentials(username=str(data["username"]), password=str(data["password"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError("the database secret is not JSON with username and password") from exc


def secret_password_provider(
    secret_arn: str, *, region: str | None = None, client: SecretsManagerClient | None = None
) -> PasswordProvider:
    """The secret's password, read again for every new connection (follows rotation)."""

    def provide() -> str:
        return secret_credentials(secret_arn, region=region, client=client).password

    return provide


def conninfo_from_settings(settings: DatabaseSettings) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(
        "",
        host=settings.db_host,
        port=settings.db_port,
        dbname=settings.db_name,
        user=settings.db_user,
        sslmode=settings.db_sslmode,
        connect_timeout=settings.db_connect_timeout_s,
        application_name=APPLICATION_NAME,
    )


def database_from_settings(settings: DatabaseSettings) -> Database:
    """The function's Database: IAM tokens (``db_auth=iam``) or a Secrets Manager password."""
    provider: PasswordProvider
    if settings.db_auth == "iam":
        provider = iam_token_provider(
            settings.db_host, settings.db_port, settings.db_user, settings.aws_region
        )
    elif settings.db_secret_arn:
        provider = secret_password_provider(settings.db_secret_arn, region=settings.aws_region)
    else:
        raise ConfigurationError("DB_AUTH=secret needs DB_SECRET_ARN")
    return Database(
        conninfo_from_settings(settings),
        password_provider=provider,
        timeout_s=float(settings.db_connect_timeout_s * 2),
    )


__all__ = [
    "Credentials",
    "Database",
    "PasswordProvider",
    "conninfo_from_settings",
    "data_access_error",
    "database_from_settings",
    "iam_token_provider",
    "scope",
    "secret_credentials",
    "secret_password_provider",
]
