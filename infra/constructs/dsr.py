"""Data subject requests: the /v1/dsr function, the state machine that answers each request (one execution
per request, named by its id) with one function per step, the exports bucket, the verification secret
and the SES identity the subject's e-mails come from."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from aws_cdk import RemovalPolicy, SecretValue
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import constants as c
from infra.constructs import permissions
from infra.constructs.audit import Audit
from infra.constructs.data_protection import DataProtection
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.python_function import PythonFunction
from infra.constructs.roles import ServiceRole
from infra.constructs.storage import AccessLogs, data_bucket, expiring_objects

# What the state machine's own role needs for its log group (CloudWatch Logs delivery has no
# resource-level permissions: AWS documents "*") and for X-Ray.
_SFN_LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
_XRAY_ACTIONS = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
)


class Dsr(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: Network,
        database: Database,
        audit: Audit,
        data_protection: DataProtection,
        key: kms.IKey,
        access_logs: AccessLogs,
        layers: Sequence[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        self._network = network
        self._database = database
        self._audit = audit
        self._key = key
        self._layers = layers

        self.sender = str(self.node.try_get_context(c.DSR_SENDER_CONTEXT_KEY) or c.DSR_DEFAULT_SENDER)
        self.sender_identity = ses.EmailIdentity(self, "Sender", identity=ses.Identity.email(self.sender))
        self.exports_bucket = data_bucket(
            self,
            "ExportsBucket",
            key=key,
            access_logs=access_logs,
            access_logs_prefix=c.ACCESS_LOGS_PREFIX_DSR_EXPORTS,
            lifecycle_rules=[expiring_objects("expire-dsr-exports", c.DSR_EXPORTS_EXPIRY)],
        )
        # Keys the verification codes' HMAC and the requests' subject keys (compliance.dsr.verification,
        # compliance.dsr.subject_keys): 32 random bytes as 64 hex digits; it never leaves Secrets Manager
        # and the DSR functions.
        self.secret = secretsmanager.Secret(
            self,
            "VerificationSecret",
            description="DSR: HMAC key of verification codes and request subject keys",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({}),
                generate_string_key="key",
                exclude_punctuation=True,
                exclude_characters="ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ",
                password_length=64,
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._build_link_signer(key)
        self._environment = {
            **database.proxy_environment,
            **audit.publish_environment,
            **data_protection.environment,
            **data_protection.shred_ledger_environment,
            "DSR_SECRET_ARN": self.secret.secret_arn,
            "EXPORTS_BUCKET": self.exports_bucket.bucket_name,
            "EXPORTS_KEY_ID": key.key_arn,
            "DSR_SENDER": self.sender,
            "DSR_VERIFICATION_TTL_DAYS": str(c.DSR_VERIFICATION_TTL_DAYS),
            "DSR_EXPORT_LINK_TTL_S": str(c.DSR_EXPORT_LINK_TTL_S),
            "EXPORT_SIGNER_SECRET_ARN": self.signer_secret.secret_arn,
        }

        self.status = self._build_step("Status", c.DSR_STATUS_FN)
        self.verification = self._build_step("Verification", c.DSR_VERIFICATION_FN)
        data_protection.allow_decrypt(self.verification)
        permissions.read_secrets(self.verification, [self.secret], key)
        self._allow_send_email(self.verification)

        self.export = self._build_step("Export", c.DSR_EXPORT_FN)
        data_protection.allow_decrypt(self.export)
        permissions.use_objects(
            self.export,
            "WriteExports",
            self.exports_bucket,
            "",
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            key,
            ["kms:GenerateDataKey", "kms:Decrypt"],  # multipart uploads read the data key back
        )

        self.erasure = self._build_step("Erasure", c.DSR_ERASURE_FN)
        data_protection.allow_decrypt(self.erasure)
        data_protection.allow_record_shreds(self.erasure)
        self._allow_send_email(self.erasure)
        self.erasure.allow(
            "ListExports", ["s3:ListBucket", "s3:ListBucketVersions"], [self.exports_bucket.bucket_arn]
        )
        self.erasure.allow(
            "DeleteExports",
            ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            [self.exports_bucket.arn_for_objects("*")],
        )

        # Rectification seals the corrected address (and the trail's before/after) under the subject's key.
        self.change = self._build_step("Change", c.DSR_CHANGE_FN)
        data_protection.allow_encrypt(self.change)
        permissions.read_secrets(self.change, [self.secret], key)  # a corrected address's look-up key

        self.notify = self._build_step("Notify", c.DSR_NOTIFY_FN)
        data_protection.allow_decrypt(self.notify)
        self._allow_send_email(self.notify)
        # A presigned GET is only as good as the signer's own right to the object (and its key).
        permissions.read_secrets(self.notify, [self.signer_secret], key)

        self.state_machine = self._build_state_machine(key)

        self.api = self._build_function("Api", c.DSR_API_FN)
        self.api.function.add_environment("DSR_STATE_MACHINE_ARN", self.state_machine.state_machine_arn)
        data_protection.allow_encrypt(self.api)  # corrections are sealed under the subject's key
        permissions.read_secrets(self.api, [self.secret, self.signer_secret], key)
        machine = self.state_machine.state_machine_arn
        self.api.allow("StartRequests", ["states:StartExecution"], [machine])
        # Task tokens are answered against the state machine; stopping and describing name executions.
        self.api.allow("AnswerVerification", ["states:SendTaskSuccess"], [machine])
        self.sla = self._build_sla_monitor(key)
        self.api.allow(
            "StopRequests", ["states:StopExecution", "states:DescribeExecution"], [self._executions_arn()]
        )

    def allow_address_keys(self, fn: PythonFunction) -> None:
        """A function that stores addresses with their look-up key (the ingest processor): the DSR secret."""
        fn.function.add_environment("DSR_SECRET_ARN", self.secret.secret_arn)
        permissions.read_secrets(fn, [self.secret], self._key)

    def _build_link_signer(self, key: kms.IKey) -> None:
        """The identity that signs export links. A presigned URL works only while the credentials that
        signed it do: a function's role session lasts hours, the 7 days the subject gets need a long-lived
        key. This user can only read export objects (through S3, with the exports key); its access key
        lives in Secrets Manager, read by the functions that sign (notify step, API)."""
        self.link_signer = iam.User(self, "ExportLinkSigner")
        self.link_signers = iam.Group(self, "ExportLinkSigners")
        self.link_signers.add_user(self.link_signer)
        self.link_signer_policy = iam.ManagedPolicy(
            self,
            "ExportLinkSignerPolicy",
            description="DSR export links: read export objects only",
            groups=[self.link_signers],
            statements=[
                iam.PolicyStatement(
                    sid="ReadExports",
                    actions=["s3:GetObject"],
                    resources=[self.exports_bucket.arn_for_objects("*")],
                ),
                iam.PolicyStatement(
                    sid="ExportsKey",
                    actions=["kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"s3.{self.exports_bucket.stack.region}.amazonaws.com"
                        }
                    },
                ),
            ],
        )
        access_key = iam.AccessKey(self, "ExportLinkSignerKey", user=self.link_signer)
        self.signer_secret = secretsmanager.Secret(
            self,
            "ExportLinkSignerCredentials",
            description="DSR: access key of the export link signer",
            encryption_key=key,
            secret_object_value={
                "access_key_id": SecretValue.unsafe_plain_text(access_key.access_key_id),
                "secret_access_key": access_key.secret_access_key,
            },
            removal_policy=RemovalPolicy.RETAIN,
        )

    # --- helpers ----------------------------------------------------------------------------------------

    def _build_function(self, construct_id: str, spec: c.FunctionSpec) -> PythonFunction:
        fn = PythonFunction(
            self,
            construct_id,
            spec=spec,
            layers=self._layers,
            vpc=self._network.vpc,
            security_groups=[self._database.client_security_group],
            key=self._key,
            environment=self._environment,
        )
        self._database.grant_proxy_connect(fn)
        self._audit.allow_publish(fn)
        return fn

    def _build_step(self, construct_id: str, spec: c.FunctionSpec) -> PythonFunction:
        return self._build_function(f"{construct_id}Step", spec)

    def _allow_send_email(self, fn: PythonFunction) -> None:
        fn.allow(
            "SendSubjectEmail",
            ["ses:SendEmail"],
            [self.sender_identity.email_identity_arn],
            {"StringEquals": {"ses:FromAddress": self.sender}},
        )

    def _executions_arn(self) -> str:
        # arn:aws:states:<region>:<account>:execution:<state machine name>:<execution name>
        stack = self.state_machine.stack
        prefix = f"arn:{stack.partition}:states:{stack.region}:{stack.account}"
        return f"{prefix}:execution:{c.DSR_STATE_MACHINE_NAME}:*"

    def _invoke(
        self,
        construct_id: str,
        fn: PythonFunction,
        payload: Mapping[str, object],
        *,
        response_only: bool = True,
        **options: object,
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=fn.function,
            payload=sfn.TaskInput.from_object(dict(payload)),
            payload_response_only=response_only,
            # The retry below covers Lambda's service errors and the domain's transient ones.
            retry_on_service_exceptions=False,
            **options,  # type: ignore[arg-type]
        )
        task.add_retry(
            errors=list(c.DSR_RETRY_ERRORS),
            interval=c.DSR_RETRY_INTERVAL,
            max_attempts=c.DSR_RETRY_ATTEMPTS,
            backoff_rate=c.DSR_RETRY_BACKOFF,
        )
        return task

    def _build_state_machine(self, key: kms.IKey) -> sfn.StateMachine:
        ids = {
            "request_id": sfn.JsonPath.string_at("$.request_id"),
            "org_id": sfn.JsonPath.string_at("$.org_id"),
        }

        record_failure = self._invoke(
            "RecordFailure",
            self.status,
            {**ids, "action": "fail", "error": sfn.JsonPath.object_at("$.error")},
            result_path=sfn.JsonPath.DISCARD,
        ).next(sfn.Fail(self, "Failed", error="DsrFailed", cause="a step failed: see the request's failure"))

        def guarded(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
            task.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")
            return task

        record = guarded(self._invoke("Record", self.status, {**ids, "action": "record"}))
        no_data = guarded(
            self._invoke("AnswerNoDataHeld", self.status, {**ids, "action": "close_no_data"})
        ).next(sfn.Succeed(self, "NoDataHeld"))
        expire = guarded(
            self._invoke("Expire", self.status, {**ids, "action": "expire"}, result_path=sfn.JsonPath.DISCARD)
        ).next(sfn.Succeed(self, "Unverified"))
        verify = self._invoke(
            "SendVerification",
            self.verification,
            {**ids, "task_token": sfn.JsonPath.task_token},
            response_only=False,  # the output is what the verify route answers, kept under $.verification
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            task_timeout=sfn.Timeout.duration(c.DSR_VERIFICATION_TASK_TIMEOUT),
            result_path="$.verification",
        )
        # Expiry: the SLA monitor fails the task once the code expired; the timeout is the backstop.
        verify.add_catch(expire, errors=["VerificationExpired", "States.Timeout"], result_path="$.error")
        verify.add_catch(record_failure, errors=["States.ALL"], result_path="$.error")

        notify = guarded(self._invoke("NotifyAndClose", self.notify, ids)).next(sfn.Succeed(self, "Answered"))
        export = guarded(self._invoke("Export", self.export, ids)).next(notify)
        erase = guarded(self._invoke("Erase", self.erasure, ids)).next(notify)
        rectify = guarded(self._invoke("Rectify", self.change, {**ids, "action": "rectify"})).next(notify)
        restrict = guarded(self._invoke("Restrict", self.change, {**ids, "action": "restrict"})).next(notify)
        route = (
            sfn.Choice(self, "RouteByType")
            .when(sfn.Condition.string_equals("$.type", "access"), export)
            .when(sfn.Condition.string_equals("$.type", "portability"), export)
            .when(sfn.Condition.string_equals("$.type", "erasure"), erase)
            .when(sfn.Condition.string_equals("$.type", "rectification"), rectify)
            .when(sfn.Condition.string_equals("$.type", "restriction"), restrict)
            # A Choice cannot catch: a type this machine does not know goes to the failure path by hand.
            .otherwise(
                sfn.Pass(
                    self,
                    "UnknownType",
                    parameters={
                        **ids,
                        "error": {"Error": "UnknownRequestType", "Cause": "no branch for the type"},
                    },
                ).next(record_failure)
            )
        )
        definition = record.next(
            sfn.Choice(self, "AnythingHeld")
            .when(sfn.Condition.boolean_equals("$.no_data_held", True), no_data)
            .otherwise(verify.next(route))
        )

        role = ServiceRole(
            self,
            "StateMachineRole",
            service="states.amazonaws.com",
            description="DSR state machine: invokes its steps",
        )
        steps = [self.status, self.verification, self.export, self.erasure, self.change, self.notify]
        role.allow(
            "InvokeSteps",
            ["lambda:InvokeFunction"],
            [fn.function.function_arn for fn in steps],  # unqualified: the tasks name no version or alias
        )
        role.allow("LogDelivery", list(_SFN_LOG_DELIVERY_ACTIONS), ["*"])
        role.allow("XRayTracing", list(_XRAY_ACTIONS), ["*"])
        self.state_machine_role = role
        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=c.LOG_RETENTION,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=c.DSR_STATE_MACHINE_NAME,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            role=role.immutable,
            tracing_enabled=True,
            # Inputs and outputs hold ids and flags only; still, keep execution data out of the logs.
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
        )
        machine.node.add_dependency(role.policy)
        return machine

    def _build_sla_monitor(self, key: kms.IKey) -> PythonFunction:
        """Hourly: deadline alerts to an SNS topic (subscribe the DPO team), expired verifications closed."""
        self.alerts = sns.Topic(
            self, "SlaAlerts", display_name="DSR deadline alerts", master_key=key, enforce_ssl=True
        )
        fn = PythonFunction(
            self,
            "SlaMonitor",
            spec=c.DSR_SLA_FN,
            layers=self._layers,
            vpc=self._network.vpc,
            security_groups=[self._database.client_security_group],
            key=key,
            environment={
                **self._database.proxy_environment,
                "DSR_STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "DSR_ALERT_TOPIC_ARN": self.alerts.topic_arn,
                "DSR_DUE_SOON_DAYS": str(c.DSR_DUE_SOON_DAYS),
            },
        )
        self._database.grant_proxy_connect(fn)
        fn.allow("AlertDeadlines", ["sns:Publish"], [self.alerts.topic_arn])
        fn.allow("AlertTopicKey", ["kms:GenerateDataKey", "kms:Decrypt"], [key.key_arn], {
            "StringEquals": {"kms:ViaService": f"sns.{self.alerts.stack.region}.amazonaws.com"}
        })  # fmt: skip
        fn.allow(
            "CloseExpiredVerifications", ["states:SendTaskFailure"], [self.state_machine.state_machine_arn]
        )
        self.sla_schedule = events.Rule(
            self,
            "SlaSchedule",
            description="Hourly: DSR deadline alerts and expiry of unconfirmed verifications.",
            schedule=events.Schedule.rate(c.DSR_SLA_SCHEDULE),
            targets=[targets.LambdaFunction(fn.function)],
        )
        return fn

    @property
    def functions(self) -> list[PythonFunction]:
        return [
            self.api,
            self.status,
            self.verification,
            self.export,
            self.erasure,
            self.change,
            self.notify,
            self.sla,
        ]
