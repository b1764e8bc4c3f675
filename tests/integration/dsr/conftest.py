"""Subjects with sealed personal data in two organisations, for the collection of access requests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

import boto3
import pytest

from compliance.audit.emit import RequestOrigin, key_created
from compliance.audit.events import AuditEventIn, AuditResult
from compliance.crypto import DataKeyCache, EncryptionContext, KmsDataKeys
from compliance.crypto.session import FieldCrypto
from compliance.db.audit import append_events
from tests.conftest import ProvisionedDatabase

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Seeded:
    """A subject as written: its ids and the plaintext of what was sealed."""

    org_id: uuid.UUID
    subject_id: uuid.UUID
    external_id: str
    email: str | None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # request_id -> plaintext values


@pytest.fixture
def kms_key(aws: None) -> str:
    return str(boto3.client("kms").create_key()["KeyMetadata"]["Arn"])


def crypto_for(kms_key: str) -> FieldCrypto:
    """A process's field crypto (its own key cache)."""
    return FieldCrypto(KmsDataKeys(boto3.client("kms"), kms_key), kms_key_id=kms_key, cache=DataKeyCache())


@pytest.fixture
def writer(kms_key: str) -> FieldCrypto:
    return crypto_for(kms_key)


@pytest.fixture
def reader(kms_key: str) -> FieldCrypto:
    """Another process than the writer: nothing it decrypts comes from the writer's cache."""
    return crypto_for(kms_key)


_INSERT_RECORD = """
    INSERT INTO usage_records (org_id, request_id, subject_id, provider, model, prompt_tokens,
        completion_tokens, cost, currency, latency_ms, occurred_at, received_at, prompt_text,
        completion_text, client_ip, batch_id)
    VALUES (%s, %s, %s, 'openai', 'gpt-4o', %s, %s, %s, 'USD', 120, %s, %s, %s, %s, %s, %s)
"""


def seed_subject(
    db: ProvisionedDatabase,
    crypto: FieldCrypto,
    org_id: uuid.UUID,
    external_id: str,
    *,
    email: str | None,
    records: Sequence[tuple[str, str | None, str | None, str | None]],
) -> Seeded:
    """A subject (e-mail sealed) and its usage records ``(request_id, prompt, completion, ip)``,
    each personal text sealed in its row's context, as the ingest processor writes them."""
    subject_id = uuid.uuid4()
    seeded = Seeded(org_id, subject_id, external_id, email)

    def seal(encryptor: Any, table: str, column: str, value: str | None) -> str | None:
        context = EncryptionContext(org_id, table, column, subject_id)
        return None if value is None else str(encryptor.encrypt(value, context))

    with crypto.tenant(db.app, org_id) as (conn, encryptor):
        conn.execute(
            "INSERT INTO subjects (id, org_id, external_id, created_at, email) VALUES (%s, %s, %s, %s, %s)",
            (subject_id, org_id, external_id, T0, seal(encryptor, "subjects", "email", email)),
        )
        for number, (request_id, prompt, completion, ip) in enumerate(records):
            conn.execute(
                _INSERT_RECORD,
                (
                    org_id,
                    request_id,
                    subject_id,
                    10 + number,
                    20 + number,
                    "0.00123456",
                    T0,
                    T0,
                    seal(encryptor, "usage_records", "prompt_text", prompt),
                    seal(encryptor, "usage_records", "completion_text", completion),
                    seal(encryptor, "usage_records", "client_ip", ip),
                    uuid.uuid4(),
                ),
            )
            seeded.records[request_id] = {"prompt": prompt, "completion": completion, "ip": ip}
    return seeded


def append_subject_events(
    db: ProvisionedDatabase, org_id: uuid.UUID, subject_id: uuid.UUID
) -> list[AuditEventIn]:
    """Two events naming the subject: a DPO's key creation (resource), and one the subject did (actor)."""
    by_dpo = key_created(
        actor="api_key:" + str(uuid.uuid4()),
        org_id=org_id,
        subject_id=subject_id,
        key_id=uuid.uuid4(),
        kms_key_id="arn:aws:kms:us-east-1:000000000000:key/test",
        occurred_at=T0,
        origin=RequestOrigin(ip_address=ip_address("198.51.100.9"), user_agent="dpo-console/1.0"),
    )
    by_subject = AuditEventIn(
        event_id=uuid.uuid4(),
        occurred_at=T0,
        event_type="consent.granted",
        actor=f"subject:{subject_id}",
        org_id=org_id,
        resource=f"consent:{uuid.uuid4()}",
        action="grant",
        result=AuditResult.SUCCESS,
        ip_address=ip_address("203.0.113.50"),
        user_agent="subject-browser/2.0",
    )
    with db.app.tenant(org_id) as conn:
        append_events(conn, org_id, [by_dpo, by_subject])
    return [by_dpo, by_subject]
