"""The e-mails a data subject receives (compliance.dsr.messages): the code only in the verification mail,
links only in the export mail, and never an address or a value of the subject."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from compliance.dsr import messages

REQUEST = uuid.UUID("0b7f3c1e-7d7a-4f55-9a39-2f1f0c3a9d11")
SUBJECT = uuid.UUID("5d1e9b0c-3a4b-4c5d-8e6f-7a8b9c0d1e2f")
EXPIRES = datetime(2026, 12, 14, 9, 30, 59, tzinfo=UTC)
CODE = "ABCDE-12345"
LINKS = {
    "json": "https://exports.example.test/org/subject/req/export.json?X-Amz-Signature=aaa",
    "csv": "https://exports.example.test/org/subject/req/export.zip?X-Amz-Signature=bbb",
}
RECEIPT = {
    "subject_id": str(SUBJECT),
    "rows_total": 7,
    "keys_shredded": ["key-1", "key-2"],
    "tables": [{"table": "subjects", "action": "delete", "rows": 1}],
    "exports_deleted": 1,
}


def all_mails() -> dict[str, tuple[str, str]]:
    return {
        "verification": messages.verification(REQUEST, CODE, EXPIRES),
        "export_ready": messages.export_ready(REQUEST, LINKS, EXPIRES),
        "erased": messages.erased(REQUEST, RECEIPT),
        "rectified": messages.rectified(REQUEST),
        "restricted": messages.restricted(REQUEST),
    }


def test_the_verification_mail_holds_the_code_its_expiry_and_the_reference() -> None:
    # When the verification mail is built / Then the body gives the code, the UTC expiry and the request
    subject, body = messages.verification(REQUEST, CODE, EXPIRES)
    assert subject == "Confirm your data request"
    assert f"give this code: {CODE}\n" in body
    assert "valid until 2026-12-14 09:30 UTC" in body
    assert f"Request reference: {REQUEST}" in body
    # And the subject line gives nothing away
    assert CODE not in subject


def test_every_mail_names_its_request_and_only_the_verification_mail_a_code() -> None:
    for name, (subject, body) in all_mails().items():
        assert f"Request reference: {REQUEST}\n" in body, name
        assert str(REQUEST) not in subject, name
        if name != "verification":
            assert CODE not in body and "code" not in body.lower(), name


def test_only_the_export_mail_holds_links_one_per_format_sorted() -> None:
    # Given two export links / When the export mail is built
    subject, body = messages.export_ready(REQUEST, LINKS, EXPIRES)
    # Then each link is listed under its format, in format order, with the links' expiry
    assert subject == "Your data is ready to download"
    assert f"- CSV: {LINKS['csv']}\n- JSON: {LINKS['json']}\n" in body
    assert "The links work until 2026-12-14 09:30 UTC" in body
    # And no other mail holds a link
    for name, (_subject, other) in all_mails().items():
        if name != "export_ready":
            assert "https://" not in other and "X-Amz" not in other, name


def test_the_erasure_mail_gives_counts_and_nothing_else_of_the_receipt() -> None:
    subject, body = messages.erased(REQUEST, RECEIPT)
    assert subject == "Your personal data was erased"
    assert "Records erased or cleared: 7. Encryption keys destroyed: 2.\n" in body
    # The receipt's ids (the subject's pseudonym, its key ids, table names) stay out of the mail
    assert str(SUBJECT) not in body and "key-1" not in body and "subjects" not in body


def test_the_erasure_mail_counts_nothing_for_an_empty_receipt_and_reads_shredded_key_ids() -> None:
    _, empty = messages.erased(REQUEST, {})
    assert "Records erased or cleared: 0. Encryption keys destroyed: 0.\n" in empty
    _, other_shape = messages.erased(REQUEST, {"rows_total": 1, "shredded_key_ids": ["k"]})
    assert "Records erased or cleared: 1. Encryption keys destroyed: 1.\n" in other_shape


def test_no_mail_holds_an_address() -> None:
    for name, (subject, body) in all_mails().items():
        assert "@" not in subject + body, name
