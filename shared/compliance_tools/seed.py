"""Demo data for the local runtime: one organisation and an admin API key."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from compliance.auth.keys import generate_api_key
from compliance.db import api_keys as api_keys_repo
from compliance.db.organisations import create_organisation, get_organisation
from compliance.models.auth import Role

DEMO_ORG_ID = UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
DEMO_ORG_NAME = "Demo Org"


@dataclass(frozen=True)
class DemoSeed:
    org_id: UUID
    admin_key: str
    created: bool


def seed_demo(owner_conninfo: str, state_dir: Path) -> DemoSeed:
    """Create the demo organisation and an admin key once; later starts reuse them.

    The key's plaintext is kept in the (git-ignored, 0600) local data folder so the printed curl lines
    keep working across restarts; in AWS a key is shown once and never stored.
    """
    key_file = state_dir / "demo-admin-key.json"
    with psycopg.connect(owner_conninfo) as conn:
        exists = get_organisation(conn, DEMO_ORG_ID) is not None
        if exists and key_file.exists():
            saved = json.loads(key_file.read_text())
            return DemoSeed(org_id=DEMO_ORG_ID, admin_key=saved["key"], created=False)
        if not exists:
            create_organisation(conn, DEMO_ORG_NAME, org_id=DEMO_ORG_ID)
        key = create_key(conn, DEMO_ORG_ID, "demo admin", [Role.SYSTEM_ADMIN, Role.INGEST])
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"org_id": str(DEMO_ORG_ID), "key": key}, handle)
    return DemoSeed(org_id=DEMO_ORG_ID, admin_key=key, created=True)


def create_key(conn: psycopg.Connection[Any], org_id: UUID, name: str, roles: list[Role]) -> str:
    """Insert an API key for ``org_id`` (owner connection) and return its plaintext, shown once."""
    generated = generate_api_key()
    api_keys_repo.insert_api_key(
        conn,
        org_id=org_id,
        name=name,
        prefix=generated.prefix,
        secret_hash=generated.secret_hash,
        roles=roles,
        expires_at=None,
    )
    return generated.plaintext
