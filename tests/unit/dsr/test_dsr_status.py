"""compliance.dsr.status: the status table, terminal and open sets, the typed refusal."""

from __future__ import annotations

import itertools

import pytest

from compliance.dsr.status import (
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    InvalidTransitionError,
    allowed_transition,
    transition,
)
from compliance.models.dsr import DsrStatus as S

ALLOWED = {
    (S.RECEIVED, S.AWAITING_VERIFICATION),
    (S.RECEIVED, S.CANCELLED),
    (S.RECEIVED, S.FAILED),
    (S.RECEIVED, S.COMPLETED),  # "no data held": nothing to verify
    (S.AWAITING_VERIFICATION, S.VERIFIED),
    (S.AWAITING_VERIFICATION, S.EXPIRED),
    (S.AWAITING_VERIFICATION, S.CANCELLED),
    (S.AWAITING_VERIFICATION, S.FAILED),
    (S.VERIFIED, S.RUNNING),
    (S.VERIFIED, S.CANCELLED),
    (S.VERIFIED, S.FAILED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
}


def test_the_table_allows_exactly_the_documented_moves() -> None:
    # Every pair of statuses, checked against the list written out by hand
    for current, target in itertools.product(S, S):
        assert allowed_transition(current, target) is ((current, target) in ALLOWED), (current, target)


def test_every_status_has_a_row_and_terminal_and_open_partition_them() -> None:
    assert set(TRANSITIONS) == set(S)
    assert {S.COMPLETED, S.FAILED, S.CANCELLED, S.EXPIRED} == TERMINAL_STATUSES
    assert {S.RECEIVED, S.AWAITING_VERIFICATION, S.VERIFIED, S.RUNNING} == OPEN_STATUSES
    assert not TERMINAL_STATUSES & OPEN_STATUSES


def test_every_open_status_can_reach_completion() -> None:
    # No open status is a dead end: from each, some path leads to completed
    reachable = {S.COMPLETED}
    changed = True
    while changed:
        changed = False
        for current, targets in TRANSITIONS.items():
            if current not in reachable and targets & reachable:
                reachable.add(current)
                changed = True
    assert reachable >= OPEN_STATUSES


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.COMPLETED, S.CANCELLED),  # cancelling a finished request
        (S.EXPIRED, S.VERIFIED),  # verifying after expiry
        (S.RECEIVED, S.RUNNING),  # skipping verification
        (S.RUNNING, S.RUNNING),  # not a move
        (S.FAILED, S.RUNNING),  # a failed request is not revived
    ],
)
def test_an_illegal_move_is_a_conflict(current: S, target: S) -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        transition(current, target)
    assert caught.value.status == 409
    assert caught.value.extra == {"current": current.value, "target": target.value}


def test_a_legal_move_returns_the_target() -> None:
    assert transition(S.VERIFIED, S.RUNNING) is S.RUNNING
