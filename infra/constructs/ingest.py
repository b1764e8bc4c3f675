"""Usage ingest: API function -> SQS (with DLQ) -> processor -> PostgreSQL, idempotent per message."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants as c
from infra.constructs import permissions
from infra.constructs.audit import Audit
from infra.constructs.data_protection import DataProtection
from infra.constructs.database import Database
from infra.constructs.network import Network
from infra.constructs.python_function import PythonFunction


class Ingest(Construct):
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
        layers: Sequence[lambda_.ILayerVersion],
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=c.INGEST_DLQ_RETENTION,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=c.INGEST_RETENTION,
            visibility_timeout=c.INGEST_VISIBILITY_TIMEOUT,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=c.INGEST_MAX_RECEIVE_COUNT
            ),
        )

        # Powertools idempotency records: short-lived (TTL), so nothing to keep when the stack goes.
        self.idempotency_table = dynamodb.Table(
            self,
            "IdempotencyTable",
            partition_key=dynamodb.Attribute(
                name=c.IDEMPOTENCY_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            time_to_live_attribute=c.IDEMPOTENCY_TTL_ATTRIBUTE,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )

        self.api = PythonFunction(
            self,
            "Api",
            spec=c.INGEST_API_FN,
            layers=layers,
            vpc=network.vpc,
            security_groups=[network.security_group(self, "ApiSecurityGroup", "Ingest API function")],
            key=key,
            environment={"INGEST_QUEUE_URL": self.queue.queue_url, **audit.publish_environment},
        )
        permissions.send_to_queue(self.api, self.queue, key)
        audit.allow_publish(self.api)

        self.processor = PythonFunction(
            self,
            "Processor",
            spec=c.PROCESSOR_FN,
            layers=layers,
            vpc=network.vpc,
            security_groups=[database.client_security_group],
            key=key,
            environment={
                **database.proxy_environment,
                **audit.publish_environment,
                **data_protection.environment,
                "IDEMPOTENCY_TABLE_NAME": self.idempotency_table.table_name,
            },
        )
        # Seals prompt, completion, client IP and subject e-mail under per-subject data keys; audits
        # new keys and PII rejections.
        data_protection.allow_encrypt(self.processor)
        audit.allow_publish(self.processor)
        permissions.use_idempotency_table(self.processor, self.idempotency_table, key)
        permissions.consume_queue(self.processor, self.queue, key)
        database.grant_proxy_connect(self.processor)
        self.processor.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=c.INGEST_BATCH_SIZE,
                max_batching_window=c.INGEST_MAX_BATCHING_WINDOW,
                report_batch_item_failures=True,
                max_concurrency=c.PROCESSOR_FN.reserved_concurrency,
            )
        )

    @property
    def dead_letter_queues(self) -> list[sqs.IQueue]:
        return [self.dead_letter_queue]
