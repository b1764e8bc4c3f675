"""Creates the template's resources in the moto server, in dependency order, like CloudFormation.

Emulated types get real moto resources (S3, SQS, KMS, DynamoDB, Secrets Manager, EventBridge, SNS,
Step Functions, SSM parameters) or a local meaning (Lambda functions and layers, event source
mappings, RDS instances/clusters/proxies -> the embedded PostgreSQL). Every other type gets a
stand-in physical id so that ``Ref``/``Fn::GetAtt`` on it still resolve; types with no local meaning
(IAM, VPC, log groups, ...) are skipped quietly, unknown ones with a warning. Custom resources are
not run, except CDK ``triggers.Trigger`` (``Custom::Trigger``), whose function the runtime invokes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compliance_tools.local.database import PgEndpoint, ensure_master
from compliance_tools.local.intrinsics import IntrinsicError, PhysicalResource, Resolver, dependency_order
from compliance_tools.local.lambdas import FunctionSpec, map_opt_paths
from compliance_tools.local.motoserver import moto_session
from compliance_tools.local.template import CloudTemplate

logger = logging.getLogger(__name__)

LOCAL_DB_HOST = "127.0.0.1"
DB_TYPES = frozenset(
    {"AWS::RDS::DBInstance", "AWS::RDS::DBCluster", "AWS::RDS::DBProxy", "AWS::RDS::DBProxyEndpoint"}
)

# Types with no local meaning: they get stand-in ids without a word in the log.
QUIET_PREFIXES = (
    "AWS::IAM::",
    "AWS::EC2::",
    "AWS::Logs::",
    "AWS::CloudWatch::",
    "AWS::ApiGateway::",  # served by the API Gateway emulator straight from the template
    "AWS::ApplicationAutoScaling::",
    "AWS::WAFv2::",
    "AWS::CDK::",
)
QUIET_TYPES = frozenset(
    {
        "AWS::Lambda::Permission",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::SQS::QueuePolicy",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::KMS::ReplicaKey",
        "AWS::RDS::DBSubnetGroup",
        "AWS::RDS::DBParameterGroup",
        "AWS::RDS::DBClusterParameterGroup",
        "AWS::RDS::DBProxyTargetGroup",
        "AWS::SecretsManager::RotationSchedule",
        "AWS::SecretsManager::ResourcePolicy",
    }
)
ID_PREFIXES = {
    "AWS::EC2::VPC": "vpc-",
    "AWS::EC2::Subnet": "subnet-",
    "AWS::EC2::SecurityGroup": "sg-",
    "AWS::EC2::RouteTable": "rtb-",
    "AWS::EC2::InternetGateway": "igw-",
    "AWS::EC2::NatGateway": "nat-",
    "AWS::EC2::VPCEndpoint": "vpce-",
    "AWS::EC2::NetworkAcl": "acl-",
}
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


class ProvisioningError(Exception):
    """A resource the runtime emulates could not be created."""


@dataclass(frozen=True)
class EventSourceMappingSpec:
    logical_id: str
    function: str
    queue_arn: str
    queue_url: str
    batch_size: int = 10
    batching_window_s: float = 0.0
    report_batch_item_failures: bool = False
    enabled: bool = True
    maximum_concurrency: int | None = None


@dataclass(frozen=True)
class RuleSpec:
    logical_id: str
    name: str
    arn: str
    schedule: str | None
    event_pattern: dict[str, Any] | None
    enabled: bool
    targets: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class TriggerSpec:
    logical_id: str
    handler_arn: str
    invocation_type: str = "RequestResponse"
    timeout_ms: int | None = None


@dataclass
class ProvisionedStack:
    resources: dict[str, PhysicalResource] = field(default_factory=dict)
    functions: list[FunctionSpec] = field(default_factory=list)
    event_source_mappings: list[EventSourceMappingSpec] = field(default_factory=list)
    rules: list[RuleSpec] = field(default_factory=list)
    triggers: list[TriggerSpec] = field(default_factory=list)
    # logical id -> why it is not (fully) emulated locally
    skipped: dict[str, str] = field(default_factory=dict)


def physical_name(
    stack: str, logical_id: str, max_length: int, *, lowercase: bool = False, suffix: str = ""
) -> str:
    """A CloudFormation-style generated name, stable across restarts (same stack, same logical id)."""
    digest = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:12].upper()
    base = f"{stack}-{logical_id}"
    if lowercase:
        base, digest = re.sub(r"[^a-z0-9-]", "", base.lower()), digest.lower()
    room = max_length - len(digest) - 1 - len(suffix)
    return f"{base[:room].rstrip('-')}-{digest}{suffix}"


def generate_secret_string(options: dict[str, Any]) -> str:
    """Secrets Manager's GenerateSecretString, done locally."""
    length = int(options.get("PasswordLength", 32))
    exclude = set(str(options.get("ExcludeCharacters", "")))
    groups = []
    if not _flag(options, "ExcludeLowercase"):
        groups.append(string.ascii_lowercase)
    if not _flag(options, "ExcludeUppercase"):
        groups.append(string.ascii_uppercase)
    if not _flag(options, "ExcludeNumbers"):
        groups.append(string.digits)
    if not _flag(options, "ExcludePunctuation"):
        groups.append(PUNCTUATION)
    if _flag(options, "IncludeSpace"):
        groups.append(" ")
    pools = [pool for pool in ("".join(c for c in group if c not in exclude) for group in groups) if pool]
    if not pools:
        raise ProvisioningError("GenerateSecretString excludes every character")
    alphabet = "".join(pools)
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        require_each = options.get("RequireEachIncludedType", True) not in (False, "false")
        if not require_each or length < len(pools) or all(any(c in pool for c in password) for pool in pools):
            break
    template = options.get("SecretStringTemplate")
    key = options.get("GenerateStringKey")
    if template is None:
        return password
    document = json.loads(str(template))
    if key:
        document[str(key)] = password
    return json.dumps(document)


def _flag(options: dict[str, Any], name: str) -> bool:
    return options.get(name) in (True, "true", "True")


class Provisioner:
    """Walks the template in dependency order and creates each resource."""

    def __init__(
        self,
        template: CloudTemplate,
        resolver: Resolver,
        *,
        endpoint_url: str,
        pg: PgEndpoint | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.template = template
        self.resolver = resolver
        self.endpoint_url = endpoint_url
        self.pg = pg
        self.work_dir = work_dir
        self.region = resolver.region
        self.account = resolver.account_id
        self.stack = ProvisionedStack(resources=resolver.physical)
        self._session = moto_session(self.region)
        self._clients: dict[str, Any] = {}
        self._queue_urls: dict[str, str] = {}  # queue ARN -> URL
        self._layer_dirs: dict[str, Path] = {}  # layer version ARN -> folder
        self._db_names: dict[str, str | None] = {}  # DB logical id -> initial database
        resolver.dynamic = self._dynamic_reference
        self._handlers: dict[str, Callable[[str, dict[str, Any]], PhysicalResource]] = {
            "AWS::S3::Bucket": self._s3_bucket,
            "AWS::SQS::Queue": self._sqs_queue,
            "AWS::KMS::Key": self._kms_key,
            "AWS::KMS::Alias": self._kms_alias,
            "AWS::DynamoDB::Table": self._dynamodb_table,
            "AWS::DynamoDB::GlobalTable": self._dynamodb_table,
            "AWS::SecretsManager::Secret": self._secret,
            "AWS::SecretsManager::SecretTargetAttachment": self._secret_attachment,
            "AWS::Events::EventBus": self._event_bus,
            "AWS::Events::Rule": self._events_rule,
            "AWS::SNS::Topic": self._sns_topic,
            "AWS::SNS::Subscription": self._sns_subscription,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::SES::EmailIdentity": self._ses_identity,
            # An IAM user exists locally only to own an access key (the DSR export link signer): moto
            # signs nothing itself, but functions read the key from the secret built from it.
            "AWS::IAM::User": self._iam_user,
            "AWS::IAM::AccessKey": self._iam_access_key,
            "AWS::SSM::Parameter": self._ssm_parameter,
            "AWS::Lambda::Function": self._lambda_function,
            "AWS::Lambda::LayerVersion": self._lambda_layer,
            "AWS::Lambda::Version": self._lambda_version,
            "AWS::Lambda::Alias": self._lambda_alias,
            "AWS::Lambda::EventSourceMapping": self._event_source_mapping,
            "AWS::RDS::DBInstance": self._db_instance,
            "AWS::RDS::DBCluster": self._db_cluster,
            "AWS::RDS::DBProxy": self._db_proxy,
            "AWS::RDS::DBProxyEndpoint": self._db_proxy_endpoint,
            "Custom::Trigger": self._trigger,
        }

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]
        return self._clients[service]

    def provision(self) -> ProvisionedStack:
        for logical_id in dependency_order(self.template):
            resource = self.template.resources[logical_id]
            resource_type = str(resource.get("Type"))
            if not self.resolver.is_enabled(logical_id):
                logger.debug("%s: condition false, not created", logical_id)
                continue
            handler = self._handlers.get(resource_type)
            if handler is None:
                self.resolver.physical[logical_id] = self._stand_in(logical_id, resource_type, resource)
                continue
            try:
                properties = self.resolver.resolve(resource.get("Properties", {})) or {}
                physical = handler(logical_id, properties)
            except (IntrinsicError, ProvisioningError) as exc:
                raise ProvisioningError(f"{logical_id} ({resource_type}): {exc}") from exc
            except Exception as exc:
                raise ProvisioningError(
                    f"{logical_id} ({resource_type}) could not be created: {exc}"
                ) from exc
            self.resolver.physical[logical_id] = physical
            logger.debug("provisioned %s (%s) -> %s", logical_id, resource_type, physical.ref)
        return self.stack

    # -- stand-ins --------------------------------------------------------------------------------

    def _stand_in(self, logical_id: str, resource_type: str, resource: dict[str, Any]) -> PhysicalResource:
        if resource_type.startswith(QUIET_PREFIXES) or resource_type in QUIET_TYPES:
            logger.debug("%s (%s): no local meaning, stand-in id only", logical_id, resource_type)
        elif resource_type.startswith("Custom::") or resource_type == "AWS::CloudFormation::CustomResource":
            reason = "custom resource: not run locally"
            self.stack.skipped[logical_id] = reason
            logger.warning("%s (%s): %s", logical_id, resource_type, reason)
        else:
            reason = f"{resource_type} is not emulated locally (stand-in id only)"
            self.stack.skipped[logical_id] = reason
            logger.warning("%s: %s", logical_id, reason)
        digest = hashlib.sha256(f"{self.template.stack_name}/{logical_id}".encode()).hexdigest()
        prefix = ID_PREFIXES.get(resource_type)
        if prefix is not None:
            ref = f"{prefix}{digest[:17]}"
        elif resource_type.startswith("AWS::ApiGateway::"):
            ref = self._api_gateway_ref(resource, digest)
        else:
            ref = self._declared_name(resource) or physical_name(self.template.stack_name, logical_id, 64)
        service = resource_type.split("::")[1].lower() if resource_type.startswith("AWS::") else "custom"
        kind = resource_type.split("::")[-1].lower()
        attributes: dict[str, Any] = {"Arn": f"arn:aws:{service}:{self.region}:{self.account}:{kind}/{ref}"}
        if resource_type == "AWS::IAM::Role":
            attributes |= {
                "Arn": f"arn:aws:iam::{self.account}:role/{ref}",
                "RoleId": f"AROA{digest[:17].upper()}",
            }
        elif resource_type == "AWS::EC2::SecurityGroup":
            attributes |= {"GroupId": ref, "VpcId": "vpc-local"}
        elif resource_type == "AWS::EC2::VPC":
            attributes |= {
                "VpcId": ref,
                "CidrBlock": "10.0.0.0/16",
                "DefaultSecurityGroup": f"sg-{digest[:17]}",
            }
        elif resource_type == "AWS::EC2::Subnet":
            attributes |= {"SubnetId": ref, "AvailabilityZone": f"{self.region}a"}
        elif resource_type == "AWS::Logs::LogGroup":
            attributes["Arn"] = f"arn:aws:logs:{self.region}:{self.account}:log-group:{ref}:*"
        elif resource_type == "AWS::ApiGateway::RestApi":
            attributes["RootResourceId"] = digest[10:20]
        return PhysicalResource(logical_id, resource_type, ref, attributes, emulated=False)

    def _declared_name(self, resource: dict[str, Any]) -> str | None:
        resource_type = str(resource.get("Type"))
        short = resource_type.split("::")[-1]
        properties = resource.get("Properties", {})
        for key in (f"{short}Name", "Name", "LogGroupName"):
            if key in properties:
                try:
                    value = self.resolver.resolve(properties[key])
                except IntrinsicError:
                    return None
                return str(value) if value is not None else None
        return None

    def _api_gateway_ref(self, resource: dict[str, Any], digest: str) -> str:
        if resource.get("Type") == "AWS::ApiGateway::Stage":
            name = self._declared_name(resource) or self.resolver.resolve(
                resource.get("Properties", {}).get("StageName", "prod")
            )
            return str(name)
        return digest[:10]

    # -- dynamic references -----------------------------------------------------------------------

    def _dynamic_reference(self, service: str, reference: str) -> str:
        if service in {"ssm", "ssm-secure"}:
            name = reference.split(":", 1)[0]
            value = self.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
            return str(value)
        if service != "secretsmanager":
            raise IntrinsicError(f"{{{{resolve:{service}:...}}}} is not supported locally")
        parts = reference.split(":")
        # secret-id may itself be an ARN (7 colon-separated parts).
        secret_id, rest = (":".join(parts[:7]), parts[7:]) if parts[0] == "arn" else (parts[0], parts[1:])
        json_key = rest[1] if len(rest) > 1 else ""
        secret = self.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
        if not json_key:
            return str(secret)
        return str(json.loads(secret)[json_key])

    # -- S3 / SQS / KMS / DynamoDB ----------------------------------------------------------------

    def _s3_bucket(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("BucketName") or physical_name(
            self.template.stack_name, logical_id, 63, lowercase=True
        )
        s3 = self.client("s3")
        create: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        lock = props.get("ObjectLockConfiguration")
        if props.get("ObjectLockEnabled") or lock:
            create["ObjectLockEnabledForBucket"] = True
        s3.create_bucket(**create)
        if props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        encryption = props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
        if encryption:
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [
                {
                    ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                    for k, v in rule.items()
                }
                for rule in encryption
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if lock and lock.get("Rule"):
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=lock)
        return PhysicalResource(
            logical_id,
            "AWS::S3::Bucket",
            name,
            {
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{self.region}.amazonaws.com",
                "DualStackDomainName": f"{name}.s3.dualstack.{self.region}.amazonaws.com",
                "WebsiteURL": f"http://{name}.s3-website-{self.region}.amazonaws.com",
            },
        )

    _QUEUE_ATTRIBUTES = (
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
    )

    def _sqs_queue(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        fifo = _flag(props, "FifoQueue")
        name = props.get("QueueName") or physical_name(
            self.template.stack_name, logical_id, 80, suffix=".fifo" if fifo else ""
        )
        attributes = {key: _attribute(props[key]) for key in self._QUEUE_ATTRIBUTES if key in props}
        for key in ("RedrivePolicy", "RedriveAllowPolicy"):
            if key in props:
                attributes[key] = props[key] if isinstance(props[key], str) else json.dumps(props[key])
        if not fifo:
            attributes.pop("FifoQueue", None)
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._queue_urls[arn] = url
        return PhysicalResource(
            logical_id, "AWS::SQS::Queue", url, {"Arn": arn, "QueueName": name, "QueueUrl": url}
        )

    def _kms_key(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        kms = self.client("kms")
        create: dict[str, Any] = {}
        for key in ("Description", "KeyUsage", "KeySpec", "MultiRegion"):
            if key in props:
                create[key] = props[key]
        if "KeyPolicy" in props:
            policy = props["KeyPolicy"]
            create["Policy"] = policy if isinstance(policy, str) else json.dumps(policy)
        if props.get("Tags"):
            create["Tags"] = [{"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in props["Tags"]]
        metadata = kms.create_key(**create)["KeyMetadata"]
        key_id = metadata["KeyId"]
        if _flag(props, "EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key_id)
        if props.get("Enabled") in (False, "false"):
            kms.disable_key(KeyId=key_id)
        return PhysicalResource(
            logical_id, "AWS::KMS::Key", key_id, {"Arn": metadata["Arn"], "KeyId": key_id}
        )

    def _kms_alias(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        self.client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        name = str(props["AliasName"])
        return PhysicalResource(
            logical_id,
            "AWS::KMS::Alias",
            name,
            {"AliasArn": f"arn:aws:kms:{self.region}:{self.account}:{name}"},
        )

    def _dynamodb_table(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("TableName") or physical_name(self.template.stack_name, logical_id, 255)
        billing = props.get("BillingMode", "PROVISIONED")
        create: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            throughput = props.get("ProvisionedThroughput") or {
                "ReadCapacityUnits": 5,
                "WriteCapacityUnits": 5,
            }
            create["ProvisionedThroughput"] = _ints(throughput)
        indexes = []
        for index in props.get("GlobalSecondaryIndexes", []):
            index = {k: v for k, v in index.items() if k in {"IndexName", "KeySchema", "Projection"}} | (
                {"ProvisionedThroughput": _ints(index["ProvisionedThroughput"])}
                if "ProvisionedThroughput" in index
                else {}
            )
            if billing == "PROVISIONED" and "ProvisionedThroughput" not in index:
                index["ProvisionedThroughput"] = create["ProvisionedThroughput"]
            indexes.append(index)
        if indexes:
            create["GlobalSecondaryIndexes"] = indexes
        if props.get("LocalSecondaryIndexes"):
            create["LocalSecondaryIndexes"] = props["LocalSecondaryIndexes"]
        stream = props.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            create["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        dynamodb = self.client("dynamodb")
        description = dynamodb.create_table(**create)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and _flag(ttl, "Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        attributes = {"Arn": description["TableArn"], "TableId": description.get("TableId", name)}
        if description.get("LatestStreamArn"):
            attributes["StreamArn"] = description["LatestStreamArn"]
        return PhysicalResource(
            logical_id, str(self.template.resources[logical_id]["Type"]), name, attributes
        )

    # -- Secrets Manager --------------------------------------------------------------------------

    def _secret(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("Name") or physical_name(self.template.stack_name, logical_id, 128)
        if "SecretString" in props:
            value = str(props["SecretString"])
        elif "GenerateSecretString" in props:
            value = generate_secret_string(props["GenerateSecretString"])
        else:
            value = generate_secret_string({})
        create: dict[str, Any] = {"Name": name, "SecretString": value}
        for key in ("Description", "KmsKeyId"):
            if key in props:
                create[key] = props[key]
        if props.get("Tags"):
            create["Tags"] = props["Tags"]
        arn = self.client("secretsmanager").create_secret(**create)["ARN"]
        return PhysicalResource(logical_id, "AWS::SecretsManager::Secret", arn, {"Id": arn})

    def _secret_attachment(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        """Like AWS: the secret learns how to reach the database it is attached to."""
        secret_id = str(props["SecretId"])
        target = self._logical_id_of(str(props["TargetId"]), DB_TYPES)
        sm = self.client("secretsmanager")
        document = json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])
        document |= {"engine": "postgres", "host": LOCAL_DB_HOST, "port": self._pg_port()}
        target_type = str(props.get("TargetType", ""))
        if target is not None and self._db_names.get(target):
            document["dbname"] = self._db_names[target]
        if target_type == "AWS::RDS::DBInstance":
            document["dbInstanceIdentifier"] = props["TargetId"]
        elif target_type == "AWS::RDS::DBCluster":
            document["dbClusterIdentifier"] = props["TargetId"]
        sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(document))
        return PhysicalResource(logical_id, "AWS::SecretsManager::SecretTargetAttachment", secret_id, {})

    def _logical_id_of(self, ref: str, types: frozenset[str]) -> str | None:
        for logical_id, physical in self.resolver.physical.items():
            if physical.ref == ref and physical.type in types:
                return logical_id
        return None

    # -- EventBridge / SNS / Step Functions / SSM -------------------------------------------------

    def _event_bus(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = str(props["Name"])
        arn = self.client("events").create_event_bus(Name=name)["EventBusArn"]
        return PhysicalResource(logical_id, "AWS::Events::EventBus", name, {"Arn": arn, "Name": name})

    def _events_rule(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("Name") or physical_name(self.template.stack_name, logical_id, 64)
        events = self.client("events")
        put: dict[str, Any] = {"Name": name, "State": props.get("State", "ENABLED")}
        for key in ("ScheduleExpression", "Description", "EventBusName", "RoleArn"):
            if key in props:
                put[key] = props[key]
        pattern = props.get("EventPattern")
        if pattern is not None:
            put["EventPattern"] = pattern if isinstance(pattern, str) else json.dumps(pattern)
        arn = events.put_rule(**put)["RuleArn"]
        targets = tuple(props.get("Targets", []))
        if targets:
            allowed = {"Id", "Arn", "Input", "InputPath", "InputTransformer", "RoleArn", "SqsParameters"}
            events.put_targets(
                Rule=name,
                EventBusName=props.get("EventBusName", "default"),
                Targets=[{k: v for k, v in target.items() if k in allowed} for target in targets],
            )
        if pattern is not None and any(":lambda:" in str(target.get("Arn")) for target in targets):
            self.stack.skipped[logical_id] = "event-pattern rule: Lambda targets are not delivered locally"
            logger.warning("%s: %s", logical_id, self.stack.skipped[logical_id])
        self.stack.rules.append(
            RuleSpec(
                logical_id=logical_id,
                name=name,
                arn=arn,
                schedule=props.get("ScheduleExpression"),
                event_pattern=json.loads(pattern) if isinstance(pattern, str) else pattern,
                enabled=put["State"] == "ENABLED",
                targets=targets,
            )
        )
        return PhysicalResource(logical_id, "AWS::Events::Rule", name, {"Arn": arn})

    def _sns_topic(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        fifo = _flag(props, "FifoTopic")
        name = props.get("TopicName") or physical_name(
            self.template.stack_name, logical_id, 256, suffix=".fifo" if fifo else ""
        )
        attributes = {
            key: _attribute(props[key])
            for key in ("DisplayName", "KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication")
            if key in props
        }
        sns = self.client("sns")
        arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
        for subscription in props.get("Subscription", []):
            self._subscribe(logical_id, arn, subscription)
        return PhysicalResource(logical_id, "AWS::SNS::Topic", arn, {"TopicArn": arn, "TopicName": name})

    def _sns_subscription(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        arn = self._subscribe(logical_id, str(props["TopicArn"]), props)
        return PhysicalResource(logical_id, "AWS::SNS::Subscription", arn, {"Arn": arn})

    def _subscribe(self, logical_id: str, topic_arn: str, props: dict[str, Any]) -> str:
        protocol = str(props["Protocol"])
        if protocol not in {"sqs", "http", "https", "email", "sms"}:
            self.stack.skipped[logical_id] = f"SNS {protocol} subscriptions are not delivered locally"
            logger.warning("%s: %s", logical_id, self.stack.skipped[logical_id])
            return f"{topic_arn}:{uuid.uuid4()}"
        attributes: dict[str, str] = {
            key: _attribute(props[key])
            for key in ("RawMessageDelivery", "FilterPolicyScope", "RedrivePolicy")
            if key in props
        }
        if "FilterPolicy" in props:
            policy = props["FilterPolicy"]
            attributes["FilterPolicy"] = policy if isinstance(policy, str) else json.dumps(policy)
        response = self.client("sns").subscribe(
            TopicArn=topic_arn,
            Protocol=protocol,
            Endpoint=str(props["Endpoint"]),
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )
        return str(response["SubscriptionArn"])

    def _state_machine(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("StateMachineName") or physical_name(self.template.stack_name, logical_id, 80)
        if "DefinitionString" in props:
            definition = str(props["DefinitionString"])
        elif "Definition" in props:
            definition = json.dumps(props["Definition"])
        else:
            raise ProvisioningError("DefinitionS3Location is not supported locally")
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        create: dict[str, Any] = {
            "name": name,
            "definition": definition,
            "roleArn": props.get("RoleArn") or f"arn:aws:iam::{self.account}:role/{name}",
        }
        if props.get("StateMachineType"):
            create["type"] = props["StateMachineType"]
        arn = self.client("stepfunctions").create_state_machine(**create)["stateMachineArn"]
        return PhysicalResource(
            logical_id, "AWS::StepFunctions::StateMachine", arn, {"Arn": arn, "Name": name}
        )

    def _iam_user(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("UserName") or physical_name(self.template.stack_name, logical_id, 64)
        arn = self.client("iam").create_user(UserName=name)["User"]["Arn"]
        return PhysicalResource(logical_id, "AWS::IAM::User", name, {"Arn": arn})

    def _iam_access_key(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        key = self.client("iam").create_access_key(UserName=str(props["UserName"]))["AccessKey"]
        return PhysicalResource(
            logical_id, "AWS::IAM::AccessKey", key["AccessKeyId"], {"SecretAccessKey": key["SecretAccessKey"]}
        )

    def _ses_identity(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        # moto marks an identity verified at once (AWS sends a confirmation e-mail or checks DNS).
        identity = str(props["EmailIdentity"])
        ses = self.client("ses")
        if "@" in identity:
            ses.verify_email_identity(EmailAddress=identity)
        else:
            ses.verify_domain_identity(Domain=identity)
        return PhysicalResource(logical_id, "AWS::SES::EmailIdentity", identity, {})

    def _ssm_parameter(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("Name") or f"/{physical_name(self.template.stack_name, logical_id, 200)}"
        kind = props.get("Type", "String")
        self.client("ssm").put_parameter(Name=name, Value=str(props["Value"]), Type=kind, Overwrite=True)
        return PhysicalResource(
            logical_id, "AWS::SSM::Parameter", name, {"Type": kind, "Value": props["Value"]}
        )

    # -- Lambda ------------------------------------------------------------------------------------

    def _function_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"

    def _lambda_function(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("FunctionName") or physical_name(self.template.stack_name, logical_id, 64)
        arn = self._function_arn(name)
        raw_environment = self.template.resources[logical_id].get("Properties", {}).get("Environment", {})
        environment = {
            key: _attribute(value) for key, value in props.get("Environment", {}).get("Variables", {}).items()
        }
        environment = self._local_db_ports(raw_environment.get("Variables", {}), environment)
        layer_dirs = []
        for layer_arn in props.get("Layers", []):
            if layer_arn in self._layer_dirs:
                layer_dirs.append(self._layer_dirs[layer_arn])
            else:
                logger.warning(
                    "%s: layer %s is not part of this template; its contents must come from the venv",
                    logical_id,
                    layer_arn,
                )
        code_dir = self.template.asset_dir(logical_id, "Code")
        runtime = str(props.get("Runtime", ""))
        if code_dir is None and "ZipFile" in props.get("Code", {}):
            code_dir = self._inline_code(logical_id, str(props["Code"]["ZipFile"]), runtime)
        self.stack.functions.append(
            FunctionSpec(
                logical_id=logical_id,
                name=name,
                arn=arn,
                handler=str(props.get("Handler", "")),
                runtime=runtime,
                code_dir=code_dir,
                environment=map_opt_paths(environment, layer_dirs),
                timeout_s=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
                layer_dirs=tuple(layer_dirs),
                reserved_concurrency=(
                    int(props["ReservedConcurrentExecutions"])
                    if "ReservedConcurrentExecutions" in props
                    else None
                ),
            )
        )
        return PhysicalResource(logical_id, "AWS::Lambda::Function", name, {"Arn": arn})

    def _inline_code(self, logical_id: str, source: str, runtime: str) -> Path | None:
        if self.work_dir is None or not runtime.startswith("python"):
            return None
        folder = self.work_dir / "inline" / logical_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "index.py").write_text(source, encoding="utf-8")
        return folder

    def _local_db_ports(self, raw: dict[str, Any], resolved: dict[str, str]) -> dict[str, str]:
        """``X_HOST`` pointing at an RDS endpoint -> ``X_PORT`` is the embedded server's port.

        The proxy has no port attribute, so the template carries the literal 5432 next to it.
        """
        for name, value in raw.items():
            if not name.endswith("HOST") or not self._is_db_endpoint(value):
                continue
            port_name = name[: -len("HOST")] + "PORT"
            if port_name in resolved:
                resolved[port_name] = str(self._pg_port())
        return resolved

    def _is_db_endpoint(self, value: Any) -> bool:
        if not isinstance(value, dict) or "Fn::GetAtt" not in value:
            return False
        argument = value["Fn::GetAtt"]
        logical_id = argument.split(".", 1)[0] if isinstance(argument, str) else str(argument[0])
        return self.template.resources.get(logical_id, {}).get("Type") in DB_TYPES

    def _lambda_layer(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = props.get("LayerName") or physical_name(self.template.stack_name, logical_id, 64)
        arn = f"arn:aws:lambda:{self.region}:{self.account}:layer:{name}:1"
        layer_dir = self.template.asset_dir(logical_id, "Content")
        if layer_dir is None:
            logger.warning("%s: layer asset not found in the assembly", logical_id)
        else:
            self._layer_dirs[arn] = layer_dir
        return PhysicalResource(logical_id, "AWS::Lambda::LayerVersion", arn, {"LayerVersionArn": arn})

    def _lambda_version(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        function = str(props["FunctionName"])
        arn = function if function.startswith("arn:") else self._function_arn(function)
        versioned = f"{arn}:1"
        return PhysicalResource(
            logical_id, "AWS::Lambda::Version", versioned, {"Version": "1", "FunctionArn": versioned}
        )

    def _lambda_alias(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        function = str(props["FunctionName"])
        arn = function if function.startswith("arn:") else self._function_arn(function)
        alias_arn = f"{arn}:{props['Name']}"
        return PhysicalResource(logical_id, "AWS::Lambda::Alias", alias_arn, {"AliasArn": alias_arn})

    def _event_source_mapping(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        mapping_id = str(uuid.UUID(hashlib.md5(logical_id.encode(), usedforsecurity=False).hexdigest()))
        physical = PhysicalResource(
            logical_id,
            "AWS::Lambda::EventSourceMapping",
            mapping_id,
            {
                "Id": mapping_id,
                "EventSourceMappingArn": f"arn:aws:lambda:{self.region}:{self.account}:"
                f"event-source-mapping:{mapping_id}",
            },
        )
        source_arn = str(props.get("EventSourceArn", ""))
        if source_arn not in self._queue_urls:
            self.stack.skipped[logical_id] = (
                f"event source {source_arn or '(none)'} is not polled locally (SQS only)"
            )
            logger.warning("%s: %s", logical_id, self.stack.skipped[logical_id])
            return physical
        if props.get("FilterCriteria"):
            logger.warning("%s: FilterCriteria is ignored locally: every message is delivered", logical_id)
        concurrency = props.get("ScalingConfig", {}).get("MaximumConcurrency")
        self.stack.event_source_mappings.append(
            EventSourceMappingSpec(
                logical_id=logical_id,
                function=str(props["FunctionName"]),
                queue_arn=source_arn,
                queue_url=self._queue_urls[source_arn],
                batch_size=int(props.get("BatchSize", 10)),
                batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures"
                in props.get("FunctionResponseTypes", []),
                enabled=props.get("Enabled", True) not in (False, "false"),
                maximum_concurrency=int(concurrency) if concurrency else None,
            )
        )
        return physical

    # -- RDS -> the embedded PostgreSQL -----------------------------------------------------------

    def _pg_port(self) -> int:
        return self.pg.port if self.pg is not None else 5432

    def _db_instance(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        identifier = props.get("DBInstanceIdentifier") or physical_name(
            self.template.stack_name, logical_id, 63, lowercase=True
        )
        self._db_names[logical_id] = props.get("DBName")
        self._bootstrap_database(logical_id, props, props.get("DBName"))
        port = str(self._pg_port())
        return PhysicalResource(
            logical_id,
            "AWS::RDS::DBInstance",
            identifier,
            {
                "Endpoint.Address": LOCAL_DB_HOST,
                "Endpoint.Port": port,
                "Endpoint.HostedZoneID": "Z0LOCAL",
                "DBInstanceArn": f"arn:aws:rds:{self.region}:{self.account}:db:{identifier}",
                "DbiResourceId": f"db-{identifier.upper()[:26]}",
            },
        )

    def _db_cluster(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        identifier = props.get("DBClusterIdentifier") or physical_name(
            self.template.stack_name, logical_id, 63, lowercase=True
        )
        self._db_names[logical_id] = props.get("DatabaseName")
        self._bootstrap_database(logical_id, props, props.get("DatabaseName"))
        port = str(self._pg_port())
        return PhysicalResource(
            logical_id,
            "AWS::RDS::DBCluster",
            identifier,
            {
                "Endpoint.Address": LOCAL_DB_HOST,
                "Endpoint.Port": port,
                "ReadEndpoint.Address": LOCAL_DB_HOST,
                "DBClusterArn": f"arn:aws:rds:{self.region}:{self.account}:cluster:{identifier}",
                "DBClusterResourceId": f"cluster-{identifier.upper()[:26]}",
            },
        )

    def _bootstrap_database(self, logical_id: str, props: dict[str, Any], dbname: str | None) -> None:
        engine = str(props.get("Engine", "postgres"))
        if "postgres" not in engine:
            logger.warning("%s: engine %s served by the embedded PostgreSQL", logical_id, engine)
        if self.pg is None:
            logger.warning("%s: no embedded PostgreSQL running; endpoints point at nothing", logical_id)
            return
        username = props.get("MasterUsername")
        if username:
            ensure_master(self.pg, str(username), props.get("MasterUserPassword"), dbname)

    def _db_proxy(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = str(props.get("DBProxyName") or physical_name(self.template.stack_name, logical_id, 63))
        return PhysicalResource(
            logical_id,
            "AWS::RDS::DBProxy",
            name,
            {
                "Endpoint": LOCAL_DB_HOST,
                "DBProxyArn": f"arn:aws:rds:{self.region}:{self.account}:db-proxy:prx-{name}",
                "VpcId": "vpc-local",
            },
        )

    def _db_proxy_endpoint(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        name = str(props.get("DBProxyEndpointName") or logical_id)
        return PhysicalResource(
            logical_id,
            "AWS::RDS::DBProxyEndpoint",
            name,
            {
                "Endpoint": LOCAL_DB_HOST,
                "DBProxyEndpointArn": f"arn:aws:rds:{self.region}:{self.account}:db-proxy-endpoint:{name}",
            },
        )

    # -- CDK triggers ------------------------------------------------------------------------------

    def _trigger(self, logical_id: str, props: dict[str, Any]) -> PhysicalResource:
        timeout = props.get("Timeout")
        self.stack.triggers.append(
            TriggerSpec(
                logical_id=logical_id,
                handler_arn=str(props["HandlerArn"]),
                invocation_type=str(props.get("InvocationType", "RequestResponse")),
                timeout_ms=int(timeout) if timeout is not None else None,
            )
        )
        return PhysicalResource(logical_id, "Custom::Trigger", f"{logical_id}-{uuid.uuid4().hex[:8]}", {})


def _attribute(value: Any) -> str:
    """CloudFormation turns scalars into the strings the APIs take."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _ints(throughput: dict[str, Any]) -> dict[str, int]:
    return {key: int(value) for key, value in throughput.items()}
