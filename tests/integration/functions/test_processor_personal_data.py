"""The ingest processor protects personal data: sealed fields, per-subject keys, the org's PII mode."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import boto3
import pytest

from compliance.audit.sink import MemoryAuditSink
from compliance.crypto.context import EncryptionContext
from compliance.crypto.session import FieldCrypto, kms_field_crypto
from compliance.db import organisations as org_repo

EVENT = "ingest/sqs-usage-personal-data.json"
EMAIL = "ada.lovelace@example.com"
CARD = "4111 1111 1111 1111"


@pytest.fixture
def crypto(field_key: str) -> FieldCrypto:
    """A reader with its own key cache (another process than the processor's)."""
    return kms_field_crypto(field_key, max_age_s=300, max_entries=100)


def usage_rows(migrated_db: Any, org: str) -> dict[str, dict[str, Any]]:
    with migrated_db.app.tenant(org) as conn:
        rows = conn.execute(
            "SELECT request_id, subject_id, prompt_text, completion_text, client_ip FROM usage_records"
        ).fetchall()
    return {
        r["request_id"]: {
            "subject_id": r["subject_id"],
            "prompt": r["prompt_text"],
            "completion": r["completion_text"],
            "ip": r["client_ip"],
        }
        for r in rows
    }


@pytest.fixture
def decrypt(crypto: FieldCrypto, migrated_db: Any, org: str) -> Any:
    """``decrypt(value, column, subject, table="usage_records")`` as another process would."""

    def read(value: str, column: str, subject: Any, table: str = "usage_records") -> str:
        with crypto.tenant(migrated_db.app, UUID(org)) as (_conn, encryptor):
            return encryptor.decrypt(value, EncryptionContext(UUID(org), table, column, subject))

    return read


@pytest.fixture
def consented(org: str, grant_consent: Any) -> None:
    """Both subjects of the sample message agreed to prompt logging."""
    grant_consent(org, "user-42")
    grant_consent(org, "user-7")


def set_pii_mode(migrated_db: Any, org: str, mode: str) -> None:
    with migrated_db.owner() as conn:
        org_repo.set_setting(conn, UUID(org), "pii", {"mode": mode, "regions": ["GB", "US"]})


def test_personal_fields_are_stored_sealed_and_decrypt_only_in_their_own_context(
    consented: None, processor: Any, migrated_db: Any, org: str, event: Any, lambda_context: Any, decrypt: Any
) -> None:
    # Given a message whose records carry prompt and completion text, a client IP and an e-mail address
    # When it is processed (org default mode: encrypt)
    assert processor.handler(event(EVENT), lambda_context) == {"batchItemFailures": []}

    # Then no plaintext reaches the database: every personal field is a v1 ciphertext
    rows = usage_rows(migrated_db, org)
    with migrated_db.owner() as conn:
        dump = " ".join(str(r) for r in conn.execute("SELECT * FROM usage_records").fetchall())
        subject = conn.execute("SELECT id, email FROM subjects WHERE external_id = 'user-42'").fetchone()
    assert EMAIL not in dump and "203.0.113.7" not in dump and "quarterly" not in dump
    first = rows["req-pd-1"]
    assert all(first[k].startswith("enc:v1:") for k in ("prompt", "completion", "ip"))
    assert subject is not None and subject[1].startswith("enc:v1:")

    # And each decrypts in its own row's context, the e-mail under the subject's row
    assert CARD in decrypt(first["prompt"], "prompt_text", first["subject_id"])
    assert decrypt(first["ip"], "client_ip", first["subject_id"]) == "203.0.113.7"
    assert decrypt(subject[1], "email", subject[0], table="subjects") == EMAIL
    # A record without a subject keeps its figures but not its text: nobody could have consented
    orphan = rows["req-pd-3"]
    assert orphan["subject_id"] is None and orphan["prompt"] is None

    # But moved to another column or another subject's context, a value does not decrypt
    from compliance.crypto.errors import DecryptionError

    with pytest.raises(DecryptionError):
        decrypt(first["prompt"], "completion_text", first["subject_id"])
    with pytest.raises(DecryptionError):
        decrypt(first["prompt"], "prompt_text", rows["req-pd-2"]["subject_id"])


def test_each_new_data_key_is_audited_once(
    consented: None, processor: Any, org: str, event: Any, lambda_context: Any, audit: MemoryAuditSink
) -> None:
    # Given two consenting subjects and one record without a subject, never seen before
    # When their message is processed, then redelivered under another message id
    sqs_event = event(EVENT)
    processor.handler(sqs_event, lambda_context)
    sqs_event["Records"][0]["messageId"] = "redelivered"
    processor.handler(sqs_event, lambda_context)

    # Then two keys were created (one per subject with sealed fields), each audited once
    created = [e for e in audit.events if e.event_type == "key.created"]
    assert len(created) == 2
    assert sorted(e.resource.split(":")[0] for e in created) == ["subject", "subject"]
    assert all(e.actor == "system:ingest" and str(e.org_id) == org for e in created)


def test_redact_mode_replaces_findings_by_placeholders_before_sealing(
    consented: None, processor: Any, migrated_db: Any, org: str, event: Any, lambda_context: Any, decrypt: Any
) -> None:
    # Given an organisation whose PII mode is "redact"
    set_pii_mode(migrated_db, org, "redact")
    # When a record whose prompt holds an e-mail address and a card number is processed
    assert processor.handler(event(EVENT), lambda_context) == {"batchItemFailures": []}
    # Then the stored prompt has placeholders where they were, and nothing else changed
    first = usage_rows(migrated_db, org)["req-pd-1"]
    prompt = decrypt(first["prompt"], "prompt_text", first["subject_id"])
    assert "<EMAIL_1>" in prompt and "<CREDIT_CARD_1>" in prompt
    assert EMAIL not in prompt and CARD not in prompt
    assert prompt.startswith("Draft a reply to <EMAIL_1>")
    # And text without findings is kept as sent
    second = usage_rows(migrated_db, org)["req-pd-2"]
    kept = decrypt(second["prompt"], "prompt_text", second["subject_id"])
    assert kept == "Summarise the attached quarterly report."


def test_reject_mode_keeps_neither_record_nor_text_and_audits_the_refusal_once(
    consented: None,
    processor: Any,
    migrated_db: Any,
    org: str,
    event: Any,
    lambda_context: Any,
    audit: MemoryAuditSink,
) -> None:
    # Given an organisation whose PII mode is "reject"
    set_pii_mode(migrated_db, org, "reject")
    sqs_event = event(EVENT)
    # When the message is processed, then redelivered under another message id
    assert processor.handler(sqs_event, lambda_context) == {"batchItemFailures": []}
    sqs_event["Records"][0]["messageId"] = "redelivered"
    assert processor.handler(sqs_event, lambda_context) == {"batchItemFailures": []}

    # Then the record with personal data in its text is not stored; the others are
    assert sorted(usage_rows(migrated_db, org)) == ["req-pd-2", "req-pd-3"]
    # And the refusal is an audit event naming the request and the finding types, never a value
    rejected = [e for e in audit.events if e.event_type == "usage.records_rejected"]
    assert len({e.event_id for e in rejected}) == 1  # the redelivery carries the same event id
    details = rejected[0].details
    assert details["request_ids"] == ["req-pd-1"] and details["count"] == 1
    types = {f["type"] for f in details["findings"]}
    assert {"EMAIL", "CREDIT_CARD"} <= types
    assert EMAIL not in json.dumps(details) and "4111" not in json.dumps(details)


def test_a_kms_outage_fails_the_message_and_loses_nothing(
    consented: None,
    processor: Any,
    migrated_db: Any,
    org: str,
    event: Any,
    lambda_context: Any,
    field_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given KMS is unreachable (nothing listens where the client connects)
    from botocore.config import Config

    from compliance.crypto.data_keys import KmsDataKeys
    from compliance.crypto.key_cache import DataKeyCache

    unreachable = boto3.client(
        "kms",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    down = FieldCrypto(KmsDataKeys(unreachable, field_key), kms_key_id=field_key, cache=DataKeyCache())
    healthy = processor._crypto
    monkeypatch.setattr(processor, "_crypto", lambda: down)
    processor._consumer.cache_clear()
    sqs_event = event(EVENT)

    # When the message is processed
    result = processor.handler(sqs_event, lambda_context)

    # Then it is reported failed (SQS retries it) and nothing was written, no key either
    assert result == {"batchItemFailures": [{"itemIdentifier": sqs_event["Records"][0]["messageId"]}]}
    assert usage_rows(migrated_db, org) == {}
    with migrated_db.owner() as conn:
        assert conn.execute("SELECT count(*) FROM data_keys").fetchone() == (0,)

    # And once KMS is back, the retried message stores every record
    monkeypatch.setattr(processor, "_crypto", healthy)
    processor._consumer.cache_clear()
    assert processor.handler(sqs_event, lambda_context) == {"batchItemFailures": []}
    assert len(usage_rows(migrated_db, org)) == 3


def test_without_consent_only_the_figures_are_stored_and_a_revocation_applies_to_later_records(
    processor: Any,
    migrated_db: Any,
    org: str,
    event: Any,
    lambda_context: Any,
    grant_consent: Any,
    decrypt: Any,
) -> None:
    # Given only user-42 agreed to prompt logging
    grant_consent(org, "user-42")
    # When the message is processed
    assert processor.handler(event(EVENT), lambda_context) == {"batchItemFailures": []}
    rows = usage_rows(migrated_db, org)
    # Then user-42's text is stored (sealed), user-7's record keeps its figures but no text
    assert rows["req-pd-1"]["prompt"] is not None
    assert rows["req-pd-2"]["prompt"] is None and rows["req-pd-2"]["completion"] is None
    with migrated_db.owner() as conn:
        tokens = conn.execute(
            "SELECT prompt_tokens FROM usage_records WHERE request_id = 'req-pd-2'"
        ).fetchone()
    assert tokens == (120,)

    # When user-42 revokes, and a later message arrives with new records
    with migrated_db.owner() as conn:
        conn.execute("UPDATE consents SET revoked_at = now() WHERE purpose = 'prompt_logging'")
    later = event(EVENT)
    body = json.loads(later["Records"][0]["body"])
    for record in body["records"]:
        record["request_id"] += "-later"
    later["Records"][0]["body"] = json.dumps(body)
    later["Records"][0]["messageId"] = "later-message"
    assert processor.handler(later, lambda_context) == {"batchItemFailures": []}

    # Then the later record holds no text, and the earlier one is untouched
    rows = usage_rows(migrated_db, org)
    assert rows["req-pd-1-later"]["prompt"] is None and rows["req-pd-1-later"]["ip"] is not None
    assert CARD in decrypt(rows["req-pd-1"]["prompt"], "prompt_text", rows["req-pd-1"]["subject_id"])


def test_a_restricted_subject_keeps_only_billing_figures_and_others_are_untouched(
    consented: None,
    processor: Any,
    migrated_db: Any,
    org: str,
    event: Any,
    lambda_context: Any,
    decrypt: Any,
) -> None:
    # Given user-42 (who consented to prompt logging) is restricted by a data subject request
    import uuid

    restriction = uuid.uuid4()
    with migrated_db.owner() as conn:
        conn.execute(
            "UPDATE subjects SET restricted_at = now(), restriction_request_id = %s"
            " WHERE org_id = %s AND external_id = 'user-42'",
            (restriction, org),
        )

    # When a message with their record (text, client IP, e-mail address) is processed
    assert processor.handler(event(EVENT), lambda_context) == {"batchItemFailures": []}

    # Then their record keeps its billing figures and subject link, and nothing else personal
    rows = usage_rows(migrated_db, org)
    restricted = rows["req-pd-1"]
    assert (restricted["prompt"], restricted["completion"], restricted["ip"]) == (None, None, None)
    with migrated_db.owner() as conn:
        figures = conn.execute(
            "SELECT u.prompt_tokens, u.completion_tokens, u.cost, u.model, s.external_id"
            " FROM usage_records u JOIN subjects s ON s.id = u.subject_id WHERE u.request_id = 'req-pd-1'"
        ).fetchone()
        subject = conn.execute(
            "SELECT email, restricted_at IS NOT NULL, restriction_request_id FROM subjects"
            " WHERE org_id = %s AND external_id = 'user-42'",
            (org,),
        ).fetchone()
        dump = " ".join(str(r) for r in conn.execute("SELECT * FROM usage_records").fetchall())
    assert figures is not None
    assert (figures[0], figures[1], str(figures[2]), figures[3], figures[4]) == (
        96,
        40,
        "0.00002100",
        "gpt-4o-mini",
        "user-42",
    )
    # And their address is not stored, the restriction stays in force
    assert subject == (None, True, restriction)
    assert "203.0.113.7" not in dump
    # And the unrestricted, consenting subject's text is stored as before
    other = rows["req-pd-2"]
    assert decrypt(other["prompt"], "prompt_text", other["subject_id"]) == (
        "Summarise the attached quarterly report."
    )


def test_addresses_are_stored_with_their_look_up_key_when_the_dsr_secret_is_given(
    aws: None, org: str, db_env: dict[str, str], field_key: str, audited: Any, migrated_db: Any,
    event: Any, lambda_context: Any, consented: None,
) -> None:  # fmt: skip
    import secrets as random

    from compliance.dsr.subject_keys import subject_key

    # Given a processor that has the DSR secret
    secret = random.token_bytes(32)
    arn = boto3.client("secretsmanager").create_secret(
        Name="dsr", SecretString=json.dumps({"key": secret.hex()})
    )
    boto3.client("dynamodb").create_table(
        TableName="idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    processor = audited(
        "functions.ingest.processor",
        {
            **db_env,
            "IDEMPOTENCY_TABLE_NAME": "idempotency",
            "FIELD_KEY_ID": field_key,
            "DSR_SECRET_ARN": arn["ARN"],
        },
    )
    # When the sample message (two subjects with addresses) is processed
    assert processor.handler(event(EVENT), lambda_context) == {"batchItemFailures": []}

    # Then each stored address has the key of its own (normalised) address, the address itself sealed
    with migrated_db.owner() as conn:
        rows = conn.execute(
            "SELECT external_id, email, email_key FROM subjects WHERE org_id = %s", (org,)
        ).fetchall()
    keyed = {external: bytes(key) for external, email, key in rows if email is not None}
    assert keyed and all(len(key) == 32 for key in keyed.values())
    assert keyed["user-42"] == subject_key(secret, UUID(org), email=EMAIL)
    assert all(email.startswith("enc:v1:") for _external, email, _key in rows if email is not None)
