"""What the processor does to personal data before storing: the org's PII mode, which columns it seals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from compliance.crypto import (
    DataKeyCache,
    EncryptionContext,
    FieldEncryptor,
    InMemoryWrappedKeyStore,
    KeyScope,
    KmsDataKeys,
)
from compliance.ingest.protect import (
    latest_subject_emails,
    screen,
    seal_subject_emails,
    seal_usage_rows,
    sealing_scopes,
    without_unconsented_text,
)
from compliance.models.settings import PiiMode, PiiSettings
from compliance.models.usage import UsageRecordIn
from tests.unit.crypto.fakes import FakeKms

ORG = uuid.UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def record(request_id: str, prompt: str | None = None, **fields: Any) -> UsageRecordIn:
    values: dict[str, Any] = {
        "request_id": request_id,
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_tokens": 1,
        "completion_tokens": 1,
        "cost": "0.1",
        "occurred_at": T0,
        "prompt_text": prompt,
    }
    return UsageRecordIn.model_validate(values | fields)


PERSONAL = "Mail bob@example.org about card 4111 1111 1111 1111."
PLAIN = "Summarise the meeting notes."


def test_encrypt_mode_keeps_every_record_and_text_as_sent() -> None:
    records = [record("a", PERSONAL), record("b", PLAIN)]
    result = screen(records, PiiSettings(mode=PiiMode.ENCRYPT))
    assert [s.prompt_text for s in result.kept] == [PERSONAL, PLAIN]
    assert not result.rejected and not result.redacted_findings


def test_redact_mode_replaces_each_finding_by_its_type_placeholder() -> None:
    result = screen(
        [record("a", PERSONAL, completion_text="Sent to bob@example.org.")], PiiSettings(mode=PiiMode.REDACT)
    )
    (kept,) = result.kept
    assert kept.prompt_text == "Mail <EMAIL_1> about card <CREDIT_CARD_1>."
    assert kept.completion_text == "Sent to <EMAIL_1>."
    assert result.redacted_findings == {"EMAIL": 2, "CREDIT_CARD": 1}


def test_reject_mode_drops_only_records_with_findings_and_counts_them_by_type() -> None:
    result = screen(
        [record("a", PERSONAL), record("b", PLAIN), record("c")], PiiSettings(mode=PiiMode.REJECT)
    )
    assert result.rejected == ["a"]
    assert [s.record.request_id for s in result.kept] == ["b", "c"]
    assert result.rejected_findings == {"EMAIL": 1, "CREDIT_CARD": 1}


def test_only_catalogued_columns_are_sealed_each_under_its_row_context() -> None:
    kms = FakeKms()
    encryptor = FieldEncryptor(KmsDataKeys(kms, "key"), InMemoryWrappedKeyStore(), DataKeyCache())  # type: ignore[arg-type]
    subject = uuid.uuid4()
    kept = screen([record("a", PLAIN, subject_id="user-1", client_ip="192.0.2.1")], PiiSettings()).kept
    # Given a catalog that encrypts the prompt but (hypothetically) not the client IP
    (row,) = seal_usage_rows(encryptor, ORG, kept, {"user-1": subject}, {"prompt_text"})
    # Then the prompt is sealed to its row's subject and column, the IP stored as is
    context = EncryptionContext(ORG, "usage_records", "prompt_text", subject)
    assert (
        row["prompt_text"].startswith("enc:v1:") and encryptor.decrypt(row["prompt_text"], context) == PLAIN
    )
    assert row["client_ip"] == "192.0.2.1" and row["subject_id"] == subject


def test_a_subjects_address_is_the_one_of_its_latest_record() -> None:
    subject = uuid.uuid4()
    records = [
        record("b", subject_id="u", subject_email="new@example.org", occurred_at=T0 + timedelta(seconds=5)),
        record("a", subject_id="u", subject_email="old@example.org", occurred_at=T0),
        record("c", subject_id="u"),  # no address: changes nothing
    ]
    kept = screen(records, PiiSettings()).kept
    assert latest_subject_emails(kept, {"u": subject}) == {subject: "new@example.org"}


def test_only_changed_addresses_are_written_sealed() -> None:
    encryptor = FieldEncryptor(KmsDataKeys(FakeKms(), "key"), InMemoryWrappedKeyStore(), DataKeyCache())  # type: ignore[arg-type]
    same, moved, new = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    context = EncryptionContext(ORG, "subjects", "email", same)
    # Given stored addresses: one sealed and unchanged, one sealed and different, one subject without any
    stored = {
        same: encryptor.encrypt("a@example.org", context),
        moved: encryptor.encrypt("old@example.org", EncryptionContext(ORG, "subjects", "email", moved)),
    }
    emails = {same: "a@example.org", moved: "b@example.org", new: "c@example.org"}
    # When the slice's latest addresses are sealed against them
    changed = seal_subject_emails(encryptor, ORG, emails, stored, {"email"})
    # Then the unchanged address is not rewritten; the others are sealed to their own subject
    assert set(changed) == {moved, new}
    assert (
        encryptor.decrypt(changed[moved], EncryptionContext(ORG, "subjects", "email", moved))
        == "b@example.org"
    )


def test_an_unreadable_stored_address_is_rewritten() -> None:
    subject = uuid.uuid4()
    # Given a stored value that is not a ciphertext of this subject's key (here: plaintext of another)
    changed = seal_subject_emails(None, ORG, {subject: "a@example.org"}, {subject: "z@example.org"}, ())  # type: ignore[arg-type]
    assert changed == {subject: "a@example.org"}
    assert seal_subject_emails(None, ORG, {subject: "a@example.org"}, {subject: "a@example.org"}, ()) == {}  # type: ignore[arg-type]


def test_sealing_scopes_name_every_subject_sealed_and_the_org_key_for_subjectless_records() -> None:
    subject = uuid.uuid4()
    kept = screen(
        [record("a", PLAIN, subject_id="u"), record("b", PLAIN), record("c", subject_id="quiet")],
        PiiSettings(),
    ).kept
    quiet = uuid.uuid4()
    scopes = sealing_scopes(ORG, kept, {"u": subject, "quiet": quiet}, {"prompt_text"}, {}, {"email"})
    # Then the record without any sealable value ("quiet") needs no key
    assert scopes == {KeyScope(ORG, subject), KeyScope(ORG, None)}


def test_text_is_kept_only_for_consenting_subjects() -> None:
    # Given records of a consenting subject, a non-consenting one and one without a subject
    records = [
        record("a", PLAIN, subject_id="yes"),
        record("b", PLAIN, subject_id="no", completion_text="Done."),
        record("c", PLAIN),
        record("d", None, subject_id="no"),  # no text: nothing to drop
    ]
    kept, dropped = without_unconsented_text(records, {"yes"})
    # Then only the consenting subject's text survives; every record keeps its figures
    assert [(r.request_id, r.prompt_text, r.completion_text) for r in kept] == [
        ("a", PLAIN, None),
        ("b", None, None),
        ("c", None, None),
        ("d", None, None),
    ]
    assert dropped == 2 and all(r.prompt_tokens == 1 for r in kept)


def test_a_restricted_subjects_records_keep_only_their_billing_figures() -> None:
    from compliance.ingest.protect import without_restricted_data

    # Given records of a restricted subject (text, client IP, address), of another subject and of none
    full: dict[str, Any] = {
        "completion_text": "Done.",
        "client_ip": "203.0.113.7",
        "subject_email": "ada@example.com",
        "latency_ms": 120,
    }
    records = [
        record("a", PLAIN, subject_id="restricted", **full),
        record("b", PLAIN, subject_id="free", **full),
        record("c", PLAIN, **(full | {"subject_email": None})),
        record("d", None, subject_id="restricted"),
    ]

    # When the restriction is applied
    kept, touched = without_restricted_data(records, {"restricted"})

    # Then the restricted subject's records lose text, IP and address, and keep the subject and figures
    assert touched == 2
    a, b, c, d = kept
    assert (a.prompt_text, a.completion_text, a.client_ip, a.subject_email) == (None, None, None, None)
    assert (a.subject_id, a.model, a.prompt_tokens, a.completion_tokens, a.cost, a.latency_ms) == (
        "restricted",
        "gpt-4o",
        1,
        1,
        records[0].cost,
        120,
    )
    assert d.subject_id == "restricted" and d.prompt_text is None
    # And the other records are untouched, in order
    assert [b, c] == records[1:3]
    assert [r.request_id for r in kept] == ["a", "b", "c", "d"]
    # And with nobody restricted, nothing changes
    assert without_restricted_data(records, set()) == (records, 0)


def test_an_unchanged_address_without_its_look_up_key_is_written_again_once() -> None:
    encryptor = FieldEncryptor(KmsDataKeys(FakeKms(), "key"), InMemoryWrappedKeyStore(), DataKeyCache())  # type: ignore[arg-type]
    subject = uuid.uuid4()
    stored = {
        subject: encryptor.encrypt("a@example.org", EncryptionContext(ORG, "subjects", "email", subject))
    }
    # Given the same address as stored: not written, unless its key is missing (rewrite)
    assert seal_subject_emails(encryptor, ORG, {subject: "a@example.org"}, stored, {"email"}) == {}
    again = seal_subject_emails(
        encryptor, ORG, {subject: "a@example.org"}, stored, {"email"}, rewrite={subject}
    )
    assert set(again) == {subject}
