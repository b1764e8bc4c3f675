"""Data protection end to end over HTTP: the org's PII mode set through the API, records ingested
with personal data, stored sealed under per-subject keys, read back decrypted by a content role, and
erased for good once the subject's key is shredded. All from the synthesized template."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from compliance.models.auth import Role
from compliance_tools.loadgen import ApiClient, wait_for
from tests.e2e.test_ingest_e2e import new_org_with_key

pytestmark = pytest.mark.e2e

EMAIL = "grace.hopper@example.com"


def record(request_id: str, subject: str, prompt: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "subject_id": subject,
        "subject_email": EMAIL,
        "client_ip": "198.51.100.23",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt_tokens": 42,
        "completion_tokens": 7,
        "cost": "0.00001000",
        "occurred_at": datetime.now(UTC).isoformat(),
        "prompt_text": prompt,
        "completion_text": "Done.",
    }


def test_personal_data_is_redacted_sealed_readable_by_role_and_erased_by_shredding(deployed: Any) -> None:
    # Given an organisation with a key that ingests, reads content and sets PII handling
    org, key = new_org_with_key(deployed, [Role.INGEST, Role.DPO, Role.COST_ADMIN])
    client = ApiClient(deployed.base_url, key)
    try:
        # When its DPO sets the PII mode to redact
        put = client.request("PUT", "/v1/settings/pii", {"mode": "redact", "regions": ["US"]})
        assert put.status == 200, put.body

        # And the subject agreed to prompt logging (recorded by the platform's key)
        consent = client.request(
            "POST",
            "/v1/consents",
            {"subject_id": "user-dp", "purpose": "prompt_logging", "notice_version": "n-1", "source": "e2e"},
        )
        assert consent.status == 201, consent.body

        # And a record whose prompt holds an e-mail address and an SSN is ingested
        request_id = f"dp-{uuid4().hex[:8]}"
        prompt = f"Email {EMAIL} the form for SSN 536-22-8412 please."
        posted = client.request("POST", "/v1/usage", {"records": [record(request_id, "user-dp", prompt)]})
        assert posted.status == 202, posted.body
        assert wait_for(lambda: client.request("GET", f"/v1/usage/{request_id}").status == 200, timeout_s=120)

        # Then the database holds only ciphertext for it and for the subject's address
        with psycopg.connect(deployed.owner_dsn) as conn:
            row = conn.execute(
                "SELECT u.prompt_text, u.client_ip, s.email, s.id FROM usage_records u"
                " JOIN subjects s ON s.org_id = u.org_id AND s.id = u.subject_id"
                " WHERE u.org_id = %s AND u.request_id = %s",
                (org, request_id),
            ).fetchone()
        assert row is not None
        assert all(value.startswith("enc:v1:") for value in row[:3])
        subject_id: UUID = row[3]

        # And a content role reads it decrypted, with the findings replaced
        body = client.request("GET", f"/v1/usage/{request_id}").json()
        assert body["content_status"] == "decrypted"
        assert body["prompt_text"] == "Email <EMAIL_1> the form for SSN <SSN_1> please."
        assert body["client_ip"] == "198.51.100.23"

        # When the subject's data key is shredded (the erasure step of a DSR, issue 5)
        from compliance.audit.sink import MemoryAuditSink
        from compliance.crypto import DataKeyCache, EncryptionContext, KeyShreddedError, KmsDataKeys
        from compliance.crypto.ledger import MemoryShredLedger
        from compliance.crypto.session import FieldCrypto
        from compliance.crypto.shredding import shred
        from compliance.db.connection import Database

        owner = Database(deployed.owner_dsn)
        try:
            receipt = shred(
                owner,
                MemoryAuditSink(),
                UUID(org),
                subject_id,
                actor="e2e",
                now=datetime.now(UTC),
                ledger=MemoryShredLedger(),
            )
            assert receipt.count == 1

            # Then a process without the key cached (the API's cache lets go within its max age)
            # cannot read the stored prompt or the address any more: a typed error, never garbage
            (field_key,) = [
                res.ref
                for lid, res in deployed.runtime.physical.items()
                if lid.startswith("DataProtectionFieldKey") and res.type == "AWS::KMS::Key"
            ]
            kms = KmsDataKeys(deployed.runtime.client("kms"), field_key)
            reader = FieldCrypto(kms, kms_key_id=field_key, cache=DataKeyCache())
            with reader.tenant(owner, UUID(org)) as (_conn, encryptor):
                context = EncryptionContext(UUID(org), "usage_records", "prompt_text", subject_id)
                with pytest.raises(KeyShreddedError):
                    encryptor.decrypt(row[0], context)
                with pytest.raises(KeyShreddedError):
                    encryptor.decrypt(row[2], EncryptionContext(UUID(org), "subjects", "email", subject_id))
        finally:
            owner.close()

        # And the record's figures are still there for billing
        figures = client.request("GET", f"/v1/usage/{request_id}").json()
        assert figures["prompt_tokens"] == 42 and figures["cost"] == "0.00001000"
    finally:
        client.close()


def test_a_revoked_consent_stops_text_being_stored_for_every_later_record(deployed: Any) -> None:
    # Given a subject whose prompt_logging consent is recorded, and a record of theirs stored with its text
    _org, key = new_org_with_key(deployed, [Role.INGEST, Role.DPO])
    client = ApiClient(deployed.base_url, key)
    try:
        granted = client.request(
            "POST",
            "/v1/consents",
            {"subject_id": "user-rv", "purpose": "prompt_logging", "notice_version": "n-1", "source": "e2e"},
        )
        assert granted.status == 201, granted.body
        before = f"rv-{uuid4().hex[:8]}"
        assert (
            client.request("POST", "/v1/usage", {"records": [record(before, "user-rv", "Hi.")]}).status == 202
        )
        assert wait_for(lambda: client.request("GET", f"/v1/usage/{before}").status == 200, timeout_s=120)

        # When the subject withdraws it, and another record of theirs arrives afterwards
        revoked = client.request("POST", f"/v1/consents/{granted.json()['consent_id']}/revoke")
        assert revoked.status == 200, revoked.body
        after = f"rv-{uuid4().hex[:8]}"
        assert (
            client.request("POST", "/v1/usage", {"records": [record(after, "user-rv", "Hello.")]}).status
            == 202
        )
        assert wait_for(lambda: client.request("GET", f"/v1/usage/{after}").status == 200, timeout_s=120)

        # Then the earlier record keeps its text, the later one only its figures
        first, second = (client.request("GET", f"/v1/usage/{rid}").json() for rid in (before, after))
        assert first["has_prompt_text"] is True and first["prompt_text"] == "Hi."
        assert second["has_prompt_text"] is False and second["prompt_text"] is None
        assert second["prompt_tokens"] == 42

        # And the history shows the grant with its revocation time
        history = client.request("GET", "/v1/subjects/user-rv/consents").json()
        assert [item["revoked_at"] is not None for item in history["items"]] == [True]
    finally:
        client.close()
