"""IAM roles whose permissions are explicit statements in one customer-managed policy.

HIPAA.Security, NIST.800.53.R5 and PCI.DSS.321 flag inline policies (IAMNoInlinePolicy), and CDK grant
methods write inline ``DefaultPolicy`` resources. So CDK constructs get the role's immutable view (their
automatic grants are dropped) and every permission is written here with ``allow()``: a grant made on the
immutable view would silently do nothing, which is why ``tests/infra`` checks each role's actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import aws_iam as iam
from constructs import Construct


class ServiceRole(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, service: str, description: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal(service), description=description)
        self.policy = iam.ManagedPolicy(self, "Policy", description=description, roles=[self.role])
        # What CDK constructs receive: lets them reference the role, ignores the grants they try to add.
        self.immutable = self.role.without_policy_updates()

    def allow(
        self,
        sid: str,
        actions: Sequence[str],
        resources: Sequence[str],
        conditions: Mapping[str, Any] | None = None,
    ) -> None:
        self.policy.add_statements(
            iam.PolicyStatement(
                sid=sid,
                actions=list(actions),
                resources=list(resources),
                conditions=dict(conditions) if conditions else None,
            )
        )

    @property
    def role_arn(self) -> str:
        return self.role.role_arn
