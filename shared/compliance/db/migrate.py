"""Schema migrations: numbered SQL files applied in order, each in its own transaction.

Files are ``NNNN_name.up.sql`` with an optional ``NNNN_name.down.sql`` rollback. Applied
versions are recorded with the SHA-256 of their up file in ``schema_migrations``; a run
refuses to continue when an applied file has changed since (edit history with a new
migration instead). Every run holds a session-level advisory lock, so deploys that race
(two stacks, a retried trigger) apply each migration once: the second one waits, then
finds nothing left to do. Statements that cannot run in a transaction (``CREATE INDEX
CONCURRENTLY``) are not supported.

Every function takes a psycopg connection (left open, restored to its autocommit mode)
or a conninfo string (connected and closed here) of the database owner.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from compliance.errors import DomainError
from compliance.observability import logger

# pg_advisory_lock key: the first 8 bytes of sha256("compliance.schema_migrations"), fixed.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"compliance.schema_migrations").digest()[:8], "big", signed=True
)
APP_GROUP_ROLE = "compliance_rw"

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.(?P<direction>up|down)\.sql$")

_CREATE_TABLE = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version      integer     PRIMARY KEY,
    name         text        NOT NULL,
    checksum     text        NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    duration_ms  integer     NOT NULL
)
"""

Db: TypeAlias = "psycopg.Connection[Any] | str"


class MigrationError(DomainError):
    """The migrations cannot be applied as asked (changed files, missing rollback, bad name)."""

    status = 500
    title = "Migration failed"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_sql: bytes
    down_sql: bytes | None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.up_sql).hexdigest()

    @property
    def id(self) -> str:
        """``NNNN_name``, as in the file names."""
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: datetime | None
    #: False when the applied file changed since; None when not applied.
    checksum_ok: bool | None
    #: False for a version recorded in the database but missing from the directory.
    on_disk: bool

    @property
    def applied(self) -> bool:
        return self.applied_at is not None


def discover(directory: Path) -> list[Migration]:
    """The migrations in ``directory``, by version. Malformed ``.sql`` names are errors."""
    ups: dict[int, tuple[str, bytes]] = {}
    downs: dict[int, tuple[str, bytes]] = {}
    for path in sorted(Path(directory).glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name!r} is not named NNNN_name.up.sql / .down.sql")
        version, name = int(match["version"]), match["name"]
        target = ups if match["direction"] == "up" else downs
        if version in target:
            raise MigrationError(f"two {match['direction']} migrations with version {version:04d}")
        target[version] = (name, path.read_bytes())
    for version, (name, _) in downs.items():
        if version not in ups or ups[version][0] != name:
            raise MigrationError(f"rollback {version:04d}_{name} has no matching up migration")
    return [
        Migration(version, name, body, downs[version][1] if version in downs else None)
        for version, (name, body) in sorted(ups.items())
    ]


def up(db: Db, directory: Path, target: int | None = None) -> list[str]:
    """Apply pending migrations up to version ``target`` (all if None).

    Returns the ids (``NNNN_name``) applied by this call, empty when already up to date.
    """
    migrations = discover(directory)
    applied_now: list[str] = []
    with _session(db) as conn, _migration_lock(conn):
        applied = _verified_applied(conn, migrations)
        for migration in migrations:
            if migration.version in applied or (target is not None and migration.version > target):
                continue
            started = time.monotonic()
            with conn.transaction():
                conn.execute(migration.up_sql)
                conn.execute(
                    """
                    INSERT INTO schema_migrations (version, name, checksum, duration_ms)
                    VALUES (%s, %s, %s, %s)
                    """,
                    (
                        migration.version,
                        migration.name,
                        migration.checksum,
                        int((time.monotonic() - started) * 1000),
                    ),
                )
            applied_now.append(migration.id)
            logger.info(
                "migration applied", extra={"version": migration.version, "migration": migration.name}
            )
    return applied_now


def down(db: Db, directory: Path, steps: int = 1) -> list[str]:
    """Roll back the ``steps`` most recent migrations. Returns the ids rolled back, newest first."""
    if steps < 0:
        raise MigrationError("steps must not be negative")
    migrations = {migration.version: migration for migration in discover(directory)}
    rolled_back: list[str] = []
    with _session(db) as conn, _migration_lock(conn):
        applied = _verified_applied(conn, list(migrations.values()))
        for version in sorted(applied, reverse=True)[:steps]:
            migration = migrations.get(version)
            if migration is None or migration.down_sql is None:
                raise MigrationError(f"migration {version:04d} has no rollback file")
            with conn.transaction():
                conn.execute(migration.down_sql)
                conn.execute("DELETE FROM schema_migrations WHERE version = %s", (version,))
            rolled_back.append(migration.id)
            logger.info("migration rolled back", extra={"version": version, "migration": migration.name})
    return rolled_back


def status(db: Db, directory: Path) -> list[MigrationStatus]:
    """Every migration on disk or in the database, with whether and when it was applied."""
    migrations = {migration.version: migration for migration in discover(directory)}
    with _session(db) as conn:
        applied = _applied(conn)
    result = []
    for version in sorted(set(migrations) | set(applied)):
        on_disk, done = migrations.get(version), applied.get(version)
        result.append(
            MigrationStatus(
                version=version,
                name=on_disk.name if on_disk else done.name if done else "",
                applied_at=done.applied_at if done else None,
                checksum_ok=None if done is None or on_disk is None else done.checksum == on_disk.checksum,
                on_disk=on_disk is not None,
            )
        )
    return result


def current_version(db: Db) -> int | None:
    """The highest applied version, None before the first migration."""
    with _session(db) as conn:
        applied = _applied(conn)
    return max(applied, default=None)


def ensure_app_user(db: Db, user: str, password: str) -> None:
    """Create or update the LOGIN role ``user`` with ``password`` and grant it ``compliance_rw``.

    The password is sent as a SCRAM-SHA-256 verifier computed here, so the plaintext never
    reaches the server (nor its statement log). The role must not be able to bypass RLS.
    """
    if not user or not password:
        raise MigrationError("the application user name and password must not be empty")
    with _session(db) as conn, _migration_lock(conn):
        verifier = conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()
        role, password_sql = sql.Identifier(user), sql.Literal(verifier)
        with conn.transaction():
            row = conn.execute(
                """
                SELECT rolsuper, rolbypassrls, rolname = current_user
                FROM pg_catalog.pg_roles WHERE rolname = %s
                """,
                (user,),
            ).fetchone()
            if row is not None and any(row):
                raise MigrationError("the application user must not be a superuser, BYPASSRLS or the owner")
            created = False
            if row is None:
                try:
                    with conn.transaction():
                        conn.execute(
                            sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(role, password_sql)
                        )
                    created = True
                except psycopg.errors.DuplicateObject:
                    pass  # created concurrently by another database's migration: update it below
            if not created:
                conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(role, password_sql))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_GROUP_ROLE), role))
    logger.info("application user ensured", extra={"app_user": user, "role_created": created})


# -- internals -----------------------------------------------------------------------------


@contextmanager
def _session(db: Db) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection: transactions are opened explicitly, one per migration."""
    if isinstance(db, str):
        with psycopg.connect(db, autocommit=True) as conn:
            yield conn
        return
    if db.info.transaction_status != TransactionStatus.IDLE:
        raise MigrationError("the connection given to the migration runner is inside a transaction")
    previous = db.autocommit
    db.autocommit = True
    try:
        yield db
    finally:
        if not db.closed and db.info.transaction_status == TransactionStatus.IDLE:
            db.autocommit = previous


@contextmanager
def _migration_lock(conn: psycopg.Connection[Any]) -> Iterator[None]:
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def _applied(conn: psycopg.Connection[Any]) -> dict[int, AppliedMigration]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations").fetchall()
    return {row[0]: AppliedMigration(*row) for row in rows}


def _verified_applied(
    conn: psycopg.Connection[Any], migrations: list[Migration]
) -> dict[int, AppliedMigration]:
    """The applied migrations, after checking none of their files changed (lock held)."""
    conn.execute(_CREATE_TABLE)
    applied = _applied(conn)
    on_disk = {migration.version: migration for migration in migrations}
    changed = [v for v, done in applied.items() if v in on_disk and on_disk[v].checksum != done.checksum]
    if changed:
        names = ", ".join(f"{v:04d}_{on_disk[v].name}" for v in sorted(changed))
        raise MigrationError(f"applied migrations changed on disk since they ran: {names}")
    unknown = sorted(set(applied) - set(on_disk))
    if unknown:
        # The database is ahead of this code (a rollback deploy): harmless for up, logged.
        logger.warning("database has migrations unknown to this code", extra={"versions": unknown})
    return applied
