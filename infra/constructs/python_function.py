"""The one way this app defines a Lambda function: own role, own encrypted log group, in the VPC, traced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import constants as c
from infra.constructs.roles import ServiceRole

# Every function reads these (see the environment contract in the team brief).
COMMON_ENVIRONMENT: Mapping[str, str] = {
    "POWERTOOLS_SERVICE_NAME": c.POWERTOOLS_SERVICE_NAME,
    "POWERTOOLS_METRICS_NAMESPACE": c.POWERTOOLS_METRICS_NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": c.POWERTOOLS_LOG_LEVEL,
}

# Lambda attaches a VPC function through ENIs it manages with the function's role. These EC2 actions do not
# support resource-level permissions (the AWS-managed AWSLambdaVPCAccessExecutionRole uses "*" as well).
VPC_ACCESS_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
# X-Ray segment upload has no resource-level permissions either.
XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")

# Bytecode left by local runs must not change an asset's hash.
ASSET_EXCLUDE = ["**/__pycache__", "*.pyc"]


class PythonFunction(Construct):
    """A python3.13 arm64 function with both layers, X-Ray tracing and a least-privilege role.

    The role starts with only what every function needs (VPC ENIs, its own log group, X-Ray). Callers add
    the rest with ``allow()``; CDK grant methods on ``function`` do nothing (see ``roles.ServiceRole``).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: c.FunctionSpec,
        layers: Sequence[lambda_.ILayerVersion],
        vpc: ec2.IVpc,
        security_groups: Sequence[ec2.ISecurityGroup],
        key: kms.IKey,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        self.role = ServiceRole(
            self, "Role", service="lambda.amazonaws.com", description=f"Execution role: {spec.description}"
        )
        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=c.LOG_RETENTION,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.allow("VpcNetworkInterfaces", VPC_ACCESS_ACTIONS, ["*"])
        # Only its own group, which exists before the function: no logs:CreateLogGroup.
        self.allow("WriteOwnLogs", LOG_ACTIONS, [self.log_group.log_group_arn])
        self.allow("XRayTracing", XRAY_ACTIONS, ["*"])

        self.function = lambda_.Function(
            self,
            "Function",
            description=spec.description,
            runtime=c.LAMBDA_RUNTIME,
            architecture=c.LAMBDA_ARCHITECTURE,
            code=lambda_.Code.from_asset(str(c.FUNCTIONS_DIR / spec.code_dir), exclude=ASSET_EXCLUDE),
            handler=spec.handler,
            layers=list(layers),
            memory_size=spec.memory_mb,
            timeout=spec.timeout,
            reserved_concurrent_executions=spec.reserved_concurrency,
            environment={**COMMON_ENVIRONMENT, **(environment or {})},
            role=self.role.immutable,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            vpc=vpc,
            vpc_subnets=c.ISOLATED_SUBNETS,
            security_groups=list(security_groups),
        )
        # Lambda checks the ENI permissions when it creates a VPC function: the policy must be attached first.
        self.function.node.add_dependency(self.role.policy)

    def allow(
        self,
        sid: str,
        actions: Sequence[str],
        resources: Sequence[str],
        conditions: Mapping[str, Any] | None = None,
    ) -> None:
        """Add one explicit statement to this function's policy."""
        self.role.allow(sid, actions, resources, conditions)
