"""Audit checkpoints against a real PostgreSQL: storage (0003), RLS, append-only enforcement, the
due-organisations function, and the checkpoint run (compliance.audit.checkpointing) end to end
with a local signer and a fake anchor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from compliance.audit import merkle
from compliance.audit.anchor import AnchorError
from compliance.audit.chain import merkle_leaf_data
from compliance.audit.checkpoint import (
    ZERO_HASH,
    LocalSigner,
    SignedCheckpoint,
    TreeHead,
    head_hash,
    sign_head,
    verify_signature,
)
from compliance.audit.checkpointing import Status, checkpoint_all
from compliance.audit.events import SYSTEM_ORG_ID
from compliance.audit.frontier import Frontier
from compliance.db import audit, audit_checkpoints, migrate
from compliance.errors import DataAccessError, IntegrityError
from tests.conftest import APP_PASSWORD, MIGRATIONS_DIR, ProvisionedDatabase
from tests.integration.db.test_db_audit import batch

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
SIGNER = LocalSigner.generate("arn:aws:kms:us-east-1:123456789012:key/test")


class FakeAnchor:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.anchored: list[SignedCheckpoint] = []

    def anchor(self, checkpoint: SignedCheckpoint) -> str:
        if self.fail:
            raise AnchorError("anchor bucket unavailable (test)")
        self.anchored.append(checkpoint)
        return f"fake/{checkpoint.head.org_id}/{checkpoint.head.number}"


def append(db: ProvisionedDatabase, org: uuid.UUID, size: int, start: int = 0) -> None:
    with db.app.tenant(org) as conn:
        audit.append_events(conn, org, batch(org, size, start=start))


def all_leaf_data(db: ProvisionedDatabase, org: uuid.UUID) -> list[bytes]:
    with db.app.tenant(org) as conn:
        return [merkle_leaf_data(e) for e in audit.read_events(conn, limit=100_000)]


def next_checkpoint(
    db: ProvisionedDatabase, org: uuid.UUID, previous: SignedCheckpoint | None = None, **changes: Any
) -> tuple[SignedCheckpoint, list[bytes]]:
    """A correctly signed checkpoint of the org's whole current chain (plus ``changes``)."""
    leaves = all_leaf_data(db, org)
    frontier = Frontier.from_leaf_hashes(merkle.leaf_hash(d) for d in leaves)
    head = TreeHead(
        org_id=org,
        number=1 if previous is None else previous.head.number + 1,
        tree_size=len(leaves),
        root_hash=frontier.root().hex(),
        last_event_hash=leaves[-1].hex() if leaves else "0" * 64,
        issued_at=NOW,
        previous_head_hash=ZERO_HASH if previous is None else previous.head_hash,
        key_id=SIGNER.key_id,
    )
    return sign_head(head.model_copy(update=changes), SIGNER), list(frontier.hashes)


def insert(db: ProvisionedDatabase, checkpoint: SignedCheckpoint, frontier: list[bytes]) -> None:
    with db.app.tenant(checkpoint.head.org_id) as conn:
        audit_checkpoints.insert(conn, checkpoint, frontier)


# ---------------------------------------------------------------------------- storage


def test_checkpoints_are_stored_and_read_back(migrated_db: ProvisionedDatabase) -> None:
    # Given an organisation with two checkpoints over a growing chain
    org = migrated_db.create_org()
    append(migrated_db, org, 3)
    first, first_frontier = next_checkpoint(migrated_db, org)
    insert(migrated_db, first, first_frontier)
    append(migrated_db, org, 4, start=3)
    second, second_frontier = next_checkpoint(migrated_db, org, first)
    insert(migrated_db, second, second_frontier)

    # When read back / Then every reader returns exactly what was stored
    with migrated_db.app.tenant(org) as conn:
        assert audit_checkpoints.latest(conn) == second
        assert audit_checkpoints.get(conn, 1) == first
        assert audit_checkpoints.get(conn, 3) is None
        assert audit_checkpoints.list_checkpoints(conn, limit=10) == [first, second]
        assert audit_checkpoints.list_checkpoints(conn, after_number=1, limit=10) == [second]
        assert audit_checkpoints.list_checkpoints(conn, limit=1) == [first]
        assert audit_checkpoints.frontier(conn, 1) == first_frontier
        assert audit_checkpoints.frontier(conn, 2) == second_frontier
    assert second.head.issued_at == NOW  # microseconds survive timestamptz
    verify_signature(second, SIGNER.public_key)


def test_an_organisation_without_checkpoints_has_none(migrated_db: ProvisionedDatabase) -> None:
    org = migrated_db.create_org()
    with migrated_db.app.tenant(org) as conn:
        assert audit_checkpoints.latest(conn) is None
        assert audit_checkpoints.list_checkpoints(conn, limit=5) == []


def test_checkpoints_are_invisible_to_other_organisations(migrated_db: ProvisionedDatabase) -> None:
    # Given a checkpoint of organisation A
    org_a, org_b = migrated_db.create_org("A"), migrated_db.create_org("B")
    append(migrated_db, org_a, 2)
    checkpoint, frontier = next_checkpoint(migrated_db, org_a)
    insert(migrated_db, checkpoint, frontier)

    # When B (or nobody) looks / Then nothing is visible
    with migrated_db.app.tenant(org_b) as conn:
        assert audit_checkpoints.latest(conn) is None
        assert audit_checkpoints.get(conn, 1) is None
    with migrated_db.app.unscoped() as conn:
        assert conn.execute("SELECT count(*) AS n FROM audit_checkpoints").fetchone() == {"n": 0}

    # And B cannot write a checkpoint in A's name
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org_b) as conn:
        audit_checkpoints.insert(conn, checkpoint, frontier)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_checkpoints SET root_hash = repeat('0', 64)",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
    ],
)
def test_the_app_role_cannot_change_checkpoints(migrated_db: ProvisionedDatabase, statement: str) -> None:
    # Given a stored checkpoint and the application role in its organisation's scope
    org = migrated_db.create_org()
    append(migrated_db, org, 2)
    insert(migrated_db, *next_checkpoint(migrated_db, org))
    with psycopg.connect(migrated_db.app_dsn, password=APP_PASSWORD, autocommit=True) as conn:
        conn.execute("SELECT set_config('app.org_id', %s, false)", (str(org),))
        # When it tries to change or remove it / Then PostgreSQL refuses
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_checkpoints SET key_id = 'forged'",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_checkpoints",
    ],
)
def test_the_owner_is_stopped_by_the_triggers(migrated_db: ProvisionedDatabase, statement: str) -> None:
    org = migrated_db.create_org()
    append(migrated_db, org, 2)
    insert(migrated_db, *next_checkpoint(migrated_db, org))
    with migrated_db.owner() as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute(statement)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"number": 3}, "must follow"),
        ({"previous_head_hash": "ab" * 32}, "previous_head_hash"),
        ({"tree_size": 1}, "must not shrink"),
    ],
)
def test_a_checkpoint_must_follow_the_latest(
    migrated_db: ProvisionedDatabase, changes: dict[str, Any], message: str
) -> None:
    # Given checkpoint 1 over three events
    org = migrated_db.create_org()
    append(migrated_db, org, 3)
    first, frontier = next_checkpoint(migrated_db, org)
    insert(migrated_db, first, frontier)
    # When a next checkpoint skips a number, links another head or shrinks the tree
    bad, _ = next_checkpoint(migrated_db, org, first, **changes)
    bad_frontier = [b"\x00" * 32] * bad.head.tree_size.bit_count()
    # Then the database refuses it, saying why (the trigger, not RLS: the owner bypasses RLS)
    with migrated_db.owner() as conn, pytest.raises(DataAccessError) as caught:
        audit_checkpoints.insert(conn, bad, bad_frontier)
    assert isinstance(caught.value.__cause__, psycopg.errors.RaiseException)
    assert message in str(caught.value.__cause__)
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org) as conn:
        audit_checkpoints.insert(conn, bad, bad_frontier)


def test_a_first_checkpoint_must_be_number_one(migrated_db: ProvisionedDatabase) -> None:
    org = migrated_db.create_org()
    append(migrated_db, org, 1)
    checkpoint, frontier = next_checkpoint(migrated_db, org, number=2, previous_head_hash="ab" * 32)
    with pytest.raises(DataAccessError), migrated_db.app.tenant(org) as conn:
        audit_checkpoints.insert(conn, checkpoint, frontier)


def test_a_stored_checkpoint_edited_by_a_superuser_is_refused_on_read(
    migrated_db: ProvisionedDatabase,
) -> None:
    # Given a stored checkpoint whose tree size a superuser rewrites behind the trigger
    org = migrated_db.create_org()
    append(migrated_db, org, 3)
    insert(migrated_db, *next_checkpoint(migrated_db, org))
    with migrated_db.owner() as conn, conn.transaction():
        conn.execute("ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only")
        conn.execute("UPDATE audit_checkpoints SET tree_size = 2 WHERE org_id = %s", (org,))
        conn.execute("ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_append_only")
    # When read / Then it no longer hashes to its head_hash
    with pytest.raises(IntegrityError, match="head_hash"), migrated_db.app.tenant(org) as conn:
        audit_checkpoints.latest(conn)


def test_orgs_due_are_those_whose_chain_grew(migrated_db: ProvisionedDatabase) -> None:
    # Given one org with events, one checkpointed, one without events
    grown, checkpointed, idle = (migrated_db.create_org(n) for n in ("grown", "done", "idle"))
    append(migrated_db, grown, 2)
    append(migrated_db, checkpointed, 2)
    insert(migrated_db, *next_checkpoint(migrated_db, checkpointed))
    with migrated_db.app.tenant(idle) as conn:
        audit.append_events(conn, idle, [])  # no head row at all

    # When asked without an organisation in scope / Then only the grown one is due
    with migrated_db.app.unscoped() as conn:
        assert audit_checkpoints.orgs_due(conn) == [grown]

    # When the checkpointed one grows / Then it is due again
    append(migrated_db, checkpointed, 1, start=2)
    with migrated_db.app.unscoped() as conn:
        assert sorted(audit_checkpoints.orgs_due(conn)) == sorted([grown, checkpointed])


def test_the_system_organisation_exists_and_takes_events(migrated_db: ProvisionedDatabase) -> None:
    # Given the migrated database / Then the reserved organisation exists and its chain works
    with migrated_db.owner() as conn:
        row = conn.execute("SELECT name FROM organisations WHERE id = %s", (SYSTEM_ORG_ID,)).fetchone()
    assert row == ("Platform (system events)",)
    append(migrated_db, SYSTEM_ORG_ID, 2)
    with migrated_db.app.unscoped() as conn:
        assert audit_checkpoints.orgs_due(conn) == [SYSTEM_ORG_ID]


def from_0003() -> list[str]:
    """The ids of 0003 and every later migration, in order."""
    later = [m.id for m in migrate.discover(MIGRATIONS_DIR) if m.version >= 3]
    assert later[0] == "0003_audit_checkpoints"
    return later


def test_migration_0003_rolls_back_and_reapplies(migrated_db: ProvisionedDatabase) -> None:
    with migrated_db.owner() as conn:
        # Given the migrated database / When 0003 and every later migration are rolled back
        later = from_0003()
        assert migrate.down(conn, MIGRATIONS_DIR, steps=len(later)) == later[::-1]
        # Then its objects and the unused system organisation are gone, 0002's remain
        names = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert "audit_checkpoints" not in names and "audit_events" in names
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'audit\\_checkpoint%'"
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM organisations WHERE id = %s", (SYSTEM_ORG_ID,)
        ).fetchone() == (0,)
        # When applied again / Then it is back
        assert migrate.up(conn, MIGRATIONS_DIR) == later
    org = migrated_db.create_org()
    append(migrated_db, org, 1)
    insert(migrated_db, *next_checkpoint(migrated_db, org))


def test_rolling_back_0003_keeps_a_system_organisation_in_use(migrated_db: ProvisionedDatabase) -> None:
    # Given events in the system organisation's chain
    append(migrated_db, SYSTEM_ORG_ID, 1)
    with migrated_db.owner() as conn:
        # When 0003 (and every later migration) is rolled back / Then the organisation they belong to stays
        later = from_0003()
        migrate.down(conn, MIGRATIONS_DIR, steps=len(later))
        assert conn.execute(
            "SELECT count(*) FROM organisations WHERE id = %s", (SYSTEM_ORG_ID,)
        ).fetchone() == (1,)
        # And reapplying does not trip over it
        assert migrate.up(conn, MIGRATIONS_DIR) == later


# ---------------------------------------------------------------------------- the checkpoint run


def run(db: ProvisionedDatabase, anchor: FakeAnchor, *, at: datetime = NOW, page_size: int = 2) -> Any:
    return checkpoint_all(db.app, SIGNER, anchor, now=at, page_size=page_size)


def test_consecutive_runs_sign_a_chain_of_checkpoints(migrated_db: ProvisionedDatabase) -> None:
    # Given an organisation with five events
    org = migrated_db.create_org()
    append(migrated_db, org, 5)
    anchor = FakeAnchor()

    # When the run goes (pages of 2 events), then seven more events arrive and it goes again
    first_run = run(migrated_db, anchor)
    append(migrated_db, org, 7, start=5)
    second_run = run(migrated_db, anchor, at=NOW + timedelta(minutes=5))

    # Then two checkpoints were signed, stored and anchored, numbered and linked
    assert [o.status for o in first_run.outcomes + second_run.outcomes] == [Status.SIGNED, Status.SIGNED]
    with migrated_db.app.tenant(org) as conn:
        stored = audit_checkpoints.list_checkpoints(conn, limit=10)
    assert stored == anchor.anchored
    first, second = stored
    assert (first.head.number, first.head.tree_size) == (1, 5)
    assert (second.head.number, second.head.tree_size) == (2, 12)
    assert first.head.previous_head_hash == ZERO_HASH
    assert second.head.previous_head_hash == head_hash(first.head)
    # And each root is RFC 6962's over all leaves so far, each last hash the chain's at that size
    leaves = all_leaf_data(migrated_db, org)
    assert first.head.root_hash == merkle.root(leaves[:5]).hex()
    assert second.head.root_hash == merkle.root(leaves).hex()
    assert first.head.last_event_hash == leaves[4].hex()
    assert second.head.last_event_hash == leaves[-1].hex()
    for checkpoint in stored:
        verify_signature(checkpoint, SIGNER.public_key)
    assert second_run.summary() == {
        "organisations": 1,
        "signed": 1,
        "up_to_date": 0,
        "chain_broken": 0,
        "failed": 0,
        "chain_broken_orgs": [],
        "failed_orgs": [],
    }

    # When nothing new arrived / Then the next run has nothing to do
    assert run(migrated_db, anchor).outcomes == []


def test_a_tampered_event_stops_signing_for_that_organisation_only(migrated_db: ProvisionedDatabase) -> None:
    # Given two checkpointed organisations that both grew since
    victim, bystander = migrated_db.create_org("victim"), migrated_db.create_org("bystander")
    for org in (victim, bystander):
        append(migrated_db, org, 3)
    anchor = FakeAnchor()
    run(migrated_db, anchor)
    for org in (victim, bystander):
        append(migrated_db, org, 4, start=3)

    # When a superuser rewrites a new event of the victim behind the trigger
    with migrated_db.owner() as conn, conn.transaction():
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        conn.execute(
            "UPDATE audit_events SET actor = 'api_key:forged' WHERE org_id = %s AND seq = 5", (victim,)
        )
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
    result = run(migrated_db, anchor)

    # Then the victim's chain is reported broken at seq 5 and not signed; the bystander is signed
    outcomes = {o.org_id: o for o in result.outcomes}
    assert outcomes[victim].status is Status.CHAIN_BROKEN
    assert (outcomes[victim].first_bad_seq, outcomes[victim].reason) == (5, "hash_mismatch")
    assert outcomes[bystander].status is Status.SIGNED
    assert result.summary()["chain_broken_orgs"] == [str(victim)]
    with migrated_db.app.tenant(victim) as conn:
        latest = audit_checkpoints.latest(conn)
    assert latest is not None and latest.head.number == 1


def test_a_truncated_tail_is_not_signed(migrated_db: ProvisionedDatabase) -> None:
    # Given a chain whose last event a superuser deleted (the head still names it)
    org = migrated_db.create_org()
    append(migrated_db, org, 4)
    with migrated_db.owner() as conn, conn.transaction():
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        conn.execute("DELETE FROM audit_events WHERE org_id = %s AND seq = 4", (org,))
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")

    # When the run goes / Then it refuses to sign the shortened chain
    [outcome] = run(migrated_db, FakeAnchor()).outcomes
    assert outcome.status is Status.CHAIN_BROKEN
    assert (outcome.first_bad_seq, outcome.reason) == (4, "truncated")


def test_an_anchor_failure_leaves_no_checkpoint(migrated_db: ProvisionedDatabase) -> None:
    # Given an organisation with events and an anchor that fails
    org = migrated_db.create_org()
    append(migrated_db, org, 3)

    # When the run goes / Then the org is reported failed and nothing was stored
    [outcome] = run(migrated_db, FakeAnchor(fail=True)).outcomes
    assert (outcome.status, outcome.reason) == (Status.FAILED, "AnchorError")
    with migrated_db.app.tenant(org) as conn:
        assert audit_checkpoints.latest(conn) is None

    # When the anchor is back / Then the next run signs checkpoint 1
    anchor = FakeAnchor()
    [outcome] = run(migrated_db, anchor).outcomes
    assert (outcome.status, outcome.number, outcome.tree_size) == (Status.SIGNED, 1, 3)
    assert len(anchor.anchored) == 1


def test_a_corrupted_stored_frontier_fails_that_organisation(migrated_db: ProvisionedDatabase) -> None:
    # Given checkpoint 1 whose stored frontier a superuser replaced (root no longer matches)
    org = migrated_db.create_org()
    append(migrated_db, org, 3)
    run(migrated_db, FakeAnchor())
    with migrated_db.owner() as conn, conn.transaction():
        conn.execute("ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only")
        conn.execute(
            "UPDATE audit_checkpoints SET frontier = ARRAY[%s, %s]::bytea[] WHERE org_id = %s",
            (b"\x01" * 32, b"\x02" * 32, org),
        )
        conn.execute("ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_append_only")
    append(migrated_db, org, 1, start=3)

    # When the run goes / Then it refuses to extend it
    [outcome] = run(migrated_db, FakeAnchor()).outcomes
    assert (outcome.status, outcome.reason) == (Status.FAILED, "IntegrityError")
