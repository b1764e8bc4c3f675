"""`compliance migrate up|down|status` against DATABASE_URL, or the local runtime's embedded database."""

from __future__ import annotations

import os
from pathlib import Path

from compliance.db import migrate

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_ROOT / "migrations"
LOCAL_DATABASE = "compliance"


def run(direction: str, *, steps: int, state_dir: Path) -> int:
    url = os.environ.get("DATABASE_URL")
    if url:
        return _run(direction, steps, url)
    from compliance_tools.pg import EmbeddedPostgres, create_database

    server = EmbeddedPostgres(state_dir / "pg")
    was_running = server.is_running()  # `local up` may be serving it: then leave it running
    endpoint = server.start()
    try:
        create_database(endpoint, LOCAL_DATABASE)
        return _run(direction, steps, endpoint.dsn(LOCAL_DATABASE))
    finally:
        if not was_running:
            server.stop()


def _run(direction: str, steps: int, conninfo: str) -> int:
    if direction == "up":
        import psycopg

        from compliance.catalog import catalog_path, load_catalog
        from compliance.db import catalog as catalog_repo

        catalog = load_catalog(catalog_path(MIGRATIONS_DIR))  # an invalid file fails before migrating
        applied = migrate.up(conninfo, MIGRATIONS_DIR)
        print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
        with psycopg.connect(conninfo) as conn:  # as the deploy does: the catalog follows the schema
            print(f"data catalog: {catalog_repo.sync(conn, catalog)} entries")
    elif direction == "down":
        reverted = migrate.down(conninfo, MIGRATIONS_DIR, steps=steps)
        print("rolled back: " + (", ".join(reverted) if reverted else "nothing"))
    else:
        for entry in migrate.status(conninfo, MIGRATIONS_DIR):
            mark = "applied" if entry.applied else "pending"
            if entry.checksum_ok is False:
                mark += " (file changed since it was applied!)"
            if not entry.on_disk:
                mark += " (missing from migrations/)"
            print(f"{entry.version:04d} {entry.name:<30} {mark}")
    return 0
