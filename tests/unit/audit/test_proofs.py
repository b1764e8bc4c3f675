"""Inclusion and consistency proofs against signed checkpoints (compliance.audit.proofs).

Every proof is checked with the production verifier and with the independent RFC 9162 verifier of
test_merkle_independent (written from the RFC text), using only what the response carries.
"""

from __future__ import annotations

import pytest

from compliance.audit import merkle, proofs
from compliance.audit.checkpoint import LocalSigner, verify_signature
from compliance.audit.events import StoredAuditEvent
from compliance.errors import ConflictError, IntegrityError, NotFoundError, ValidationFailedError
from tests.unit.audit.audit_log_fakes import (
    FakeLog,
    fake_db,
    make_events,
    principal,
    sign_checkpoints,
)
from tests.unit.audit.test_merkle_independent import ref_leaf, ref_verify_consistency, ref_verify_inclusion

SIGNER = LocalSigner.generate()
EVENTS = make_events(13)
SIZES = [0, 1, 2, 5, 8, 13]
CHECKPOINTS = sign_checkpoints(EVENTS, SIZES, SIGNER)


@pytest.fixture
def log(monkeypatch: pytest.MonkeyPatch) -> FakeLog:
    return FakeLog(EVENTS, CHECKPOINTS).install(monkeypatch)


@pytest.mark.parametrize("seq", range(1, 14))
def test_inclusion_proof_of_every_event_verifies_independently(log: FakeLog, seq: int) -> None:
    event = EVENTS[seq - 1]
    # When the proof of an event against the latest checkpoint is asked for
    proof = proofs.inclusion_proof(fake_db(), principal(), event.event_id)
    # Then it names the latest checkpoint, whose signature verifies
    assert proof.checkpoint == CHECKPOINTS[-1] and proof.tree_size == 13 and proof.leaf_index == seq - 1
    verify_signature(proof.checkpoint, SIGNER.public_key)
    # And the leaf is SHA-256(0x00 || event_hash bytes), the path leads to the signed root
    assert bytes.fromhex(proof.leaf_hash) == ref_leaf(bytes.fromhex(event.event_hash))
    path = [bytes.fromhex(node) for node in proof.audit_path]
    root = bytes.fromhex(proof.checkpoint.head.root_hash)
    assert ref_verify_inclusion(seq - 1, 13, bytes.fromhex(proof.leaf_hash), path, root)
    assert merkle.verify_inclusion(bytes.fromhex(proof.leaf_hash), seq - 1, 13, path, root)


def test_inclusion_proof_against_a_given_checkpoint(log: FakeLog) -> None:
    proof = proofs.inclusion_proof(fake_db(), principal(), EVENTS[3].event_id, checkpoint_number=4)
    assert proof.tree_size == 5 and proof.checkpoint.head.number == 4
    path = [bytes.fromhex(node) for node in proof.audit_path]
    assert ref_verify_inclusion(3, 5, bytes.fromhex(proof.leaf_hash), path, bytes.fromhex(proof.root_hash))


def test_event_newer_than_the_checkpoint_is_409(log: FakeLog) -> None:
    with pytest.raises(ConflictError, match="not yet checkpointed"):
        proofs.inclusion_proof(fake_db(), principal(), EVENTS[5].event_id, checkpoint_number=4)


def test_no_checkpoint_yet_is_409(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLog(EVENTS, []).install(monkeypatch)
    with pytest.raises(ConflictError):
        proofs.inclusion_proof(fake_db(), principal(), EVENTS[0].event_id)


def test_unknown_event_or_checkpoint_is_404(log: FakeLog) -> None:
    with pytest.raises(NotFoundError):
        proofs.inclusion_proof(fake_db(), principal(), make_events(1)[0].event_id)
    with pytest.raises(NotFoundError):
        proofs.inclusion_proof(fake_db(), principal(), EVENTS[0].event_id, checkpoint_number=99)
    with pytest.raises(NotFoundError):
        proofs.consistency_proof(fake_db(), principal(), 2, 99)


@pytest.mark.parametrize("first", range(1, len(SIZES) + 1))
@pytest.mark.parametrize("second", range(1, len(SIZES) + 1))
def test_consistency_proof_between_every_pair_verifies_independently(
    log: FakeLog, first: int, second: int
) -> None:
    if first > second:
        # a > b is a bad range
        with pytest.raises(ValidationFailedError):
            proofs.consistency_proof(fake_db(), principal(), first, second)
        return
    out = proofs.consistency_proof(fake_db(), principal(), first, second)
    old, new = out.from_checkpoint.head, out.to_checkpoint.head
    assert (old.number, new.number) == (first, second)
    path = [bytes.fromhex(node) for node in out.proof]
    old_root, new_root = bytes.fromhex(old.root_hash), bytes.fromhex(new.root_hash)
    assert merkle.verify_consistency(old.tree_size, new.tree_size, old_root, new_root, path)
    if 0 < old.tree_size < new.tree_size:
        assert ref_verify_consistency(old.tree_size, new.tree_size, old_root, new_root, path)
    # And the response names the two checkpoints under "from" and "to"
    assert set(out.model_dump(mode="json")) == {"from", "to", "proof"}


def test_stored_events_that_differ_from_the_checkpoint_are_an_integrity_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a log whose event 3 was rewritten (and re-hashed) after checkpoint 6 was signed
    rewritten = [*EVENTS]
    rewritten[2] = StoredAuditEvent.model_validate({**EVENTS[2].model_dump(), "event_hash": "ab" * 32})
    FakeLog(rewritten, CHECKPOINTS).install(monkeypatch)
    # Then no proof is handed out
    with pytest.raises(IntegrityError):
        proofs.inclusion_proof(fake_db(), principal(), EVENTS[0].event_id)
    with pytest.raises(IntegrityError):
        proofs.consistency_proof(fake_db(), principal(), 3, 6)


def test_deleted_events_below_the_checkpoint_are_an_integrity_error(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLog(EVENTS[:10], CHECKPOINTS).install(monkeypatch)
    with pytest.raises(IntegrityError):
        proofs.inclusion_proof(fake_db(), principal(), EVENTS[0].event_id)
