"""VPC with isolated subnets only: AWS services are reached through VPC endpoints, never the internet."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import constants as c
from infra.constructs.roles import ServiceRole


class Network(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(c.VPC_CIDR),
            max_azs=c.VPC_MAX_AZS,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="isolated",
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=c.VPC_SUBNET_CIDR_MASK,
                )
            ],
            # Strips every rule from the default security group (nothing here uses it). CloudFormation has
            # no property for this, so CDK ships a small custom resource.
            restrict_default_security_group=True,
        )

        flow_log_group = logs.LogGroup(
            self,
            "FlowLogGroup",
            retention=c.LOG_RETENTION,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        flow_log_role = ServiceRole(
            self, "FlowLogRole", service="vpc-flow-logs.amazonaws.com", description="VPC flow logs delivery"
        )
        flow_log_role.allow(
            "DeliverFlowLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [flow_log_group.log_group_arn],
        )
        flow_log = self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group, flow_log_role.immutable),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        flow_log.node.add_dependency(flow_log_role.policy)

        # Gateway endpoints: DynamoDB (idempotency table) and S3 (no NAT, so the only way out).
        self.vpc.add_gateway_endpoint(
            "DynamoDbEndpoint",
            service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
            subnets=[c.ISOLATED_SUBNETS],
        )
        self.vpc.add_gateway_endpoint(
            "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[c.ISOLATED_SUBNETS]
        )

        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface VPC endpoints: HTTPS from inside the VPC",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(
            # The literal CIDR (not the VPC's CidrBlock attribute) so the rule is checkable at synth.
            ec2.Peer.ipv4(c.VPC_CIDR),
            ec2.Port.tcp(c.HTTPS_PORT),
            "HTTPS from the VPC",
        )
        for name, service in c.INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                f"{name}Endpoint",
                service=service,
                subnets=c.ISOLATED_SUBNETS,
                private_dns_enabled=True,
                security_groups=[self.endpoint_security_group],
                open=False,
            )

    def security_group(self, scope: Construct, construct_id: str, description: str) -> ec2.SecurityGroup:
        """A security group for a workload: egress HTTPS only (VPC endpoints); callers add the rest."""
        group = ec2.SecurityGroup(
            scope, construct_id, vpc=self.vpc, description=description, allow_all_outbound=False
        )
        # Interface endpoints live in the VPC and gateway endpoints route to AWS prefix lists; the isolated
        # subnets have no other route out, so 443 anywhere reaches AWS services only.
        group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(c.HTTPS_PORT), "HTTPS to AWS service endpoints"
        )
        return group
