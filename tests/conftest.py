"""Fixtures shared by every test suite.

PostgreSQL: one server per test session, the embedded one (``compliance_tools.pg``, fsync
off, in a temporary directory) unless ``DATABASE_URL`` names an external server whose
user may create databases and roles. Nothing starts until a test asks for it, so unit
tests never touch it.

- ``pg_endpoint`` (session): the server's ``PgEndpoint``.
- ``migrated_db``: a fresh database per test, migrated up, with the application user;
  a ``ProvisionedDatabase`` with ``owner_dsn``, ``app_dsn``, ``app`` (a ``Database`` as the
  application user, password from a dummy provider) and helpers (``owner()``,
  ``create_org()``).
- ``empty_db``: a fresh database per test with nothing applied (migration tests).
- ``database_factory`` (session): ``database_factory(migrated=True)`` for tests that need
  several databases; ``database_factory.release(db)`` drops one early.

Fresh migrated databases are copies of a template migrated once per session (the
migrations run exactly as in a deploy), which keeps a database per test at ~50 ms.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from compliance_tools.pg import EmbeddedPostgres, PgEndpoint, create_database, drop_database

pytest_plugins = ["tests.lambda_fixtures", "tests.aws_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS_DIR = REPO_ROOT / "migrations"
APP_USER = "compliance_app"
# Sent exactly as in AWS, never checked: the local server trusts loopback TLS clients.
APP_PASSWORD = "local-dummy-password"


@dataclass
class ProvisionedDatabase:
    """A database of the test server, and ways in as its owner and as the application."""

    name: str
    endpoint: PgEndpoint
    owner_dsn: str
    app_dsn: str
    _app: Any = field(default=None, repr=False)

    @property
    def app(self) -> Any:
        """``compliance.db.connection.Database`` as the application user (opened lazily)."""
        if self._app is None:
            from compliance.db.connection import Database

            self._app = Database(self.app_dsn, password_provider=lambda: APP_PASSWORD)
        return self._app

    def owner(self) -> psycopg.Connection[Any]:
        """A new autocommit connection as the owner (bypasses RLS). Close it (use ``with``)."""
        return psycopg.connect(self.owner_dsn, autocommit=True)

    def create_org(self, name: str = "Test Org") -> UUID:
        from compliance.db.organisations import create_organisation

        with self.owner() as conn:
            return create_organisation(conn, name)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


@pytest.fixture(scope="session")
def pg_endpoint() -> Iterator[PgEndpoint]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield PgEndpoint.from_url(url)
        return
    # Not under pytest's tmp_path: every pytest session start chmods /tmp/pytest-of-<user>
    # to 0700, which locks the server's system user (root runs) out of its data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="compliance-test-pg-"))
    server = EmbeddedPostgres(data_dir, durable=False)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def _migrated_template(pg_endpoint: PgEndpoint) -> Iterator[str]:
    """A database migrated once per session, copied for every ``migrated_db``: migrated up and
    its data catalog loaded, as the deploy leaves it (field encryption reads the catalog)."""
    from compliance.catalog import catalog_path, load_catalog
    from compliance.db import catalog as db_catalog
    from compliance.db import migrate

    name = f"tpl_{uuid.uuid4().hex[:12]}"
    create_database(pg_endpoint, name)
    with psycopg.connect(pg_endpoint.dsn(name), autocommit=True) as conn:
        migrate.up(conn, MIGRATIONS_DIR)
        db_catalog.sync(conn, load_catalog(catalog_path(MIGRATIONS_DIR)))
        migrate.ensure_app_user(conn, APP_USER, APP_PASSWORD)
    try:
        yield name
    finally:
        drop_database(pg_endpoint, name)


@dataclass
class DatabaseFactory:
    """Creates fresh databases on the test server; drops them on ``release`` (or at session end)."""

    endpoint: PgEndpoint
    template: str
    created: dict[str, ProvisionedDatabase] = field(default_factory=dict)

    def __call__(self, *, migrated: bool = True) -> ProvisionedDatabase:
        name = f"t_{uuid.uuid4().hex[:12]}"
        create_database(self.endpoint, name, template=self.template if migrated else None)
        db = ProvisionedDatabase(
            name=name,
            endpoint=self.endpoint,
            owner_dsn=self.endpoint.dsn(name),
            app_dsn=self.endpoint.dsn(name, user=APP_USER),
        )
        self.created[name] = db
        return db

    def release(self, db: ProvisionedDatabase) -> None:
        db.close()
        drop_database(self.endpoint, db.name)
        self.created.pop(db.name, None)


@pytest.fixture(scope="session")
def database_factory(pg_endpoint: PgEndpoint, _migrated_template: str) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_endpoint, _migrated_template)
    yield factory
    for db in list(factory.created.values()):
        factory.release(db)


@pytest.fixture
def migrated_db(database_factory: DatabaseFactory) -> Iterator[ProvisionedDatabase]:
    db = database_factory(migrated=True)
    yield db
    database_factory.release(db)


@pytest.fixture
def empty_db(database_factory: DatabaseFactory) -> Iterator[ProvisionedDatabase]:
    db = database_factory(migrated=False)
    yield db
    database_factory.release(db)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests last: their session-wide local runtime owns moto's process-global state."""
    items.sort(key=lambda item: "/tests/e2e/" in str(item.path))
