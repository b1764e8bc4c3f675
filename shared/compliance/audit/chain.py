"""Per-organisation hash chain of audit events: linking and verification.

Each organisation has one chain. Event ``seq`` n (1, 2, 3... without gaps) carries
``prev_hash`` = ``event_hash`` of event n-1 (:data:`GENESIS_HASH` for n = 1) and
``event_hash`` = SHA-256 of its canonical form (:mod:`compliance.audit.canonical`), so changing,
deleting, inserting or reordering any stored event breaks the chain at that position.

What the chain alone cannot show
--------------------------------
* **Tail truncation.** Dropping the newest events leaves a valid shorter chain. It is caught by
  comparing with a checkpoint (the Merkle tree size and root published out of the database's
  reach): pass the checkpoint's last ``(seq, event_hash)`` as ``checkpoint=`` and
  :func:`verify_chain` reports :attr:`FailureReason.TRUNCATED` if the chain ends before it.
* **Wholesale rewriting.** The chain has no secret: whoever can write the table can recompute
  every hash from the first changed event on. Only a checkpoint taken before the rewrite shows
  it (:attr:`FailureReason.CHECKPOINT_MISMATCH`, reported at the checkpoint's ``seq``, since the
  chain cannot tell which earlier event was changed).

Idempotency (``event_id``) is enforced by storage before :func:`link`: linking only assigns
positions and hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from hashlib import sha256
from typing import NamedTuple
from uuid import UUID

from compliance.audit.canonical import (
    GENESIS_HASH,
    _fast_canonical_bytes,
    canonical_bytes,
)
from compliance.audit.events import MAX_SEQ, AuditEventIn, StoredAuditEvent

__all__ = [
    "GENESIS_HASH",
    "ChainHead",
    "ChainVerdict",
    "FailureReason",
    "link",
    "merkle_leaf_data",
    "merkle_leaves",
    "verify_chain",
]

_HEX = frozenset("0123456789abcdef")


class ChainHead(NamedTuple):
    """A position in a chain: ``seq`` and the ``event_hash`` of the event at that ``seq``."""

    seq: int
    event_hash: str


class FailureReason(StrEnum):
    HASH_MISMATCH = "hash_mismatch"
    """The event's content (or its ``event_hash``) was modified."""
    PREV_HASH_MISMATCH = "prev_hash_mismatch"
    """The link to the previous event is broken: an event was deleted, inserted or reordered."""
    SEQ_GAP = "seq_gap"
    """A higher ``seq`` than expected: events deleted, or a later event moved earlier."""
    SEQ_DUPLICATE = "seq_duplicate"
    """The same ``seq`` as the previous event."""
    SEQ_OUT_OF_ORDER = "seq_out_of_order"
    """A lower ``seq`` than the previous event's: events reordered or re-inserted."""
    ORG_MISMATCH = "org_mismatch"
    """An event of another organisation inside this organisation's chain."""
    TRUNCATED = "truncated"
    """The chain ends before the checkpoint's ``seq``."""
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    """The event at the checkpoint's ``seq`` has another hash than the checkpoint recorded."""


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """Outcome of :func:`verify_chain`.

    ``checked`` counts the events that verified (all of them when valid). ``first_bad_seq`` is
    the sequence number the chain expected at the first failing event, i.e. ``start_seq`` plus
    that event's 0-based position in the stream (for ``TRUNCATED``: the first missing ``seq``;
    for ``CHECKPOINT_MISMATCH``: the checkpoint's ``seq``). ``found_seq`` is the ``seq`` the
    failing event carries (``None`` for ``TRUNCATED``). ``head`` is the last verified position,
    from which a later run can continue (``start_seq=head.seq + 1, start_prev_hash=head.event_hash``).
    """

    valid: bool
    checked: int
    head: ChainHead | None
    first_bad_seq: int | None = None
    found_seq: int | None = None
    reason: FailureReason | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.valid:
            return f"valid ({self.checked} events)"
        return f"invalid at seq {self.first_bad_seq}: {self.reason} ({self.detail})"


def _check_head(seq: int, event_hash: str, what: str) -> None:
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"{what} seq must be between 0 and 2**53-1")
    if len(event_hash) != 64 or not _HEX.issuperset(event_hash):
        raise ValueError(f"{what} hash must be 64 lowercase hex characters")
    if seq == 0 and event_hash != GENESIS_HASH:
        raise ValueError(f"{what} at seq 0 must be the genesis hash")


def link(
    events_in: Sequence[AuditEventIn],
    prev: tuple[int, str] | None,
    *,
    canonical_out: list[bytes] | None = None,
) -> list[StoredAuditEvent]:
    """Assign ``seq``, ``prev_hash`` and ``event_hash`` to ``events_in``, in order.

    ``prev`` is the current head of the organisation's chain, ``(seq, event_hash)``, or ``None``
    for an empty chain (the first event gets ``seq`` 1 and :data:`GENESIS_HASH`). All events must
    belong to one organisation and have distinct ``event_id`` values. ``canonical_out``, when
    given, receives each event's canonical bytes (what was hashed), in order.
    """
    seq, prev_hash = (0, GENESIS_HASH) if prev is None else prev
    _check_head(seq, prev_hash, "prev")
    orgs = {event.org_id for event in events_in}
    if len(orgs) > 1:
        raise ValueError("all events linked together must belong to one organisation")
    if len({event.event_id for event in events_in}) != len(events_in):
        raise ValueError("duplicate event_id in one link() call")
    if seq + len(events_in) > MAX_SEQ:
        raise ValueError("chain would exceed the maximum seq")

    fields = tuple(AuditEventIn.model_fields)
    linked: list[StoredAuditEvent] = []
    for event in events_in:
        seq += 1
        canonical = canonical_bytes(event, seq=seq, prev_hash=prev_hash)
        event_hash = sha256(canonical).hexdigest()
        if canonical_out is not None:
            canonical_out.append(canonical)
        # No second validation: an AuditEventIn instance was validated when it was made (and is
        # frozen), and the three chain fields are produced right here. Validating again cost
        # ~100 us per event, four times the hash itself.
        values = {name: getattr(event, name) for name in fields}
        linked.append(
            StoredAuditEvent.model_construct(**values, seq=seq, prev_hash=prev_hash, event_hash=event_hash)
        )
        prev_hash = event_hash
    return linked


def verify_chain(
    stored: Iterable[StoredAuditEvent],
    *,
    start_seq: int = 1,
    start_prev_hash: str = GENESIS_HASH,
    org_id: UUID | None = None,
    checkpoint: tuple[int, str] | None = None,
) -> ChainVerdict:
    """Walk ``stored`` (in ``seq`` order, as read from storage) and check every link.

    Streams in O(1) memory and stops at the first failure. ``start_seq``/``start_prev_hash``
    verify a later segment (the head of the part before it, e.g. from a previous verdict).
    ``org_id`` pins the organisation (default: that of the first event). ``checkpoint`` is an
    externally anchored ``(seq, event_hash)``: the chain must reach that ``seq`` with that hash.

    Checks per event, in order: organisation, ``seq``, ``prev_hash``, ``event_hash``, checkpoint.
    """
    if start_seq < 1:
        raise ValueError("start_seq must be >= 1")
    _check_head(start_seq - 1, start_prev_hash, "start")
    anchor: ChainHead | None = None
    if checkpoint is not None:
        anchor = ChainHead(*checkpoint)
        _check_head(anchor.seq, anchor.event_hash, "checkpoint")
        if anchor.seq < start_seq - 1:
            raise ValueError("checkpoint lies before the verified range; verify from an earlier start_seq")

    expected_seq = start_seq
    prev_hash = start_prev_hash
    head = ChainHead(start_seq - 1, start_prev_hash) if start_seq > 1 else None
    checked = 0

    def fail(reason: FailureReason, detail: str, *, at: int, found: int | None) -> ChainVerdict:
        return ChainVerdict(False, checked, head, at, found, reason, detail)

    if anchor is not None and anchor.seq == start_seq - 1 and anchor.event_hash != start_prev_hash:
        return fail(
            FailureReason.CHECKPOINT_MISMATCH,
            "start_prev_hash differs from checkpoint",
            at=anchor.seq,
            found=None,
        )

    for event in stored:
        if org_id is None:
            org_id = event.org_id
        found = event.seq
        if event.org_id != org_id:
            return fail(
                FailureReason.ORG_MISMATCH,
                f"org {event.org_id} in chain of {org_id}",
                at=expected_seq,
                found=found,
            )
        if found != expected_seq:
            if found > expected_seq:
                reason = FailureReason.SEQ_GAP
            elif found == expected_seq - 1:
                reason = FailureReason.SEQ_DUPLICATE
            else:
                reason = FailureReason.SEQ_OUT_OF_ORDER
            return fail(reason, f"expected seq {expected_seq}, found {found}", at=expected_seq, found=found)
        if event.prev_hash != prev_hash:
            return fail(
                FailureReason.PREV_HASH_MISMATCH,
                "prev_hash is not the previous event's hash (deletion, insertion or reorder)",
                at=expected_seq,
                found=found,
            )
        # recompute_hash(event), inlined: this line is most of a verification's time.
        payload = _fast_canonical_bytes(event, found, event.prev_hash)
        if payload is None:
            payload = canonical_bytes(event, seq=found, prev_hash=event.prev_hash)
        if sha256(payload).hexdigest() != event.event_hash:
            return fail(
                FailureReason.HASH_MISMATCH,
                "event_hash does not match the content (event modified)",
                at=expected_seq,
                found=found,
            )
        if anchor is not None and found == anchor.seq and event.event_hash != anchor.event_hash:
            return fail(
                FailureReason.CHECKPOINT_MISMATCH,
                "chain rewritten at or before this seq: hash differs from checkpoint",
                at=expected_seq,
                found=found,
            )
        prev_hash = event.event_hash
        head = ChainHead(found, prev_hash)
        expected_seq += 1
        checked += 1

    if anchor is not None and expected_seq <= anchor.seq:
        return fail(
            FailureReason.TRUNCATED,
            f"chain ends at seq {expected_seq - 1}, checkpoint covers {anchor.seq}",
            at=expected_seq,
            found=None,
        )
    return ChainVerdict(True, checked, head)


def merkle_leaf_data(event: StoredAuditEvent) -> bytes:
    """The Merkle tree leaf data of an event: the 32 raw bytes of its ``event_hash``.

    (The tree hashes it as an RFC 6962 leaf, ``SHA-256(0x00 || leaf_data)``.)
    """
    return bytes.fromhex(event.event_hash)


def merkle_leaves(events: Iterable[StoredAuditEvent]) -> Iterator[bytes]:
    """:func:`merkle_leaf_data` of each event, lazily, in order."""
    return (merkle_leaf_data(event) for event in events)
