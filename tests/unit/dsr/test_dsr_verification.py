"""compliance.dsr.verification: codes, keyed hashes, attempts, lockout, expiry, secrecy."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.dsr.verification import (
    ALPHABET,
    CODE_LENGTH,
    MAX_ATTEMPTS,
    AlreadyVerifiedError,
    AttemptResult,
    Outcome,
    VerificationExpiredError,
    VerificationLockedError,
    VerificationPolicy,
    VerificationState,
    WrongCodeError,
    attempt,
    code_hash,
    display,
    generate_code,
    issue,
    normalise,
    raise_for,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
REQUEST = uuid.UUID("7b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3")
OTHER_REQUEST = uuid.UUID("0c1d2e3f-4051-4b6c-9d7e-8f90a1b2c3d4")
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CODE = "7K3M9Q2X4T"
WRONG = "7K3M9Q2X4V"


def fresh(policy: VerificationPolicy | None = None) -> VerificationState:
    return issue(REQUEST, KEY, NOW, policy=policy, code=CODE).state


def wrong_times(state: VerificationState, times: int) -> tuple[VerificationState, AttemptResult]:
    result = AttemptResult(Outcome.WRONG, state.attempts_left)
    for _ in range(times):
        state, result = attempt(state, WRONG, KEY, NOW)
    return state, result


# ---------------------------------------------------------------------------- codes


def test_generated_codes_are_10_crockford_characters_and_differ() -> None:
    codes = {generate_code() for _ in range(200)}
    assert len(codes) == 200  # 50 bits: a repeat in 200 draws would be a broken generator
    for code in codes:
        assert len(code) == CODE_LENGTH
        assert set(code) <= set(ALPHABET)
    assert not set("ILOU") & set(ALPHABET)
    assert len(ALPHABET) == 32


def test_display_groups_the_code_and_the_grouped_form_verifies() -> None:
    assert display(CODE) == "7K3M9-Q2X4T"
    _, result = attempt(fresh(), display(CODE), KEY, NOW)
    assert result.outcome is Outcome.VERIFIED


@pytest.mark.parametrize("typed", ["7k3m9q2x4t", " 7K3M9-Q2X4T ", "7K3M 9Q2X 4T", "7k3m9-q2x4t"])
def test_case_hyphens_and_spaces_do_not_matter(typed: str) -> None:
    _, result = attempt(fresh(), typed, KEY, NOW)
    assert result.outcome is Outcome.VERIFIED


def test_lookalike_letters_read_as_digits() -> None:
    # Given a code with 0 and 1 in it
    state = issue(REQUEST, KEY, NOW, code="10ABCDEF01").state
    # When the subject types O for 0 and I or L for 1, Then it still matches
    assert normalise("lOabcdefOI") == "10ABCDEF01"
    assert attempt(state, "lOabcdefOI", KEY, NOW)[1].outcome is Outcome.VERIFIED


@settings(max_examples=100)
@given(code=st.text(alphabet=ALPHABET, min_size=CODE_LENGTH, max_size=CODE_LENGTH))
def test_every_code_verifies_for_its_own_request_only(code: str) -> None:
    state = issue(REQUEST, KEY, NOW, code=code).state
    assert attempt(state, code, KEY, NOW)[1].outcome is Outcome.VERIFIED
    assert code_hash(KEY, OTHER_REQUEST, code) != state.code_hash


# ---------------------------------------------------------------------------- the stored hash


def test_only_a_keyed_hash_bound_to_the_request_is_stored() -> None:
    state = fresh()
    assert len(state.code_hash) == 32
    assert CODE.encode() not in state.code_hash
    # The same code hashes differently under another key or for another request
    assert code_hash(OTHER_KEY, REQUEST, CODE) != state.code_hash
    assert code_hash(KEY, OTHER_REQUEST, CODE) != state.code_hash
    # And the state issued for one request does not verify under another key
    assert attempt(state, CODE, OTHER_KEY, NOW)[1].outcome is Outcome.WRONG


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        issue(REQUEST, b"k" * 31, NOW)


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a spy on hmac.compare_digest
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    state = fresh()

    # When a wrong and a right code are tried
    attempt(state, WRONG, KEY, NOW)
    attempt(state, CODE, KEY, NOW)

    # Then both went through compare_digest against the stored hash
    assert len(calls) == 2
    assert all(state.code_hash in pair for pair in calls)


def test_the_code_never_appears_in_repr_or_str() -> None:
    issued = issue(REQUEST, KEY, NOW, code=CODE)
    for text in (repr(issued), str(issued), repr(issued.state), str(issued.state)):
        assert CODE not in text
        assert issued.state.code_hash.hex() not in text
        assert repr(issued.state.code_hash) not in text
    assert str(REQUEST) in repr(issued.state)  # the state is still identifiable in a log


# ---------------------------------------------------------------------------- attempts and lockout


def test_a_right_code_verifies_once() -> None:
    state, result = attempt(fresh(), CODE, KEY, NOW)
    assert result == AttemptResult(Outcome.VERIFIED, MAX_ATTEMPTS)
    assert state.verified_at == NOW

    again, second = attempt(state, CODE, KEY, NOW + timedelta(minutes=1))
    assert second.outcome is Outcome.ALREADY_VERIFIED
    assert again == state


def test_wrong_codes_count_down() -> None:
    state = fresh()
    for left in range(MAX_ATTEMPTS - 1, 0, -1):
        state, result = attempt(state, WRONG, KEY, NOW)
        assert result == AttemptResult(Outcome.WRONG, left)
        assert state.failed_attempts == MAX_ATTEMPTS - left


def test_the_fifth_wrong_code_locks_and_a_right_code_is_then_refused() -> None:
    # Given four wrong codes
    state, result = wrong_times(fresh(), 4)
    assert result == AttemptResult(Outcome.WRONG, 1)

    # When the fifth is wrong, Then the code locks
    state, result = attempt(state, WRONG, KEY, NOW)
    assert result == AttemptResult(Outcome.LOCKED, 0)
    assert state.locked

    # And the right code afterwards is refused, without changing the state
    after, result = attempt(state, CODE, KEY, NOW)
    assert result == AttemptResult(Outcome.LOCKED, 0)
    assert after == state
    assert after.verified_at is None


def test_a_right_code_after_wrong_ones_within_the_limit_verifies() -> None:
    state, _ = wrong_times(fresh(), 4)
    state, result = attempt(state, CODE, KEY, NOW)
    assert result == AttemptResult(Outcome.VERIFIED, 1)
    assert state.verified_at == NOW


def test_malformed_input_counts_as_a_wrong_code() -> None:
    state, result = attempt(fresh(), "", KEY, NOW)
    assert result.outcome is Outcome.WRONG
    assert state.failed_attempts == 1


def test_the_attempt_limit_follows_the_policy() -> None:
    state, result = wrong_times(fresh(VerificationPolicy(max_attempts=2)), 1)
    assert result == AttemptResult(Outcome.WRONG, 1)
    state, result = attempt(state, WRONG, KEY, NOW)
    assert result == AttemptResult(Outcome.LOCKED, 0)
    assert state.locked


def test_states_are_immutable() -> None:
    state = fresh()
    with pytest.raises(AttributeError):
        state.failed_attempts = 0  # type: ignore[misc]
    attempt(state, WRONG, KEY, NOW)
    assert state.failed_attempts == 0


# ---------------------------------------------------------------------------- expiry


def test_a_code_expires_after_the_configured_days() -> None:
    state = fresh(VerificationPolicy(ttl_days=3))
    assert state.expires_at == NOW + timedelta(days=3)

    # Just before: still good
    _, result = attempt(state, CODE, KEY, NOW + timedelta(days=3) - timedelta(microseconds=1))
    assert result.outcome is Outcome.VERIFIED

    # At and after expiry: the right code is refused and nothing is counted
    for later in (NOW + timedelta(days=3), NOW + timedelta(days=30)):
        after, result = attempt(state, CODE, KEY, later)
        assert result.outcome is Outcome.EXPIRED
        assert after == state
    assert attempt(state, WRONG, KEY, NOW + timedelta(days=4))[0].failed_attempts == 0


def test_a_verified_request_does_not_expire() -> None:
    state, _ = attempt(fresh(), CODE, KEY, NOW)
    _, result = attempt(state, CODE, KEY, NOW + timedelta(days=365))
    assert result.outcome is Outcome.ALREADY_VERIFIED


def test_policy_limits() -> None:
    assert VerificationPolicy().ttl_days == 7
    assert VerificationPolicy().max_attempts == MAX_ATTEMPTS == 5
    for bad in ({"ttl_days": 0}, {"ttl_days": 31}, {"max_attempts": 0}, {"ttl": 3}):
        with pytest.raises(ValueError):
            VerificationPolicy.model_validate(bad)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        issue(REQUEST, KEY, datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        attempt(fresh(), CODE, KEY, datetime(2026, 3, 1))


# ---------------------------------------------------------------------------- errors for the API


@pytest.mark.parametrize(
    ("result", "error", "status"),
    [
        (AttemptResult(Outcome.WRONG, 3), WrongCodeError, 403),
        (AttemptResult(Outcome.LOCKED, 0), VerificationLockedError, 403),
        (AttemptResult(Outcome.EXPIRED, 5), VerificationExpiredError, 410),
        (AttemptResult(Outcome.ALREADY_VERIFIED, 5), AlreadyVerifiedError, 409),
    ],
)
def test_failed_outcomes_raise_typed_errors(
    result: AttemptResult, error: type[Exception], status: int
) -> None:
    with pytest.raises(error) as caught:
        raise_for(result)
    assert getattr(caught.value, "status", None) == status


def test_a_wrong_code_error_carries_the_attempts_left_and_verified_raises_nothing() -> None:
    with pytest.raises(WrongCodeError) as caught:
        raise_for(AttemptResult(Outcome.WRONG, 3))
    assert caught.value.extra == {"attempts_left": 3}
    raise_for(AttemptResult(Outcome.VERIFIED, 5))
