"""IAM roles whose permissions are explicit statements in one customer-managed policy.

HIPAA.Security, NIST.800.53.R5 and PCI.DSS.321 flag inline policies (IAMNoInlinePolicy), and CDK grant
methods write inline ``DefaultPolicy`` resources. So CDK constructs get the role's immutable view (their
automatic grants are dropped) and every permission is written here with ``allow()``: a grant made on the
immutable view would silently do nothing, which is why ``tests/infra`` checks each role's actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from constructs import Construct


class PolicyRole(Construct):
    """A role assumed by ``assumed_by`` whose permissions are ``allow()`` statements in one managed policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        assumed_by: iam.IPrincipal,
        description: str,
        max_session_duration: Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=assumed_by,
            description=description,
            max_session_duration=max_session_duration,
        )
        self.policy = iam.ManagedPolicy(self, "Policy", description=description, roles=[self.role])

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


class ServiceRole(PolicyRole):
    """The execution role of an AWS service (a Lambda function)."""

    def __init__(self, scope: Construct, construct_id: str, *, service: str, description: str) -> None:
        super().__init__(
            scope, construct_id, assumed_by=iam.ServicePrincipal(service), description=description
        )
        # What CDK constructs receive: lets them reference the role, ignores the grants they try to add.
        self.immutable = self.role.without_policy_updates()
