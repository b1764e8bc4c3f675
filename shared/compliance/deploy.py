"""Deploy-time work: bring the database schema and the application login up to date."""

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


def apply_migrations(settings: MigrationSettings) -> MigrationReport:
    """Log in as the master user, migrate up, (re)set the app user's password from its secret."""
    # The driver and the runner are imported here, not at module import (the function's cold start).
    import psycopg

    from compliance.db import migrate

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
        migrate.ensure_app_user(conn, settings.db_app_user, app_password)
        current = migrate.current_version(conn)
    logger.info("migrations applied", extra={"applied": applied, "current_version": current})
    return MigrationReport(applied=applied, current_version=current)
