"""PII scanning: the POST /v1/pii/scan function (no database; publishes its audit events)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import constants as c
from infra.constructs.audit import Audit
from infra.constructs.network import Network
from infra.constructs.python_function import PythonFunction


class Pii(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: Network,
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
