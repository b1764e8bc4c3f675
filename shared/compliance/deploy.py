"""Deploy-time work: bring the database schema, its data catalog and the application login up to date."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from compliance.aws.clients import client
from compliance.aws.secrets import read_json_secret
from compliance.observability import logger

if TYPE_CHECKING:
    from compliance.config import MigrationSettings


class MigrationReport(BaseModel):
    applied: list[str]
    current_version: int | None
    catalog_entries: int


def apply_migrations(settings: MigrationSettings) -> MigrationReport:
    """Log in as the master user, migrate up, load the data catalog, (re)set the app user's password."""
    # The driver and the runner are imported here, not at module import (the function's cold start).
    import psycopg

    from compliance.catalog import catalog_path, load_catalog
    from compliance.db import catalog as db_catalog
    from compliance.db import migrate

    # Read before migrating: an invalid catalog fails the deploy before it changes anything.
    catalog = load_catalog(catalog_path(settings.migrations_dir))

    secrets = client("secretsmanager")
    master = read_json_secret(secrets, settings.db_secret_arn)
    app_password = read_json_secret(secrets, settings.db_app_secret_arn)["password"]
    conninfo = psycopg.conninfo.make_conninfo(
        host=settings.db_host,
        port=settings.db_port,
        dbname=settings.db_name,
        user=master["username"],
        password=master["password"],
        sslmode=settings.db_sslmode,
        connect_timeout=10,
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Migrations create the group role the app user joins, so they run first.
        applied = migrate.up(conn, Path(settings.migrations_dir))
        entries = db_catalog.sync(conn, catalog)
        # The tests keep the catalog complete; a gap here (a database ahead of this code after a
        # rollback deploy) is reported, not fatal: the schema is already migrated.
        drift = db_catalog.schema_drift(conn, catalog)
        if drift:
            logger.warning(
                "data catalog and schema disagree",
                extra={"undocumented": drift.undocumented, "unknown": drift.unknown},
            )
        migrate.ensure_app_user(conn, settings.db_app_user, app_password)
        current = migrate.current_version(conn)
    logger.info(
        "migrations applied",
        extra={"applied": applied, "current_version": current, "catalog_entries": entries},
    )
    return MigrationReport(applied=applied, current_version=current, catalog_entries=entries)
