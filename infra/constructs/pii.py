"""PII scanning: the POST /v1/pii/scan function (no database; publishes its audit events), and the
daily PII sweep (reads samples of the columns the data catalog says hold no personal data)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import constants as c
from infra.constructs.audit import Audit
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.python_function import PythonFunction


class Pii(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: Network,
        database: Database,
        audit: Audit,
        key: kms.IKey,
        layers: Sequence[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        # In the VPC like every function (egress to AWS endpoints only), without database access:
        # the scan reads and stores nothing, it only sends its api.request events to the audit queue.
        self.api = PythonFunction(
            self,
            "Api",
            spec=c.PII_API_FN,
            layers=layers,
            vpc=network.vpc,
            security_groups=[network.security_group(self, "ApiSecurityGroup", "PII scan API function")],
            key=key,
            environment=dict(audit.publish_environment),
        )
        audit.allow_publish(self.api)

        # The sweep reads through the proxy as the application role (row-level security per org) and
        # publishes one audit event per org. Nothing else: it never decrypts a field (encrypted columns
        # are not swept, so no field key), and it writes no object.
        self.sweep = PythonFunction(
            self,
            "Sweep",
            spec=c.PII_SWEEP_FN,
            layers=layers,
            vpc=network.vpc,
            security_groups=[database.client_security_group],
            key=key,
            environment={
                **database.proxy_environment,
                **audit.publish_environment,
                "PII_SWEEP_ROWS_PER_COLUMN": str(c.PII_SWEEP_ROWS_PER_COLUMN),
                "PII_SWEEP_COLUMN_BYTES": str(c.PII_SWEEP_COLUMN_BYTES),
                "PII_SWEEP_ORG_BYTES": str(c.PII_SWEEP_ORG_BYTES),
            },
        )
        database.grant_proxy_connect(self.sweep)
        audit.allow_publish(self.sweep)
        self.sweep_schedule = events.Rule(
            self,
            "SweepSchedule",
            description="Daily PII sweep of the columns the data catalog says hold no personal data.",
            schedule=events.Schedule.cron(
                hour=c.PII_SWEEP_SCHEDULE_HOUR_UTC, minute=c.PII_SWEEP_SCHEDULE_MINUTE
            ),
            targets=[targets.LambdaFunction(self.sweep.function)],
        )

    @property
    def functions(self) -> list[PythonFunction]:
        return [self.api, self.sweep]
