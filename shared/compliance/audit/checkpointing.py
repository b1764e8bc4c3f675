"""The scheduled checkpoint run: sign a new tree head for every organisation whose log grew.

Per organisation, in one tenant transaction:

1. load the latest checkpoint and its frontier (and check the frontier gives the signed root);
2. read the events after its ``tree_size`` up to the chain head, page by page, and *verify* them,
   continuing from the checkpoint's ``last_event_hash`` and ending exactly on the head's hash.
   A broken chain is never signed: the organisation is reported (``AuditChainBroken``), others go on;
3. extend the frontier with the new leaves, build the next :class:`TreeHead` (number + 1, linking
   the previous head hash) and sign it;
4. insert it, then anchor it (S3 Object Lock), then commit.

Why anchor inside the transaction: a failed anchor rolls the row back, so the database never holds
a checkpoint that the outside world cannot check (a *committed but unanchored* checkpoint would be
the operator vouching for itself, and the next run would build on it). The opposite, *anchored but
uncommitted* (the commit fails after the S3 write), is safe: the anchored head is a true, signed
statement about a prefix of an append-only log, so every later checkpoint is consistent with it
and it can only make a later rewrite harder to hide. The next run signs that number again with
another head (another ``issued_at``, maybe a larger tree); its object key differs by the head hash.
Verifiers must therefore treat anchored checkpoints as a set of heads that are all mutually
consistent, not as a strict one-per-number sequence.

Two concurrent runs for one organisation cannot both write a number: the second insert waits for
the first transaction and then fails on the primary key (reported as a failure for that org, retried
next run), before it anchors anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from compliance.audit.canonical import GENESIS_HASH
from compliance.audit.chain import verify_chain
from compliance.audit.checkpoint import ZERO_HASH, Signer, TreeHead, sign_head
from compliance.audit.frontier import Frontier
from compliance.audit.merkle import leaf_hash
from compliance.db import audit, audit_checkpoints
from compliance.errors import DomainError, IntegrityError
from compliance.observability import logger, metrics

if TYPE_CHECKING:
    import psycopg

    from compliance.audit.anchor import Anchor
    from compliance.audit.events import StoredAuditEvent
    from compliance.db.connection import Database

__all__ = ["CheckpointRunResult", "OrgOutcome", "Status", "checkpoint_all", "checkpoint_org"]

DEFAULT_PAGE_SIZE = 1000


class Status(StrEnum):
    SIGNED = "signed"
    UP_TO_DATE = "up_to_date"
    """Nothing new since the latest checkpoint (another run got there first)."""
    CHAIN_BROKEN = "chain_broken"
    """Verification of the new events failed: not signed."""
    FAILED = "failed"
    """Database, KMS, anchor or stored-checkpoint failure: nothing written, retried next run."""


@dataclass(frozen=True)
class OrgOutcome:
    """What the run did for one organisation. No personal data: ids, numbers, reasons."""

    org_id: UUID
    status: Status
    number: int | None = None
    tree_size: int | None = None
    anchor_key: str | None = None
    first_bad_seq: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CheckpointRunResult:
    outcomes: list[OrgOutcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is status)

    def summary(self) -> dict[str, Any]:
        """Counts per status, and the organisations that need attention (ids only)."""
        return {
            "organisations": len(self.outcomes),
            **{status.value: self.count(status) for status in Status},
            "chain_broken_orgs": [str(o.org_id) for o in self.outcomes if o.status is Status.CHAIN_BROKEN],
            "failed_orgs": [str(o.org_id) for o in self.outcomes if o.status is Status.FAILED],
        }


def checkpoint_all(
    db: Database, signer: Signer, anchor: Anchor, *, now: datetime, page_size: int = DEFAULT_PAGE_SIZE
) -> CheckpointRunResult:
    """Checkpoint every organisation that is due. One organisation's failure does not stop the
    others; failing to find the due organisations raises (``DataAccessError``)."""
    with db.unscoped() as conn:
        due = audit_checkpoints.orgs_due(conn)
    outcomes = [checkpoint_org(db, org_id, signer, anchor, now=now, page_size=page_size) for org_id in due]
    return CheckpointRunResult(outcomes)


def checkpoint_org(
    db: Database,
    org_id: UUID,
    signer: Signer,
    anchor: Anchor,
    *,
    now: datetime,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> OrgOutcome:
    """Sign, store and anchor the next checkpoint of ``org_id`` if its log grew (never raises)."""
    try:
        with db.tenant(org_id) as conn:
            outcome = _checkpoint_in_scope(conn, org_id, signer, anchor, now=now, page_size=page_size)
    except Exception as exc:  # one organisation must not stop the run
        detail = exc.detail if isinstance(exc, DomainError) else "unexpected error"
        logger.error(
            "audit checkpoint failed",
            extra={"org_id": str(org_id), "error_type": type(exc).__name__, "detail": detail},
        )
        metrics.add_metric(name="CheckpointFailed", unit="Count", value=1)
        return OrgOutcome(org_id, Status.FAILED, reason=type(exc).__name__)
    if outcome.status is Status.SIGNED:
        metrics.add_metric(name="CheckpointsSigned", unit="Count", value=1)
        logger.info(
            "audit checkpoint signed",
            extra={"org_id": str(org_id), "number": outcome.number, "tree_size": outcome.tree_size},
        )
    elif outcome.status is Status.CHAIN_BROKEN:
        metrics.add_metric(name="AuditChainBroken", unit="Count", value=1)
        logger.error(
            "audit chain broken: checkpoint not signed",
            extra={"org_id": str(org_id), "first_bad_seq": outcome.first_bad_seq, "reason": outcome.reason},
        )
    return outcome


def _checkpoint_in_scope(
    conn: psycopg.Connection[Any],
    org_id: UUID,
    signer: Signer,
    anchor: Anchor,
    *,
    now: datetime,
    page_size: int,
) -> OrgOutcome:
    previous = audit_checkpoints.latest(conn)
    if previous is None:
        frontier, start_hash, number, previous_hash = Frontier.empty(), GENESIS_HASH, 1, ZERO_HASH
    else:
        frontier = Frontier.of(
            previous.head.tree_size, audit_checkpoints.frontier(conn, previous.head.number)
        )
        if frontier.root().hex() != previous.head.root_hash:
            raise IntegrityError(
                f"stored frontier of checkpoint {previous.head.number} disagrees with its root"
            )
        start_hash = previous.head.last_event_hash
        number, previous_hash = previous.head.number + 1, previous.head_hash

    chain_head = audit.head(conn)
    if chain_head is None or chain_head.seq <= frontier.size:
        return OrgOutcome(org_id, Status.UP_TO_DATE, tree_size=frontier.size)

    # Verify from the checkpointed position to the head (whose hash must be reached exactly:
    # a truncated or rewritten tail fails as TRUNCATED / CHECKPOINT_MISMATCH), one page at a time,
    # extending the frontier with each page once the verifier has gone through it.
    pages = _VerifiedPages(conn, frontier, chain_head.seq, page_size)
    verdict = verify_chain(
        pages.events(),
        start_seq=frontier.size + 1,
        start_prev_hash=start_hash,
        org_id=org_id,
        checkpoint=chain_head,
    )
    if not verdict.valid:
        reason = str(verdict.reason)
        return OrgOutcome(org_id, Status.CHAIN_BROKEN, first_bad_seq=verdict.first_bad_seq, reason=reason)
    frontier = pages.frontier
    if frontier.size != chain_head.seq:  # pragma: no cover - verify_chain checked the head was reached
        raise IntegrityError("the verified events do not reach the chain head")

    head = TreeHead(
        org_id=org_id,
        number=number,
        tree_size=frontier.size,
        root_hash=frontier.root().hex(),
        last_event_hash=chain_head.event_hash,
        issued_at=now,
        previous_head_hash=previous_hash,
        key_id=signer.key_id,
    )
    checkpoint = sign_head(head, signer)
    audit_checkpoints.insert(conn, checkpoint, list(frontier.hashes))
    key = anchor.anchor(checkpoint)  # inside the transaction: a failure rolls the row back
    return OrgOutcome(org_id, Status.SIGNED, number=number, tree_size=head.tree_size, anchor_key=key)


class _VerifiedPages:
    """Streams the events ``frontier.size < seq <= upto_seq`` in pages of ``page_size`` (bounded
    memory) and extends :attr:`frontier` with a page's leaves when the consumer asks for the next
    page, i.e. only after the verifier has accepted every event of that page."""

    def __init__(
        self, conn: psycopg.Connection[Any], frontier: Frontier, upto_seq: int, page_size: int
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self._conn = conn
        self._upto_seq = upto_seq
        self._page_size = page_size
        self.frontier = frontier

    def events(self) -> Iterator[StoredAuditEvent]:
        after_seq = self.frontier.size
        while after_seq < self._upto_seq:
            page = audit.read_event_range(
                self._conn, after_seq=after_seq, upto_seq=self._upto_seq, limit=self._page_size
            )
            yield from page
            self.frontier = self.frontier.extended(leaf_hash(bytes.fromhex(e.event_hash)) for e in page)
            if len(page) < self._page_size:
                return
            after_seq = page[-1].seq
