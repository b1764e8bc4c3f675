"""The ingest-queue consumer: partial batch failures, idempotent per SQS message id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.typing import LambdaContext

from compliance.audit.sink import AuditSink
from compliance.crypto.session import FieldCrypto
from compliance.db.connection import Database
from compliance.ingest.store import store_usage_message
from compliance.models.usage import UsageMessage
from compliance.observability import logger


class UsageQueueConsumer:
    """Processes an SQS event: each message is one slice of a batch; failures go back to the queue."""

    def __init__(
        self,
        *,
        db: Database,
        crypto: FieldCrypto,
        sink: AuditSink,
        persistence: BasePersistenceLayer,
        idempotency_ttl_s: int,
        email_key_secret: Callable[[], bytes | None] = lambda: None,
    ) -> None:
        self._db = db
        self._email_key_secret = email_key_secret
        self._crypto = crypto
        self._sink = sink
        self._config = IdempotencyConfig(
            event_key_jmespath="messageId",
            expires_after_seconds=idempotency_ttl_s,
            raise_on_no_idempotency_key=True,
        )
        # idempotent_function is annotated as returning Any; the wrapper keeps _store's signature.
        self._store_once: Callable[..., int] = idempotent_function(
            data_keyword_argument="record", config=self._config, persistence_store=persistence
        )(self._store)
        # Every failed message is reported, even when all failed: the response says which to retry.
        self._batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def _store(self, record: SQSRecord) -> int:
        try:
            message = UsageMessage.model_validate_json(record.body)
        except ValueError:
            # Say which message and why, never its content; SQS retries it, then dead-letters it.
            logger.warning(
                "malformed ingest message",
                extra={
                    "message_id": record.message_id,
                    "receive_count": record.attributes.approximate_receive_count,
                },
            )
            raise
        return store_usage_message(
            message,
            db=self._db,
            crypto=self._crypto,
            sink=self._sink,
            email_key_secret=self._email_key_secret(),
        )

    def _handle(self, record: SQSRecord) -> int:
        return self._store_once(record=record)

    def process(self, event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        self._config.register_lambda_context(context)
        return process_partial_response(
            event=event, record_handler=self._handle, processor=self._batch, context=context
        )
