"""The legal moves of a request's status: the request row mirrors its execution through these."""

from __future__ import annotations

from collections.abc import Mapping

from compliance.errors import ConflictError
from compliance.models.dsr import DsrStatus

S = DsrStatus

# Every status a request may move to from each status. Terminal statuses have none: a failed or
# expired request is answered by a new request, never revived (its deadline and audit trail are
# its own). ``running -> cancelled`` mirrors a stopped execution (the erasure runs in one
# transaction, so stopping it leaves nothing half-erased). ``received -> completed`` is the answer
# "no data held" for a subject the org holds nothing of: nothing is disclosed or changed, so there
# is nothing to verify; acting on data (``running``) always needs verification. A status never
# "moves" to itself: a repeated update is the caller's no-op, not a transition.
TRANSITIONS: Mapping[DsrStatus, frozenset[DsrStatus]] = {
    S.RECEIVED: frozenset({S.AWAITING_VERIFICATION, S.COMPLETED, S.CANCELLED, S.FAILED}),
    S.AWAITING_VERIFICATION: frozenset({S.VERIFIED, S.EXPIRED, S.CANCELLED, S.FAILED}),
    S.VERIFIED: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
}

TERMINAL_STATUSES = frozenset(status for status, targets in TRANSITIONS.items() if not targets)
# A second request of the same type for the same subject is refused (409) while one is open.
OPEN_STATUSES = frozenset(DsrStatus) - TERMINAL_STATUSES


class InvalidTransitionError(ConflictError):
    """The request cannot move to that status from where it is (e.g. cancelling a completed one)."""

    title = "Invalid status change"


def allowed_transition(current: DsrStatus, target: DsrStatus) -> bool:
    return target in TRANSITIONS[current]


def transition(current: DsrStatus, target: DsrStatus) -> DsrStatus:
    """``target`` if the move is legal, else :class:`InvalidTransitionError` (409)."""
    if not allowed_transition(current, target):
        raise InvalidTransitionError(
            f"a {current.value} request cannot become {target.value}",
            current=current.value,
            target=target.value,
        )
    return target
