"""Alarms to the SNS topic: any message in a dead-letter queue, and a backlog on a work queue."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants as c


class Observability(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, alarm_topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        self._action = actions.SnsAction(alarm_topic)
        self.alarms: list[cloudwatch.Alarm] = []

    def alarm_on_dead_letters(self, construct_id: str, queue: sqs.IQueue) -> cloudwatch.Alarm:
        """A dead letter is a record that failed every retry: someone must look at it."""
        return self._alarm(
            construct_id,
            queue.metric_approximate_number_of_messages_visible(
                period=c.ALARM_EVALUATION_PERIOD, statistic="Maximum"
            ),
            threshold=0,
            description=f"Messages in dead-letter queue {construct_id}: records failed every retry.",
        )

    def alarm_on_backlog(self, construct_id: str, queue: sqs.IQueue) -> cloudwatch.Alarm:
        """The oldest message is older than the ingest latency budget: the consumer is stuck or too slow."""
        return self._alarm(
            construct_id,
            queue.metric_approximate_age_of_oldest_message(
                period=c.ALARM_EVALUATION_PERIOD, statistic="Maximum"
            ),
            threshold=c.INGEST_OLDEST_MESSAGE_ALARM_AGE.to_seconds(),
            description=f"Backlog on queue {construct_id}: oldest message older than the ingest budget.",
        )

    def alarm_on_app_metric(self, construct_id: str, metric_name: str, description: str) -> cloudwatch.Alarm:
        """Any datapoint of a count metric the functions emit (Powertools EMF: namespace + service)."""
        metric = cloudwatch.Metric(
            namespace=c.POWERTOOLS_METRICS_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"service": c.POWERTOOLS_SERVICE_NAME},
            period=c.ALARM_EVALUATION_PERIOD,
            statistic="Sum",
        )
        return self._alarm(construct_id, metric, threshold=0, description=description)

    def alarm_on_errors(
        self, construct_id: str, function: lambda_.IFunction, description: str
    ) -> cloudwatch.Alarm:
        """Any failed invocation of a function no caller sees fail (scheduled, asynchronous)."""
        metric = function.metric_errors(period=c.ALARM_EVALUATION_PERIOD, statistic="Sum")
        return self._alarm(construct_id, metric, threshold=0, description=description)

    def _alarm(
        self, construct_id: str, metric: cloudwatch.Metric, *, threshold: float, description: str
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        self.alarms.append(alarm)
        return alarm

    def alarm_on_queues(
        self, *, work_queues: Sequence[sqs.IQueue], dead_letter_queues: Sequence[sqs.IQueue]
    ) -> None:
        for index, queue in enumerate(work_queues):
            self.alarm_on_backlog(f"Backlog{index}", queue)
        for index, queue in enumerate(dead_letter_queues):
            self.alarm_on_dead_letters(f"DeadLetters{index}", queue)
