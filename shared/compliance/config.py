"""Function settings: validated pydantic models built once, at the edge, from the environment.

This is the only module that reads ``os.environ``. A handler declares its model with
``@init_environment(Model)``: the model is validated when the handler module is imported
(the cold start), so a misconfigured function fails before its first event, and the
validated instance is cached per model class for ``get_settings(Model)``.

Keep one settings class per function: the local runtime loads every function into one
interpreter, and the cache is keyed by class.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from compliance.errors import ConfigurationError

if TYPE_CHECKING:
    from compliance.dsr.verification import VerificationPolicy

M = TypeVar("M", bound="EnvSettings")
F = TypeVar("F", bound=Callable[..., Any])

_cache: dict[type[EnvSettings], EnvSettings] = {}


class EnvSettings(BaseModel):
    """Base of every settings model: fields are read from upper-cased environment variables."""

    # Built on first validation: a handler pays only for its own settings model at cold start.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def from_environ(cls: type[M], environ: Mapping[str, str] | None = None) -> M:
        source = os.environ if environ is None else environ
        values = {name: source[name.upper()] for name in cls.model_fields if name.upper() in source}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            # Name the variables, never echo their values (they may be secrets).
            bad = sorted({str(err["loc"][0]).upper() for err in exc.errors() if err["loc"]})
            raise ConfigurationError(
                f"{cls.__name__}: missing or invalid environment variables {bad}"
            ) from exc


class DatabaseSettings(EnvSettings):
    """How a function reaches PostgreSQL (RDS Proxy with IAM auth in AWS)."""

    db_host: str = Field(min_length=1)
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str = Field(min_length=1)
    db_user: str = Field(min_length=1)
    db_auth: Literal["iam", "secret"] = "iam"
    db_secret_arn: str | None = None
    db_sslmode: Literal["require", "verify-ca", "verify-full"] = "require"
    db_connect_timeout_s: int = Field(default=5, ge=1, le=60)
    aws_region: str = Field(default="us-east-1", min_length=1)


class AuthorizerSettings(DatabaseSettings):
    # Authentication failures are audit events.
    audit_queue_url: str = Field(min_length=1)


class IngestApiSettings(EnvSettings):
    ingest_queue_url: str = Field(min_length=1)
    audit_queue_url: str = Field(min_length=1)


class FieldEncryptionSettings(EnvSettings):
    """Field-level encryption: the KMS key that wraps the per-subject data keys."""

    field_key_id: str = Field(min_length=1, max_length=2048)
    # The in-process cache of unwrapped data keys (compliance.crypto.key_cache): how long another
    # process may go on reading a subject after its shred, and KMS calls per distinct key.
    field_key_cache_max_age_s: int = Field(default=300, ge=1, le=3600)
    field_key_cache_max_entries: int = Field(default=1000, ge=1, le=100_000)


class ProcessorSettings(DatabaseSettings, FieldEncryptionSettings):
    """The ingest-queue consumer: seals personal fields, audits new data keys and rejections."""

    audit_queue_url: str = Field(min_length=1)
    idempotency_table_name: str = Field(min_length=1)
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    # The DSR secret: keys each address's look-up key (subjects.email_key) so DSRs can name a person by
    # e-mail. Without it addresses are stored without one (and DSRs by e-mail refuse to guess).
    dsr_secret_arn: str | None = Field(default=None, min_length=1, max_length=2048)


class AdminApiSettings(DatabaseSettings, FieldEncryptionSettings):
    """API keys, the catalog, org settings and usage-record reads (which decrypt fields)."""

    audit_queue_url: str = Field(min_length=1)


class DsrApiSettings(DatabaseSettings, FieldEncryptionSettings):
    """The data subject request API: the request store, its workflow and the exports' links."""

    audit_queue_url: str = Field(min_length=1)
    dsr_state_machine_arn: str = Field(min_length=1, max_length=2048)
    # Secrets Manager JSON secret {"key": "<hex of >= 32 random bytes>"}: keys the subject keys and
    # the verification codes' hashes (compliance.dsr.subject_keys, compliance.dsr.verification).
    dsr_secret_arn: str = Field(min_length=1, max_length=2048)
    exports_bucket: str = Field(min_length=1)
    exports_key_id: str = Field(min_length=1, max_length=2048)
    # How long a presigned export link in GET /v1/dsr/{id} is valid (SigV4 allows at most 7 days).
    dsr_export_link_s: int = Field(default=3600, ge=60, le=604_800)
    # The export link signer's access key (JSON {"access_key_id", "secret_access_key"}); without it links
    # are signed by the function's role session and stop working when that session ends.
    export_signer_secret_arn: str | None = Field(default=None, min_length=1, max_length=2048)


class PiiApiSettings(EnvSettings):
    """The PII scan API: no database, only the audit queue for its api.request events."""

    audit_queue_url: str = Field(min_length=1)


class AuditAppendSettings(DatabaseSettings):
    """The FIFO consumer: malformed events go to the dead-letter queue with their reason."""

    audit_dead_letter_queue_url: str = Field(min_length=1)


class AuditCheckpointSettings(DatabaseSettings):
    """The scheduled signer of tree heads (asymmetric KMS key; S3 Object Lock anchor bucket)."""

    audit_signing_key_id: str = Field(min_length=1)
    audit_anchor_bucket: str = Field(min_length=1)
    # How long S3 Object Lock (compliance mode) keeps each anchored checkpoint: 7 years by default.
    audit_anchor_retention_days: int = Field(default=2557, ge=1, le=36_500)


class AuditApiSettings(DatabaseSettings):
    """Audit query, verification, proofs and exports."""

    audit_queue_url: str = Field(min_length=1)
    audit_signing_key_id: str = Field(min_length=1)
    exports_bucket: str = Field(min_length=1)
    # Download URLs are signed by a session of this role, assumed per export for at least the URL
    # expiry: a presigned URL cannot outlive the credentials that signed it.
    export_download_role_arn: str = Field(min_length=1, max_length=2048)
    # At most 1 h: the function's role assumes the download role (role chaining caps sessions at 1 h).
    export_url_expiry_s: int = Field(default=900, ge=60, le=3600)


class MigrationSettings(EnvSettings):
    """The migration function logs in as the master user (direct to the instance, not the proxy)."""

    db_host: str = Field(min_length=1)
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str = Field(min_length=1)
    db_secret_arn: str = Field(min_length=1)
    db_app_secret_arn: str = Field(min_length=1)
    db_app_user: str = Field(min_length=1)
    db_sslmode: Literal["require", "verify-ca", "verify-full"] = "require"
    migrations_dir: str = Field(default="/opt/migrations", min_length=1)
    aws_region: str = Field(default="us-east-1", min_length=1)


def init_environment(model: type[M]) -> Callable[[F], F]:
    """First decorator of every handler: validate the environment at import, fail fast."""
    settings = model.from_environ()
    _cache[model] = settings

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return handler(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def get_settings(model: type[M]) -> M:
    """The settings validated by ``init_environment`` for this model."""
    try:
        return _cache[model]  # type: ignore[return-value]
    except KeyError:
        raise ConfigurationError(f"{model.__name__} was never initialised by @init_environment") from None


class PiiSweepSettings(DatabaseSettings):
    """The scheduled PII sweep: bounded samples of columns the catalog says hold no personal data."""

    audit_queue_url: str = Field(min_length=1)
    # Per column: the most recent rows, each value cut to this many characters, at most this many bytes.
    pii_sweep_rows_per_column: int = Field(default=1000, ge=1, le=100_000)
    pii_sweep_value_chars: int = Field(default=4096, ge=16, le=100_000)
    pii_sweep_column_bytes: int = Field(default=262_144, ge=1024, le=16_777_216)
    # Per organisation, shared out over its columns (~1 MB/s of scanning per vCPU).
    pii_sweep_org_bytes: int = Field(default=2_097_152, ge=1024, le=67_108_864)
    # Findings below this confidence are not reported (unverified phone shapes, private addresses).
    pii_sweep_min_confidence: float = Field(default=0.7, ge=0.0, le=1.0)
    pii_sweep_statement_timeout_ms: int = Field(default=30_000, ge=100, le=600_000)


class KeyRewrapSettings(DatabaseSettings):
    """The daily key job: re-apply recorded shreds, then re-wrap data keys (KMS ReEncrypt)."""

    field_key_id: str = Field(min_length=1, max_length=2048)
    audit_queue_url: str = Field(min_length=1)
    # The shred ledger: prefix shreds/ of the audit anchor bucket (S3 Object Lock).
    shred_ledger_bucket: str = Field(min_length=1)
    # Live keys whose wrapped form is older than this are re-wrapped under the key's newest material.
    key_rewrap_max_age_days: int = Field(default=30, ge=1, le=3650)
    key_rewrap_batch_size: int = Field(default=100, ge=1, le=1000)


class DsrWorkflowSettings(DatabaseSettings, FieldEncryptionSettings):
    """The steps of the data subject request state machine (functions/dsr/steps.py)."""

    audit_queue_url: str = Field(min_length=1)
    dsr_secret_arn: str = Field(min_length=1, max_length=2048)
    exports_bucket: str = Field(min_length=1)
    exports_key_id: str = Field(min_length=1, max_length=2048)
    # The verified SES identity the subject's e-mails come from.
    dsr_sender: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    dsr_verification_ttl_days: int = Field(default=7, ge=1, le=30)
    # Presigned export links e-mailed to the subject (SigV4 allows at most 7 days).
    dsr_export_link_ttl_s: int = Field(default=604_800, ge=60, le=604_800)
    # As DsrApiSettings.export_signer_secret_arn: 7-day links need the signer's long-lived key.
    export_signer_secret_arn: str | None = Field(default=None, min_length=1, max_length=2048)
    shred_ledger_bucket: str = Field(min_length=1)
    shred_ledger_retention_days: int = Field(ge=1, le=36_500)

    def verification_policy(self) -> VerificationPolicy:
        from compliance.dsr.verification import VerificationPolicy

        return VerificationPolicy(ttl_days=self.dsr_verification_ttl_days)


class DsrSlaSettings(DatabaseSettings):
    """The scheduled DSR SLA monitor."""

    dsr_state_machine_arn: str = Field(min_length=1, max_length=2048)
    dsr_alert_topic_arn: str = Field(min_length=1, max_length=2048)
    # Alert on open requests with at most this many days left (and on overdue ones).
    dsr_due_soon_days: int = Field(default=7, ge=0, le=60)
