"""Inclusion and consistency proofs (RFC 6962 / RFC 9162) against signed checkpoints.

An inclusion proof shows that an event is leaf ``seq - 1`` of the tree a checkpoint signed; a
consistency proof that checkpoint ``b``'s tree extends checkpoint ``a``'s. Both are built over the
stored leaf hashes (``SHA-256(0x00 || bytes(event_hash))``) with :mod:`compliance.audit.merkle`
and checked against the checkpoint's root before they are returned: a proof that does not verify
means the stored events no longer match what was signed, which is an integrity failure (500),
not something to hand out. The checkpoint's signature is for the client to check (its public key
is at ``GET /v1/audit/public-key``).
"""

from __future__ import annotations

from uuid import UUID

from compliance.audit import merkle
from compliance.audit.checkpoint import SignedCheckpoint
from compliance.db import audit_checkpoints, audit_query
from compliance.db.connection import Database
from compliance.errors import ConflictError, IntegrityError, NotFoundError, ValidationFailedError
from compliance.models.audit import ConsistencyProofOut, InclusionProofOut
from compliance.models.auth import Principal


def inclusion_proof(
    db: Database, principal: Principal, event_id: UUID, *, checkpoint_number: int | None = None
) -> InclusionProofOut:
    """Proof of ``event_id`` in checkpoint ``checkpoint_number`` (default: the latest).

    404 for an unknown event or checkpoint; 409 when the event is newer than the checkpoint.
    """
    with db.tenant(principal.org_id) as conn:
        event = audit_query.get_event(conn, event_id)
        if event is None:
            raise NotFoundError("no such audit event")
        if checkpoint_number is None:
            checkpoint = audit_checkpoints.latest(conn)
        else:
            checkpoint = audit_checkpoints.get(conn, checkpoint_number)
            if checkpoint is None:
                raise NotFoundError("no such audit checkpoint")
        if checkpoint is None or event.seq > checkpoint.head.tree_size:
            raise ConflictError("the event is not yet checkpointed; retry after the next checkpoint")
        leaves = audit_query.leaf_hashes(conn, checkpoint.head.tree_size)
    tree_size = checkpoint.head.tree_size
    _check_complete(leaves, tree_size)
    index = event.seq - 1
    path = merkle.inclusion_proof(leaves, index, tree_size)
    leaf = merkle.leaf_hash(bytes.fromhex(event.event_hash))
    if leaves[index] != leaf or not merkle.verify_inclusion(
        leaf, index, tree_size, path, merkle.from_hex(checkpoint.head.root_hash)
    ):
        raise IntegrityError("the stored events do not match the signed checkpoint")
    return InclusionProofOut(
        event_id=event.event_id,
        seq=event.seq,
        leaf_index=index,
        leaf_hash=merkle.to_hex(leaf),
        tree_size=tree_size,
        root_hash=checkpoint.head.root_hash,
        audit_path=[merkle.to_hex(node) for node in path],
        checkpoint=checkpoint,
    )


def consistency_proof(db: Database, principal: Principal, first: int, second: int) -> ConsistencyProofOut:
    """Proof that checkpoint ``second``'s tree extends checkpoint ``first``'s (``first <= second``)."""
    if first > second:
        raise ValidationFailedError("the first checkpoint must not be newer than the second")
    with db.tenant(principal.org_id) as conn:
        old = audit_checkpoints.get(conn, first)
        new = old if second == first else audit_checkpoints.get(conn, second)
        if old is None or new is None:
            raise NotFoundError("no such audit checkpoint")
        leaves = audit_query.leaf_hashes(conn, new.head.tree_size)
    _check_complete(leaves, new.head.tree_size)
    old_size, new_size = old.head.tree_size, new.head.tree_size
    proof = merkle.consistency_proof(leaves, old_size, new_size)
    if not _roots_match(leaves, old, new) or not merkle.verify_consistency(
        old_size, new_size, merkle.from_hex(old.head.root_hash), merkle.from_hex(new.head.root_hash), proof
    ):
        raise IntegrityError("the stored events do not match the signed checkpoints")
    return ConsistencyProofOut.model_validate(
        {"from": old, "to": new, "proof": [merkle.to_hex(node) for node in proof]}
    )


def _check_complete(leaves: list[bytes], tree_size: int) -> None:
    if len(leaves) != tree_size:  # events deleted below a signed tree size
        raise IntegrityError("the stored log has fewer events than the signed checkpoint covers")


def _roots_match(leaves: list[bytes], old: SignedCheckpoint, new: SignedCheckpoint) -> bool:
    # verify_consistency alone accepts any old root when old_size is 0 or equal to new_size;
    # recomputing both roots also catches stored events that differ from what was signed.
    return all(
        merkle.to_hex(merkle.root_from_leaf_hashes(leaves[: cp.head.tree_size])) == cp.head.root_hash
        for cp in (old, new)
    )
