"""Discovery of migration files (compliance.db.migrate.discover): no database involved."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from compliance.db.migrate import MigrationError, discover

REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


def write(directory: Path, name: str, body: str = "SELECT 1;") -> None:
    (directory / name).write_text(body)


def test_migrations_are_discovered_in_version_order(tmp_path: Path) -> None:
    # Given files written out of order, with and without rollbacks, and a non-SQL file
    write(tmp_path, "0002_second.up.sql", "SELECT 2;")
    write(tmp_path, "0001_first.up.sql")
    write(tmp_path, "0001_first.down.sql", "SELECT -1;")
    write(tmp_path, "README.md", "notes")

    # When they are discovered
    migrations = discover(tmp_path)

    # Then they come by version, with their rollback SQL and the checksum of the up file
    assert [m.id for m in migrations] == ["0001_first", "0002_second"]
    assert migrations[0].down_sql == b"SELECT -1;"
    assert migrations[1].down_sql is None
    assert migrations[1].checksum == hashlib.sha256(b"SELECT 2;").hexdigest()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["1_short.up.sql"], "is not named"),
        (["0001_Upper.up.sql"], "is not named"),
        (["0001_first.sideways.sql"], "is not named"),
        (["0001_a.up.sql", "0001_b.up.sql"], "two up migrations"),
        (["0001_a.up.sql", "0001_b.down.sql"], "no matching up"),
        (["0002_orphan.down.sql"], "no matching up"),
    ],
)
def test_inconsistent_directories_are_refused(tmp_path: Path, files: list[str], message: str) -> None:
    # Given a directory with a naming mistake
    for name in files:
        write(tmp_path, name)

    # When / Then discovery refuses it, naming the problem
    with pytest.raises(MigrationError, match=message):
        discover(tmp_path)


def test_every_repository_migration_has_a_rollback() -> None:
    # Given the repository's migrations / When discovered
    migrations = discover(REPO_MIGRATIONS)

    # Then there is at least the core one, and each can be rolled back
    assert migrations[0].id == "0001_core"
    assert all(m.down_sql for m in migrations)
