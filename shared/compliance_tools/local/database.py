"""What an RDS instance/cluster of the template means for the embedded PostgreSQL server.

RDS creates the master user and the initial database (``DBName``/``DatabaseName``) when the instance
is created; locally the provisioner does the same on the embedded server, idempotently (the data
folder survives restarts).
"""

from __future__ import annotations

import logging
from typing import Protocol

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)


class PgEndpoint(Protocol):
    """What ``compliance_tools.pg.EmbeddedPostgres.start()`` returns."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def superuser(self) -> str: ...

    def dsn(self, dbname: str, *, user: str | None = None) -> str: ...


class PgServer(Protocol):
    def start(self) -> PgEndpoint: ...

    def stop(self) -> None: ...


def ensure_master(endpoint: PgEndpoint, username: str, password: str | None, dbname: str | None) -> None:
    """Create the RDS master user (a superuser, as close as PostgreSQL gets to rds_superuser) and the
    initial database it owns; update the password if the role exists."""
    with psycopg.connect(endpoint.dsn("postgres"), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)).fetchone()
        if exists is None:
            connection.execute(
                sql.SQL("CREATE ROLE {} LOGIN SUPERUSER CREATEDB CREATEROLE").format(sql.Identifier(username))
            )
            logger.info("created master user %s", username)
        if password:
            connection.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(username), sql.Literal(password))
            )
        if dbname:
            found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if found is None:
                connection.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(dbname), sql.Identifier(username)
                    )
                )
                logger.info("created database %s owned by %s", dbname, username)
