"""compliance.dsr.deadlines: calendar arithmetic, statutory rules, overrides, extension, SLA class."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from compliance.dsr.deadlines import (
    STATUTORY_RULES,
    AlreadyExtendedError,
    DeadlineConfig,
    DeadlineRule,
    ExtensionBeyondLimitError,
    ExtensionError,
    ExtensionTooLateError,
    Period,
    SlaStatus,
    add_months,
    classify,
    days_left,
    due_at,
    extend,
    latest_due_at,
    start,
)
from compliance.errors import ConflictError, ValidationFailedError
from compliance.models.dsr import Regulation

GDPR = STATUTORY_RULES[Regulation.GDPR]
CCPA = STATUTORY_RULES[Regulation.CCPA]
HIPAA = STATUTORY_RULES[Regulation.HIPAA]
LGPD = STATUTORY_RULES[Regulation.LGPD]
REASON = "Complex request across several systems"


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def last_instant(year: int, month: int, day: int) -> datetime:
    return datetime.combine(date(year, month, day), time.max, tzinfo=UTC)


# ---------------------------------------------------------------------------- month arithmetic

aware_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2400, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300)
@given(day=st.dates(min_value=date(1900, 1, 1), max_value=date(2400, 12, 31)))
def test_one_month_is_28_to_31_days_on_the_same_or_last_day(day: date) -> None:
    # When one month is added to any day
    result = add_months(day, 1)

    # Then it lands 28 to 31 days later, in the next month, on the same day-number or that month's last
    assert 28 <= (result - day).days <= 31
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == 1
    assert result.day == day.day or (result.day < day.day and (result + timedelta(days=1)).day == 1)


@settings(max_examples=300)
@given(first=aware_datetimes, second=aware_datetimes, regulation=st.sampled_from(list(Regulation)))
def test_deadlines_are_monotonic_and_never_before_receipt(
    first: datetime, second: datetime, regulation: Regulation
) -> None:
    # Given two receipts in order
    earlier, later = sorted((first, second))
    rule = STATUTORY_RULES[regulation]

    # Then the deadlines keep the order, never precede receipt, and extending never shortens
    assert due_at(earlier, rule) <= due_at(later, rule)
    assert due_at(earlier, rule) > earlier
    assert latest_due_at(earlier, rule) >= due_at(earlier, rule)


@settings(max_examples=300)
@given(received=aware_datetimes)
def test_a_gdpr_deadline_is_28_to_31_calendar_days_after_receipt_at_the_days_end(received: datetime) -> None:
    due = due_at(received, GDPR)
    assert 28 <= (due.date() - received.date()).days <= 31
    assert due.time() == time.max
    assert due.tzinfo is UTC


@settings(max_examples=200)
@given(day=st.dates(min_value=date(1900, 1, 1), max_value=date(2400, 12, 31)), months=st.integers(0, 24))
def test_adding_months_one_at_a_time_never_overtakes_adding_them_at_once(day: date, months: int) -> None:
    # Clamping can only lose days (31 Jan -> 28 Feb -> 28 Mar), which is why extensions are
    # counted from receipt rather than chained.
    stepped = day
    for _ in range(months):
        stepped = add_months(stepped, 1)
    assert stepped <= add_months(day, months)


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        (date(2026, 1, 31), date(2026, 2, 28)),  # no 31 February: the month's last day
        (date(2028, 1, 31), date(2028, 2, 29)),  # leap year
        (date(2028, 1, 29), date(2028, 2, 29)),
        (date(2028, 2, 29), date(2028, 3, 29)),  # from a leap day: same day-number
        (date(2026, 3, 31), date(2026, 4, 30)),
        (date(2026, 12, 31), date(2027, 1, 31)),  # across the year
        (date(2026, 1, 15), date(2026, 2, 15)),
        (date(2100, 1, 31), date(2100, 2, 28)),  # 2100 is not a leap year
        (date(2000, 1, 31), date(2000, 2, 29)),  # 2000 is
    ],
)
def test_one_gdpr_month_ends_on_the_expected_day(received: date, expected: date) -> None:
    # Given a request received at any time of day (the day of receipt is not counted)
    for hour in (0, 23):
        got = due_at(datetime.combine(received, time(hour), tzinfo=UTC), GDPR)
        # Then the period ends with the last instant of the expected day
        assert got == last_instant(expected.year, expected.month, expected.day)


def test_add_months_crosses_years_both_ways_and_keeps_zero() -> None:
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)
    assert add_months(date(2026, 5, 31), 0) == date(2026, 5, 31)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)


def test_day_periods_do_not_count_the_day_of_receipt() -> None:
    # CCPA: 45 days; received 1 January -> ends with 15 February
    assert due_at(at(2026, 1, 1, 0), CCPA) == last_instant(2026, 2, 15)
    # HIPAA: 30 days across the leap day
    assert due_at(at(2028, 2, 10), HIPAA) == last_instant(2028, 3, 11)


def test_the_deadline_uses_the_utc_date_of_receipt() -> None:
    # Given 23:30 on 31 January in New York, which is 1 February in UTC
    received = datetime(2026, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))

    # Then the period runs from the UTC date, and the deadline is in UTC
    assert due_at(received, GDPR) == last_instant(2026, 3, 1)
    assert start(received, GDPR).received_at.tzinfo is UTC


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(datetime(2026, 1, 1), GDPR)
    with pytest.raises(ValueError, match="timezone-aware"):
        days_left(at(2026, 1, 1), datetime(2026, 1, 1))


# ---------------------------------------------------------------------------- rules and overrides


def test_statutory_rules_cover_every_regulation_with_the_documented_periods() -> None:
    assert set(STATUTORY_RULES) == set(Regulation)
    assert DeadlineRule(base=Period.months(1), extension=Period.months(2)) == GDPR
    assert STATUTORY_RULES[Regulation.UK_GDPR] == GDPR
    assert DeadlineRule(base=Period.days(45), extension=Period.days(45)) == CCPA
    assert DeadlineRule(base=Period.days(30), extension=Period.days(30)) == HIPAA
    assert LGPD.extension.count == 0


def test_an_override_replaces_only_what_it_names() -> None:
    # Given a deployment answering GDPR requests within 20 days, extension unchanged
    config = DeadlineConfig.model_validate({"overrides": {"gdpr": {"base": {"count": 20, "unit": "days"}}}})

    # Then the GDPR rule changes, its extension and every other regulation stay statutory
    assert config.rule_for(Regulation.GDPR) == DeadlineRule(base=Period.days(20), extension=Period.months(2))
    assert config.rule_for(Regulation.CCPA) == CCPA
    assert due_at(at(2026, 1, 1), config.rule_for(Regulation.GDPR)) == last_instant(2026, 1, 21)
    # And an extension of zero is an override too (not "unset")
    none = DeadlineConfig.model_validate({"overrides": {"ccpa": {"extension": {"count": 0, "unit": "days"}}}})
    assert none.rule_for(Regulation.CCPA).extension.count == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"gdpr": {"base": {"count": 0, "unit": "days"}}},  # no period at all
        {"gdpr": {"base": {"count": 13, "unit": "months"}}},
        {"ccpa": {"base": {"count": 367, "unit": "days"}}},
        {"ccpa": {"extension": {"count": -1, "unit": "days"}}},
        {"ccpa": {"base": {"count": 10, "unit": "weeks"}}},
        {"unknown_law": {"base": {"count": 10, "unit": "days"}}},
        {"ccpa": {"basis": {"count": 10, "unit": "days"}}},  # typo: extra keys are refused
    ],
)
def test_invalid_overrides_fail_validation(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DeadlineConfig.model_validate({"overrides": overrides})


# ---------------------------------------------------------------------------- extension


def test_a_gdpr_extension_from_31_january_ends_on_30_april_not_28() -> None:
    # Given a request received on 31 January (first deadline 28 February)
    clock = start(at(2026, 1, 31), GDPR)
    assert clock.due_at == last_instant(2026, 2, 28)

    # When it is extended by the full two months
    extended = extend(clock, GDPR, REASON, now=at(2026, 2, 10))

    # Then three months run from receipt (30 April), not two from 28 February (28 April)
    assert extended.due_at == last_instant(2026, 4, 30)
    assert extended.extended
    assert extended.extension_reason == REASON
    assert extended.received_at == clock.received_at


def test_an_extension_from_a_leap_day() -> None:
    clock = start(at(2028, 2, 29), GDPR)
    assert clock.due_at == last_instant(2028, 3, 29)
    assert extend(clock, GDPR, REASON, now=at(2028, 3, 1)).due_at == last_instant(2028, 5, 29)


def test_a_ccpa_extension_adds_45_days() -> None:
    clock = start(at(2026, 1, 1), CCPA)
    assert extend(clock, CCPA, REASON, now=at(2026, 1, 2)).due_at == last_instant(2026, 4, 1)


def test_a_shorter_extension_may_be_asked_for_and_in_another_unit() -> None:
    clock = start(at(2026, 1, 31), GDPR)
    # 30 days from the first deadline (28 Feb) -> 30 March, inside the three-month limit
    extended = extend(clock, GDPR, REASON, now=at(2026, 2, 1), by=Period.days(30))
    assert extended.due_at == last_instant(2026, 3, 30)
    assert extend(clock, GDPR, REASON, now=at(2026, 2, 1), by=Period.months(1)).due_at == last_instant(
        2026, 3, 31
    )


def test_extending_twice_is_a_conflict() -> None:
    # Given an extended request
    extended = extend(start(at(2026, 1, 1), GDPR), GDPR, REASON, now=at(2026, 1, 2), by=Period.days(5))

    # When it is extended again, even by a day within the limit, Then 409
    with pytest.raises(AlreadyExtendedError) as caught:
        extend(extended, GDPR, REASON, now=at(2026, 1, 3), by=Period.days(1))
    assert caught.value.status == 409
    assert isinstance(caught.value, ExtensionError)
    assert isinstance(caught.value, ConflictError)


@pytest.mark.parametrize(
    ("rule", "by"),
    [
        (GDPR, Period.months(3)),
        (GDPR, Period.days(93)),  # 1 Jan + 1 month = 1 Feb; +93 days = 5 May > 1 April
        (CCPA, Period.days(46)),
        (HIPAA, Period.months(2)),
    ],
)
def test_an_extension_beyond_the_regulations_limit_is_a_conflict(rule: DeadlineRule, by: Period) -> None:
    clock = start(at(2026, 1, 1), rule)
    with pytest.raises(ExtensionBeyondLimitError) as caught:
        extend(clock, rule, REASON, now=at(2026, 1, 2), by=by)
    assert caught.value.status == 409


def test_a_regulation_without_extension_refuses_any() -> None:
    with pytest.raises(ExtensionBeyondLimitError):
        extend(start(at(2026, 1, 1), LGPD), LGPD, REASON, now=at(2026, 1, 2))


def test_the_full_extension_is_exactly_at_the_limit() -> None:
    for rule in STATUTORY_RULES.values():
        if rule.extension.count:
            clock = start(at(2026, 1, 31), rule)
            assert extend(clock, rule, REASON, now=at(2026, 2, 1)).due_at == latest_due_at(
                clock.received_at, rule
            )


def test_an_extension_after_the_deadline_is_too_late_but_on_the_last_day_it_is_not() -> None:
    clock = start(at(2026, 1, 31), GDPR)
    assert extend(clock, GDPR, REASON, now=last_instant(2026, 2, 28)).extended
    with pytest.raises(ExtensionTooLateError):
        extend(clock, GDPR, REASON, now=at(2026, 3, 1, 0))


@pytest.mark.parametrize("reason", ["", "too short", " " * 20 + "short" + " " * 20, "x" * 501])
def test_the_reason_must_be_10_to_500_characters(reason: str) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        extend(start(at(2026, 1, 1), GDPR), GDPR, reason, now=at(2026, 1, 2))
    assert caught.value.status == 400


def test_reason_bounds_are_inclusive_and_stripped() -> None:
    clock = start(at(2026, 1, 1), GDPR)
    assert extend(clock, GDPR, "  " + "x" * 10 + "  ", now=at(2026, 1, 2)).extension_reason == "x" * 10
    assert extend(clock, GDPR, "x" * 500, now=at(2026, 1, 2)).extended


def test_an_empty_extension_is_invalid() -> None:
    with pytest.raises(ValidationFailedError):
        extend(start(at(2026, 1, 1), CCPA), CCPA, REASON, now=at(2026, 1, 2), by=Period.days(0))


def test_an_extension_never_shortens_a_deadline_set_under_a_longer_configuration() -> None:
    # Given a request whose deadline (1 May) was set when the deployment allowed 120 days
    long_rule = DeadlineRule(base=Period.days(120), extension=Period.days(45))
    clock = start(at(2026, 1, 1), long_rule)

    # When it is extended under today's statutory CCPA rule (45 + at most 45)
    extended = extend(clock, CCPA, REASON, now=at(2026, 1, 2), by=Period.days(45))

    # Then the deadline stays where it was (not 1 April), never earlier
    assert extended.due_at == clock.due_at == last_instant(2026, 5, 1)


# ---------------------------------------------------------------------------- days left and SLA


def test_days_left_counts_utc_dates() -> None:
    due = last_instant(2026, 2, 28)
    assert days_left(due, at(2026, 2, 1)) == 27
    assert days_left(due, at(2026, 2, 28, 0)) == 0
    assert days_left(due, last_instant(2026, 2, 28)) == 0
    assert days_left(due, at(2026, 3, 1, 0)) == -1
    assert days_left(due, at(2026, 3, 10)) == -10


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (at(2026, 2, 20), SlaStatus.OK),  # 8 days left
        (at(2026, 2, 21), SlaStatus.DUE_SOON),  # 7 days left
        (at(2026, 2, 28, 0), SlaStatus.DUE_SOON),  # last day
        (last_instant(2026, 2, 28), SlaStatus.DUE_SOON),
        (at(2026, 3, 1, 0), SlaStatus.OVERDUE),
        (at(2027, 1, 1), SlaStatus.OVERDUE),
    ],
)
def test_sla_classification(now: datetime, expected: SlaStatus) -> None:
    assert classify(last_instant(2026, 2, 28), now, due_soon_days=7) is expected


def test_due_soon_of_zero_days_means_the_last_day_only_and_negative_is_refused() -> None:
    due = last_instant(2026, 2, 28)
    assert classify(due, at(2026, 2, 27), due_soon_days=0) is SlaStatus.OK
    assert classify(due, at(2026, 2, 28), due_soon_days=0) is SlaStatus.DUE_SOON
    with pytest.raises(ValueError, match="negative"):
        classify(due, at(2026, 2, 1), due_soon_days=-1)
