"""The one stack: composes the domain constructs and wires them together (no resources of its own)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from infra import constants as c
from infra.constructs.api import Api
from infra.constructs.audit import Audit
from infra.constructs.data_protection import DataProtection
from infra.constructs.database import Database
from infra.constructs.dsr import Dsr
from infra.constructs.ingest import Ingest
from infra.constructs.layers import Layers
from infra.constructs.network import Network
from infra.constructs.observability import Observability
from infra.constructs.pii import Pii
from infra.constructs.security import Security
from infra.constructs.storage import AccessLogs


class ComplianceControlPlaneStack(Stack):
    def __init__(self, scope: Construct, construct_id: str = c.STACK_NAME, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, description=c.STACK_DESCRIPTION, **kwargs)
        for name, value in c.TAGS.items():
            # DBProxyTargetGroup has no Tags property (CloudFormation validation warns F3002).
            Tags.of(self).add(name, value, exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])

        self.security = Security(self, "Security")
        key = self.security.key
        self.network = Network(self, "Network", key=key)
        self.layers = Layers(self, "Layers")
        self.database = Database(self, "Database", network=self.network, key=key, layers=self.layers.all)
        self.access_logs = AccessLogs(self, "AccessLogs")
        self.data_protection = DataProtection(self, "DataProtection")
        self.audit = Audit(
            self,
            "Audit",
            network=self.network,
            database=self.database,
            key=key,
            access_logs=self.access_logs,
            layers=self.layers.all,
        )
        self.data_protection.add_key_job(
            network=self.network, database=self.database, audit=self.audit, key=key, layers=self.layers.all
        )
        self.ingest = Ingest(
            self,
            "Ingest",
            network=self.network,
            database=self.database,
            audit=self.audit,
            data_protection=self.data_protection,
            key=key,
            layers=self.layers.all,
        )
        self.pii = Pii(
            self,
            "Pii",
            network=self.network,
            database=self.database,
            audit=self.audit,
            key=key,
            layers=self.layers.all,
        )
        self.dsr = Dsr(
            self,
            "Dsr",
            network=self.network,
            database=self.database,
            audit=self.audit,
            data_protection=self.data_protection,
            key=key,
            access_logs=self.access_logs,
            layers=self.layers.all,
        )
        self.dsr.allow_address_keys(self.ingest.processor)
        self.api = Api(
            self,
            "Api",
            network=self.network,
            database=self.database,
            ingest_function=self.ingest.api.function,
            pii_function=self.pii.api.function,
            dsr_function=self.dsr.api.function,
            audit=self.audit,
            data_protection=self.data_protection,
            key=key,
            layers=self.layers.all,
        )
        self.observability = Observability(self, "Observability", alarm_topic=self.security.alarm_topic)
        self.observability.alarm_on_queues(
            work_queues=[self.ingest.queue, self.audit.queue],
            dead_letter_queues=[*self.ingest.dead_letter_queues, self.audit.dead_letter_queue],
        )
        for metric_name in c.AUDIT_ALARM_METRICS:
            self.observability.alarm_on_app_metric(
                metric_name, metric_name, f"{metric_name}: the audit trail needs an operator now."
            )
        self.observability.alarm_on_errors(
            "AuditCheckpointErrors",
            self.audit.checkpoint.function,
            "The scheduled audit checkpoint failed: tree heads are not being signed and anchored.",
        )
        for metric_name in c.PII_SWEEP_ALARM_METRICS:
            self.observability.alarm_on_app_metric(
                metric_name,
                metric_name,
                f"{metric_name}: the PII sweep found personal data where the catalog says there is none,"
                " or could not sweep an organisation (see the pii.sweep_completed audit events).",
            )
        self.observability.alarm_on_errors(
            "PiiSweepErrors",
            self.pii.sweep.function,
            "The scheduled PII sweep failed: columns catalogued as not personal are not being checked.",
        )
        for metric_name in c.KEY_JOB_ALARM_METRICS:
            self.observability.alarm_on_app_metric(
                metric_name,
                metric_name,
                f"{metric_name}: data keys of an organisation were not re-wrapped, or recorded shreds could"
                " not be re-applied (a restored database may serve erased subjects).",
            )
        assert self.data_protection.rewrap is not None
        self.observability.alarm_on_errors(
            "KeyRewrapErrors",
            self.data_protection.rewrap.function,
            "The daily key job failed: shreds are not re-applied after restores and keys are not re-wrapped.",
        )
        for metric_name in c.DSR_ALARM_METRICS:
            self.observability.alarm_on_app_metric(
                metric_name,
                metric_name,
                f"{metric_name}: a data subject request is past its legal deadline, or the SLA monitor could"
                " not check an organisation (see the DSR deadline alerts topic).",
            )
        self.observability.alarm_on_errors(
            "DsrSlaErrors",
            self.dsr.sla.function,
            "The hourly DSR SLA monitor failed: deadlines are not watched and expired codes stay open.",
        )
        self.observability.alarm_on_app_metric(
            "DsrExecutionsFailed",
            "DsrFailed",
            "DsrFailed: a data subject request ended in its failure path (see the request's failure).",
        )
        # Functions that read the schema deploy after this deploy's migrations ran.
        self.database.run_migrations_before(
            self.data_protection.rewrap,
            self.api.authorizer_function,
            self.api.admin_function,
            self.ingest.processor,
            *self.audit.functions,
            self.pii.sweep,
            *self.dsr.functions,
        )

        # Stable output names for operators, the e2e tests and the local runtime.
        CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the REST API stage")
        CfnOutput(self, "IngestQueueUrl", value=self.ingest.queue.queue_url)
        CfnOutput(self, "IngestDeadLetterQueueUrl", value=self.ingest.dead_letter_queue.queue_url)
        CfnOutput(self, "DatabaseProxyEndpoint", value=self.database.proxy.endpoint)
        CfnOutput(self, "AlarmTopicArn", value=self.security.alarm_topic.topic_arn)
        CfnOutput(self, "AuditQueueUrl", value=self.audit.queue.queue_url)
        CfnOutput(self, "AuditDeadLetterQueueUrl", value=self.audit.dead_letter_queue.queue_url)
        CfnOutput(self, "DsrStateMachineArn", value=self.dsr.state_machine.state_machine_arn)
        CfnOutput(self, "DsrAlertTopicArn", value=self.dsr.alerts.topic_arn)
        CfnOutput(self, "AuditSigningKeyArn", value=self.audit.signing_key.key_arn)
        CfnOutput(self, "AuditAnchorBucketName", value=self.audit.anchor_bucket.bucket_name)
        CfnOutput(self, "FieldKeyArn", value=self.data_protection.field_key.key_arn)
        CfnOutput(self, "ExportsBucketName", value=self.audit.exports_bucket.bucket_name)
