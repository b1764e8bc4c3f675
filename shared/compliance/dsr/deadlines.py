"""Statutory deadlines of data subject requests: due date, one extension, days left, SLA class.

Periods are counted as the EU rule on periods, dates and time limits does (Regulation (EEC,
Euratom) No 1182/71, Art. 3), which also suits the day-counted laws: the day of receipt is not
counted (3(1)); a period of days ends with the last hour of its last day (3(2)(b)); a period of
months ends with the last hour of the day with the same number in the last month, or of that
month's last day when it has no such day (3(2)(c)): received 31 January, one month -> 28/29
February 23:59:59.999999. All dates are UTC dates. The rollover of a deadline falling on a
weekend or public holiday to the next working day (3(4)) is deliberately not applied: it would
only ever lengthen the period, and an answer sent earlier is never late.

Every function takes ``now`` explicitly: the module reads no clock and is deterministic.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from compliance.errors import ConflictError, ValidationFailedError
from compliance.models.dsr import MAX_REASON_CHARS, MIN_REASON_CHARS, Regulation

MAX_PERIOD_DAYS = 366
MAX_PERIOD_MONTHS = 12


class PeriodUnit(StrEnum):
    DAYS = "days"
    MONTHS = "months"


class Period(BaseModel):
    """A length of time as the law states it: calendar days or calendar months."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(ge=0, le=MAX_PERIOD_DAYS)
    unit: PeriodUnit

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.unit is PeriodUnit.MONTHS and self.count > MAX_PERIOD_MONTHS:
            raise ValueError(f"a period of months is at most {MAX_PERIOD_MONTHS}")
        return self

    @classmethod
    def days(cls, count: int) -> Period:
        return cls(count=count, unit=PeriodUnit.DAYS)

    @classmethod
    def months(cls, count: int) -> Period:
        return cls(count=count, unit=PeriodUnit.MONTHS)


class DeadlineRule(BaseModel):
    """The answer period of one regulation and the most it may be extended by (0: no extension)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: Period
    extension: Period

    @model_validator(mode="after")
    def _base_not_empty(self) -> Self:
        if self.base.count < 1:
            raise ValueError("the base period must be at least one day or month")
        return self


STATUTORY_RULES: Mapping[Regulation, DeadlineRule] = {
    # GDPR Art. 12(3): without undue delay and in any event within one month of receipt; may be
    # extended by two further months where necessary, informing the subject of the extension and
    # its reasons within one month of receipt.
    Regulation.GDPR: DeadlineRule(base=Period.months(1), extension=Period.months(2)),
    # UK GDPR Art. 12(3) (retained, as amended by the Data Protection Act 2018): the same periods.
    Regulation.UK_GDPR: DeadlineRule(base=Period.months(1), extension=Period.months(2)),
    # CCPA, Cal. Civ. Code 1798.130(a)(2)(A): 45 days from receipt, extendable once by an additional
    # 45 days when reasonably necessary, with notice within the first 45 days.
    Regulation.CCPA: DeadlineRule(base=Period.days(45), extension=Period.days(45)),
    # HIPAA right of access, 45 CFR 164.524(b)(2): 30 days, one extension of at most 30 days with a
    # written statement of the reasons within the first 30 days.
    Regulation.HIPAA: DeadlineRule(base=Period.days(30), extension=Period.days(30)),
    # PIPEDA s. 8(3) and 8(4)(a): 30 days, extendable by a maximum of 30 further days, with notice
    # within the first 30 days. (8(4)(b), longer for conversion to an alternative format, is not
    # modelled: an override can set it.)
    Regulation.PIPEDA: DeadlineRule(base=Period.days(30), extension=Period.days(30)),
    # LGPD (Lei 13.709/2018) Art. 19(II): a clear and complete declaration within 15 days of the
    # request; the law provides no extension.
    Regulation.LGPD: DeadlineRule(base=Period.days(15), extension=Period.days(0)),
}


class RuleOverride(BaseModel):
    """A deployment's own period for one regulation (e.g. an internal target shorter than the law)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: Period | None = None
    extension: Period | None = None


class DeadlineConfig(BaseModel):
    """Per-regulation overrides of :data:`STATUTORY_RULES`; part of the DSR functions' settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overrides: dict[Regulation, RuleOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _overrides_make_valid_rules(self) -> Self:
        for regulation in self.overrides:
            self.rule_for(regulation)  # raises (a ValueError) on a base period of zero
        return self

    def rule_for(self, regulation: Regulation) -> DeadlineRule:
        statutory = STATUTORY_RULES[regulation]
        override = self.overrides.get(regulation)
        if override is None:
            return statutory
        return DeadlineRule(
            base=override.base or statutory.base,
            extension=override.extension if override.extension is not None else statutory.extension,
        )


# ---------------------------------------------------------------------------- errors


class ExtensionError(ConflictError):
    """An extension the request's state or its regulation does not allow (409)."""

    title = "Extension not allowed"


class AlreadyExtendedError(ExtensionError):
    """Each law allows one extension; the request already had it."""


class ExtensionBeyondLimitError(ExtensionError):
    """The extension asked for would end after the regulation's longest period (or it has none)."""


class ExtensionTooLateError(ExtensionError):
    """The deadline has passed: the law requires the subject to be told within the first period."""


# ---------------------------------------------------------------------------- arithmetic


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the last day of a shorter month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month_index = divmod(index, 12)
    month = month_index + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def period_end(start: date, period: Period) -> date:
    """The last day of ``period`` counted from the day after ``start`` (Art. 3(1) and 3(2))."""
    if period.unit is PeriodUnit.MONTHS:
        return add_months(start, period.count)
    return start + timedelta(days=period.count)


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is a programming error (its zone is a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(UTC)


def end_of_day(day: date) -> datetime:
    return datetime.combine(day, time.max, tzinfo=UTC)


def due_at(received_at: datetime, rule: DeadlineRule, extension: Period | None = None) -> datetime:
    """The deadline of a request received at ``received_at``, optionally extended by ``extension``.

    An extension in the base period's unit is counted from the day of receipt (one month + two
    months = three months from receipt), not chained onto the first deadline: chaining would lose
    the days a short month clamped (31 Jan -> 28 Feb -> 28 Apr instead of 30 Apr).
    """
    received_day = as_utc(received_at).date()
    if extension is not None and extension.unit is rule.base.unit:
        combined = Period(count=rule.base.count + extension.count, unit=rule.base.unit)
        return end_of_day(period_end(received_day, combined))
    last_day = period_end(received_day, rule.base)
    if extension is not None:
        last_day = period_end(last_day, extension)
    return end_of_day(last_day)


def latest_due_at(received_at: datetime, rule: DeadlineRule) -> datetime:
    """The longest deadline the regulation allows: the base period plus its full extension."""
    return due_at(received_at, rule, rule.extension)


# ---------------------------------------------------------------------------- the clock


@dataclass(frozen=True)
class Deadline:
    """A request's clock, as its row stores it."""

    received_at: datetime
    due_at: datetime
    extended: bool = False
    extension_reason: str | None = None


def start(received_at: datetime, rule: DeadlineRule) -> Deadline:
    """The clock of a request received at ``received_at``."""
    return Deadline(received_at=as_utc(received_at), due_at=due_at(received_at, rule))


def extend(
    deadline: Deadline, rule: DeadlineRule, reason: str, now: datetime, by: Period | None = None
) -> Deadline:
    """The clock extended once by ``by`` (default: the regulation's full extension).

    Raises :class:`ValidationFailedError` (400) for a reason outside 10-500 characters or an empty
    ``by``; :class:`AlreadyExtendedError`, :class:`ExtensionTooLateError` or
    :class:`ExtensionBeyondLimitError` (409) when the law does not allow it.
    """
    reason = reason.strip()
    if not MIN_REASON_CHARS <= len(reason) <= MAX_REASON_CHARS:
        raise ValidationFailedError(
            f"reason must be {MIN_REASON_CHARS} to {MAX_REASON_CHARS} characters", field="reason"
        )
    if by is not None and by.count < 1:
        raise ValidationFailedError("an extension must be at least one day or month", field="days")
    if deadline.extended:
        raise AlreadyExtendedError("the request was already extended; the law allows one extension")
    if as_utc(now) > deadline.due_at:
        raise ExtensionTooLateError(
            "the deadline has passed; an extension must be notified within the first period",
            due_at=deadline.due_at.isoformat(),
        )
    if rule.extension.count == 0:
        raise ExtensionBeyondLimitError("this regulation allows no extension", limit_days=0)
    limit = latest_due_at(deadline.received_at, rule)
    new_due = due_at(deadline.received_at, rule, by or rule.extension)
    if new_due > limit:
        raise ExtensionBeyondLimitError(
            "the extension would end after the regulation's longest period", latest=limit.isoformat()
        )
    # A deadline set under an earlier (longer) configuration is never shortened by extending it.
    return Deadline(
        received_at=deadline.received_at,
        due_at=max(new_due, deadline.due_at),
        extended=True,
        extension_reason=reason,
    )


def days_left(due: datetime, now: datetime) -> int:
    """Whole days from today to the deadline's day (UTC dates): 0 on the last day, -1 the day after."""
    return (as_utc(due).date() - as_utc(now).date()).days


class SlaStatus(StrEnum):
    OK = "ok"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


def classify(due: datetime, now: datetime, due_soon_days: int) -> SlaStatus:
    """The SLA monitor's class of an open request: overdue once the deadline has passed, due soon
    when at most ``due_soon_days`` days are left (0: only on the last day)."""
    if due_soon_days < 0:
        raise ValueError("due_soon_days must not be negative")
    if as_utc(now) > as_utc(due):
        return SlaStatus.OVERDUE
    if days_left(due, now) <= due_soon_days:
        return SlaStatus.DUE_SOON
    return SlaStatus.OK
