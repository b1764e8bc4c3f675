"""EventBridge schedules: ``rate()``/``cron()`` rules of the template fired by a local clock.

Each firing builds the real scheduled-event payload and delivers it to the rule's targets (Lambda
functions in-process, SQS queues, SNS topics, Step Functions state machines and event buses in
moto), honouring ``Input``, ``InputPath`` and simple ``InputTransformer`` settings. ``fire()`` fires
a rule now, synchronously, and reports what each target did.

Cron follows EventBridge's six fields (minutes hours day-of-month month day-of-week year, UTC,
day-of-week 1-7 = SUN-SAT); ``L``, ``W`` and ``#`` are not supported (the rule is logged and skipped).
"""

from __future__ import annotations

import heapq
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from compliance_tools.local.lambdas import InvocationResult
from compliance_tools.local.motoserver import moto_session
from compliance_tools.local.provision import RuleSpec

logger = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_MONTHS = {
    name: index + 1
    for index, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    )
}
_DAYS = {name: index + 1 for index, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


class ScheduleError(ValueError):
    """A schedule expression the local scheduler cannot run."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    period: timedelta | None = None
    fields: tuple[frozenset[int] | None, ...] = ()  # minute, hour, dom, month, dow, year (None = any)

    def next_after(self, moment: datetime) -> datetime:
        if self.period is not None:
            return moment + self.period
        minutes, hours, doms, months, dows, years = self.fields
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        for _ in range(366 * 5):
            if self._day_matches(day, doms, months, dows, years):
                for hour in sorted(hours) if hours is not None else range(24):
                    for minute in sorted(minutes) if minutes is not None else range(60):
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise ScheduleError(f"{self.expression} never fires in the next five years")

    @staticmethod
    def _day_matches(
        day: date,
        doms: frozenset[int] | None,
        months: frozenset[int] | None,
        dows: frozenset[int] | None,
        years: frozenset[int] | None,
    ) -> bool:
        aws_dow = (day.weekday() + 1) % 7 + 1  # Monday=0 in Python; SUN=1 in EventBridge
        return (
            (years is None or day.year in years)
            and (months is None or day.month in months)
            and (doms is None or day.day in doms)
            and (dows is None or aws_dow in dows)
        )


def parse_schedule(expression: str) -> Schedule:
    expression = expression.strip()
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        if value < 1:
            raise ScheduleError(f"{expression}: the rate must be positive")
        return Schedule(expression, period=timedelta(**{f"{unit}s": value}))
    cron = _CRON.match(expression)
    if not cron:
        raise ScheduleError(f"{expression!r} is neither rate() nor cron()")
    parts = cron.group(1).split()
    if len(parts) != 6:
        raise ScheduleError(f"{expression}: cron() takes six fields")
    ranges = [(0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (1, 7, _DAYS), (1970, 2199, {})]
    fields = tuple(
        _field(part, low, high, names, expression)
        for part, (low, high, names) in zip(parts, ranges, strict=True)
    )
    return Schedule(expression, fields=fields)


def _field(text: str, low: int, high: int, names: dict[str, int], expression: str) -> frozenset[int] | None:
    if text in {"*", "?"}:
        return None
    if any(marker in re.sub("[A-Z]{3}", "", text.upper()) for marker in ("L", "W", "#")):
        raise ScheduleError(f"{expression}: L, W and # are not supported locally")
    values: set[int] = set()
    for item in text.split(","):
        body, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            first, last = low, high
        elif "-" in body:
            first_text, last_text = body.split("-", 1)
            first, last = _value(first_text, names, expression), _value(last_text, names, expression)
        else:
            first = _value(body, names, expression)
            last = high if step_text else first
        if not low <= first <= high or not low <= last <= high:
            raise ScheduleError(f"{expression}: {item} is out of range {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int], expression: str) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not upper.isdigit():
        raise ScheduleError(f"{expression}: {text!r} is not supported locally")
    return int(upper)


def scheduled_event(
    rule: RuleSpec, account: str, region: str, when: datetime | None = None
) -> dict[str, Any]:
    """The payload EventBridge sends for a scheduled rule."""
    moment = (when or datetime.now(UTC)).replace(microsecond=0)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule.arn],
        "detail": {},
    }


def _json_path(document: Any, path: str) -> Any:
    """The ``$.a.b`` subset of JSONPath that EventBridge input paths use in practice."""
    if path in {"$", ""}:
        return document
    value = document
    for part in path.removeprefix("$.").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return _json_path(event, str(target["InputPath"]))
    transformer = target.get("InputTransformer")
    if transformer:
        text = str(transformer.get("InputTemplate", ""))
        for name, path in transformer.get("InputPathsMap", {}).items():
            value = _json_path(event, str(path))
            # A placeholder inside quotes takes the raw string; elsewhere its JSON.
            text = text.replace(f'"<{name}>"', json.dumps(value))
            text = text.replace(f"<{name}>", value if isinstance(value, str) else json.dumps(value))
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return event


class TargetDispatcher:
    """Delivers an event to EventBridge targets."""

    def __init__(
        self,
        *,
        invoke: Callable[[str, Any], InvocationResult],
        invoke_async: Callable[[str, Any], Future[InvocationResult]],
        endpoint_url: str,
        region: str,
    ) -> None:
        self.invoke = invoke
        self.invoke_async = invoke_async
        session = moto_session(region)
        self._clients: dict[str, Any] = {
            service: session.client(service, endpoint_url=endpoint_url)
            for service in ("sqs", "sns", "stepfunctions", "events")
        }

    def deliver(self, rule: RuleSpec, event: dict[str, Any], *, wait: bool) -> list[dict[str, Any]]:
        reports = []
        for target in rule.targets:
            arn = str(target.get("Arn", ""))
            report: dict[str, Any] = {"target": target.get("Id"), "arn": arn}
            try:
                report |= self._deliver_one(arn, target, target_input(target, event), wait=wait)
            except Exception as exc:
                logger.exception("rule %s: target %s failed", rule.name, target.get("Id"))
                report |= {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            reports.append(report)
        return reports

    def _deliver_one(self, arn: str, target: dict[str, Any], payload: Any, *, wait: bool) -> dict[str, Any]:
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        body = payload if isinstance(payload, str) else json.dumps(payload)
        if service == "lambda":
            if not wait:
                self.invoke_async(arn, payload)
                return {"status": "queued"}
            result = self.invoke(arn, payload)
            if result.ok:
                return {"status": "ok", "result": result.payload}
            return {"status": "error", "error": result.error}
        if service == "sqs":
            sqs = self._clients["sqs"]
            url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]
            send: dict[str, Any] = {"QueueUrl": url, "MessageBody": body}
            group = target.get("SqsParameters", {}).get("MessageGroupId")
            if group:
                send |= {"MessageGroupId": group, "MessageDeduplicationId": str(uuid.uuid4())}
            return {"status": "ok", "messageId": sqs.send_message(**send)["MessageId"]}
        if service == "sns":
            message_id = self._clients["sns"].publish(TopicArn=arn, Message=body)["MessageId"]
            return {"status": "ok", "messageId": message_id}
        if service == "states":
            execution = self._clients["stepfunctions"].start_execution(stateMachineArn=arn, input=body)
            return {"status": "ok", "executionArn": execution["executionArn"]}
        if service == "events" and ":event-bus/" in arn:
            entry = payload if isinstance(payload, dict) else {}
            self._clients["events"].put_events(
                Entries=[
                    {
                        "EventBusName": arn,
                        "Source": str(entry.get("source", "aws.events")),
                        "DetailType": str(entry.get("detail-type", "Scheduled Event")),
                        "Detail": json.dumps(entry.get("detail", {})),
                    }
                ]
            )
            return {"status": "ok"}
        return {"status": "unsupported", "error": f"target {arn} is not delivered locally"}


class Scheduler:
    """Fires the template's scheduled rules on time, on its own thread."""

    def __init__(
        self, rules: list[RuleSpec], dispatcher: TargetDispatcher, *, account: str, region: str
    ) -> None:
        self.dispatcher = dispatcher
        self.account = account
        self.region = region
        self.rules = {rule.logical_id: rule for rule in rules}
        self.schedules: dict[str, Schedule] = {}
        for rule in rules:
            if rule.schedule is None:
                continue
            try:
                self.schedules[rule.logical_id] = parse_schedule(rule.schedule)
            except ScheduleError as exc:
                logger.warning("rule %s is not scheduled locally: %s", rule.logical_id, exc)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired: list[tuple[str, datetime]] = []

    def find(self, name: str) -> RuleSpec:
        """A rule by logical id, rule name or ARN."""
        for rule in self.rules.values():
            if name in {rule.logical_id, rule.name, rule.arn}:
                return rule
        known = ", ".join(sorted(self.rules)) or "none"
        raise KeyError(f"no rule {name!r} in the template (rules: {known})")

    def fire(self, name: str, *, wait: bool = True) -> list[dict[str, Any]]:
        """Fire a rule now (also disabled or pattern-only rules), as its schedule would."""
        rule = self.find(name)
        logger.info("firing rule %s", rule.name)
        self.fired.append((rule.logical_id, datetime.now(UTC)))
        return self.dispatcher.deliver(rule, scheduled_event(rule, self.account, self.region), wait=wait)

    def start(self) -> None:
        if not any(self.rules[logical_id].enabled for logical_id in self.schedules):
            return
        self._thread = threading.Thread(target=self._run, name="eventbridge-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        now = datetime.now(UTC)
        queue: list[tuple[datetime, str]] = []
        for logical_id, schedule in self.schedules.items():
            if self.rules[logical_id].enabled:
                heapq.heappush(queue, (schedule.next_after(now), logical_id))
                logger.info("rule %s (%s) fires next at %s", logical_id, schedule.expression, queue[0][0])
        while queue and not self._stop.is_set():
            when, logical_id = queue[0]
            delay = (when - datetime.now(UTC)).total_seconds()
            if delay > 0:
                self._stop.wait(min(delay, 60.0))
                continue
            heapq.heappop(queue)
            try:
                self.fire(logical_id, wait=False)
            except Exception:
                logger.exception("rule %s failed to fire", logical_id)
            heapq.heappush(queue, (self.schedules[logical_id].next_after(when), logical_id))
