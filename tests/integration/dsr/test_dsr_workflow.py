"""The steps of the data subject request state machine (compliance.dsr.workflow) on the migrated
PostgreSQL, moto's KMS, an in-memory export store, shred ledger, audit sink and e-mail sender: each step
moves the request row as the execution does, audits every status change, and is safe to retry."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from psycopg.rows import dict_row

from compliance.audit.sink import MemoryAuditSink
from compliance.aws.exports import export_key
from compliance.crypto import EncryptionContext
from compliance.crypto.ledger import MemoryShredLedger
from compliance.crypto.session import FieldCrypto
from compliance.db import dsr_requests as repo
from compliance.dsr import verification as codes
from compliance.dsr import workflow
from compliance.dsr.workflow import NoContactAddressError, StepContext, StepInput
from compliance.errors import NotFoundError
from compliance.models.dsr import DsrCorrections
from tests.conftest import ProvisionedDatabase
from tests.integration.dsr.conftest import T0, Seeded, seed_subject
from tests.unit.dsr.fakes_email import MemoryEmailSender
from tests.unit.dsr.fakes_exports import MemoryExportStore

NOW = T0 + timedelta(days=1)
ADA = "ada.lovelace@example.com"
NEW_ADA = "ada.byron@example.org"
PROMPT = "Summarise the quarterly report for Ada"
KEY = secrets.token_bytes(32)
POLICY = codes.VerificationPolicy(ttl_days=7)
TOKEN = "task-token-" + "x" * 40
CODE_IN_MAIL = re.compile(r"give this code: ([0-9A-Z]{5}-[0-9A-Z]{5})")


class CountingStore(MemoryExportStore):
    """The in-memory export store, counting uploads (a retried step must upload nothing new)."""

    puts: int = 0

    def put(self, key: str, body: Any, *, content_type: str, size: int, sha256_hex: str) -> None:
        self.puts += 1
        super().put(key, body, content_type=content_type, size=size, sha256_hex=sha256_hex)


class World:
    """Org A with ada (e-mail, two usage records) and nobody (no e-mail); org B with nothing."""

    def __init__(self, db: ProvisionedDatabase, writer: FieldCrypto, reader: FieldCrypto) -> None:
        self.db, self.writer, self.crypto = db, writer, reader
        self.org = db.create_org("Org A")
        self.other_org = db.create_org("Org B")
        self.sink = MemoryAuditSink()
        self.sender = MemoryEmailSender()
        self.store = CountingStore()
        self.ledger = MemoryShredLedger()
        self.ctx = StepContext(db=db.app, sink=self.sink, now=NOW)
        self.ada: Seeded = seed_subject(
            db,
            writer,
            self.org,
            "user-1",
            email=ADA,
            records=[("req-1", PROMPT, "Revenue grew 4 %", "203.0.113.7"), ("req-2", None, None, None)],
        )
        self.mute: Seeded = seed_subject(db, writer, self.org, "user-2", email=None, records=[])

    def request(
        self,
        dsr_type: str,
        subject: uuid.UUID | None,
        *,
        status: str = "received",
        formats: list[str] | None = None,
        corrections: DsrCorrections | None = None,
    ) -> uuid.UUID:
        """A stored request as the API leaves it (corrections sealed under the subject's key)."""
        request_id = uuid.uuid4()
        with self.writer.tenant(self.db.app, self.org) as (conn, encryptor):
            sealed = None
            if corrections is not None:
                sealed = encryptor.encrypt(
                    corrections.model_dump_json(exclude_none=True),
                    EncryptionContext(self.org, "dsr_requests", "corrections", subject),
                )
            repo.insert_request(
                conn,
                self.org,
                {
                    "id": request_id,
                    "type": dsr_type,
                    "regulation": "gdpr",
                    "status": status,
                    "subject_id": subject,
                    "subject_key": secrets.token_bytes(32),
                    "export_formats": formats,
                    "corrections": sealed,
                    "received_at": T0,
                    "deadline": T0 + timedelta(days=30),
                },
            )
        return request_id

    def verified(self, dsr_type: str, subject: uuid.UUID, **kw: Any) -> uuid.UUID:
        """A request whose subject confirmed the code (what the verify route leaves)."""
        request_id = self.request(dsr_type, subject, status="verified", **kw)
        with self.db.owner() as conn:
            conn.execute("UPDATE dsr_requests SET verified_at = %s WHERE id = %s", (NOW, request_id))
        return request_id

    def row(self, request_id: uuid.UUID) -> dict[str, Any]:
        with self.db.owner() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute("SELECT * FROM dsr_requests WHERE id = %s", (request_id,)).fetchone()
        assert row is not None
        return dict(row)

    def steps(self, request_id: uuid.UUID) -> list[str]:
        return [s["name"] for s in self.row(request_id)["steps"]]

    def changes(self, request_id: uuid.UUID) -> list[tuple[str, str, str]]:
        """Every dsr.status_changed event of the request: (from, to, step)."""
        return [
            (str(e.details["from_status"]), str(e.details["to_status"]), str(e.details["step"]))
            for e in self.sink.events
            if e.event_type == "dsr.status_changed" and e.resource == f"dsr:{request_id}"
        ]

    def events(self, event_type: str) -> list[Any]:
        return [e for e in self.sink.events if e.event_type == event_type]

    def subject_row(self, subject: uuid.UUID) -> tuple[Any, ...] | None:
        with self.db.owner() as conn:
            return conn.execute(
                "SELECT email, restricted_at, restriction_request_id FROM subjects WHERE id = %s", (subject,)
            ).fetchone()

    def decrypt(self, text: str, context: EncryptionContext) -> str:
        with self.crypto.tenant(self.db.app, self.org) as (_conn, encryptor):
            return encryptor.decrypt(text, context)

    def send_verification(self, request_id: uuid.UUID) -> None:
        workflow.send_verification(
            self.ctx, self.crypto, self.sender, self.org, request_id, TOKEN, key=KEY, policy=POLICY
        )


@pytest.fixture
def world(migrated_db: ProvisionedDatabase, writer: FieldCrypto, reader: FieldCrypto) -> World:
    return World(migrated_db, writer, reader)


def status_step(world: World, action: str, request_id: uuid.UUID, **kw: Any) -> dict[str, Any]:
    step = StepInput.model_validate({"request_id": request_id, "org_id": world.org, "action": action, **kw})
    return workflow.run_status_step(world.ctx, step)


# --- record and the "no data held" path ---------------------------------------------------------


def test_record_of_a_known_subject_asks_for_verification_once(world: World) -> None:
    # Given a received access request for a subject the org holds
    request_id = world.request("access", world.ada.subject_id, formats=["json"])

    # When the record step runs, and is retried
    first = status_step(world, "record", request_id)
    again = status_step(world, "record", request_id)

    # Then the execution is told to verify, with ids and flags only
    expected = {
        "request_id": str(request_id),
        "org_id": str(world.org),
        "type": "access",
        "verify": True,
        "no_data_held": False,
    }
    assert first == again == expected
    # And the row records the step once, the status unchanged, audited once
    row = world.row(request_id)
    assert row["status"] == "received"
    assert [(s["name"], s["status"], s["detail"]) for s in row["steps"]] == [
        ("record", "succeeded", {"no_data_held": False})
    ]
    assert world.changes(request_id) == [("received", "received", "record")]


def test_an_unknown_subject_needs_no_verification_and_closes_as_no_data_held(world: World) -> None:
    # Given a received request for a subject the org does not hold
    request_id = world.request("access", None, formats=["json"])

    # When it is recorded, then closed (twice: a retry)
    recorded = status_step(world, "record", request_id)
    closed = status_step(world, "close_no_data", request_id)
    closed_again = status_step(world, "close_no_data", request_id)

    # Then the path skips verification and the request completes as "no data held"
    assert (recorded["verify"], recorded["no_data_held"]) == (False, True)
    assert closed["outcome"] == closed_again["outcome"] == "no_data_held"
    row = world.row(request_id)
    assert (row["status"], row["outcome"], row["completed_at"]) == ("completed", "no_data_held", NOW)
    assert world.steps(request_id) == ["record", "close"]
    assert world.changes(request_id) == [
        ("received", "received", "record"),
        ("received", "completed", "close"),
    ]
    # And nobody was e-mailed
    assert world.sender.sent == []


def test_record_refuses_a_closed_request(world: World) -> None:
    from compliance.errors import ConflictError

    request_id = world.request("access", world.ada.subject_id, formats=["json"], status="cancelled")
    with pytest.raises(ConflictError):
        status_step(world, "record", request_id)
    assert world.steps(request_id) == [] and world.sink.events == []


# --- verification -------------------------------------------------------------------------------


def test_send_verification_stores_the_hash_and_token_and_mails_a_code_that_verifies(world: World) -> None:
    # Given a recorded request of a subject with an address
    request_id = world.request("erasure", world.ada.subject_id)
    status_step(world, "record", request_id)

    # When the verification step runs
    world.send_verification(request_id)

    # Then the request waits for the code, holding its hash, times, attempts and the task token
    row = world.row(request_id)
    assert row["status"] == "awaiting_verification"
    assert row["task_token"] == TOKEN
    assert row["code_issued_at"] == NOW and row["code_expires_at"] == NOW + timedelta(days=7)
    assert (row["failed_attempts"], row["max_attempts"]) == (0, POLICY.max_attempts)
    assert world.changes(request_id)[-1] == ("received", "awaiting_verification", "send_verification")

    # And one e-mail went to the subject's address, with a code
    (mail,) = world.sender.sent
    assert mail.to == ADA
    found = CODE_IN_MAIL.search(mail.body)
    assert found is not None
    code = found.group(1)
    assert str(request_id) in mail.body
    # That the stored hash accepts under the same key, and only under it
    state = codes.VerificationState(
        request_id=request_id,
        code_hash=bytes(row["code_hash"]),
        issued_at=row["code_issued_at"],
        expires_at=row["code_expires_at"],
        max_attempts=row["max_attempts"],
    )
    _, result = codes.attempt(state, code, KEY, NOW + timedelta(hours=1))
    assert result.outcome is codes.Outcome.VERIFIED
    _, other_key = codes.attempt(state, code, secrets.token_bytes(32), NOW + timedelta(hours=1))
    assert other_key.outcome is codes.Outcome.WRONG
    # And the code appears nowhere but in the e-mail (not in the row, not in the audit trail)
    assert code.replace("-", "") not in json.dumps(row, default=str)
    assert code not in json.dumps([e.details for e in world.sink.events], default=str)


def test_a_subject_without_an_address_cannot_be_sent_a_code_and_nothing_changes(world: World) -> None:
    # Given a recorded request of a subject without an e-mail address
    request_id = world.request("erasure", world.mute.subject_id)
    status_step(world, "record", request_id)
    before, events_before = world.row(request_id), list(world.sink.events)

    # When the verification step runs / Then it fails with a 422 and changes nothing
    with pytest.raises(NoContactAddressError) as raised:
        world.send_verification(request_id)
    assert raised.value.status == 422
    assert world.row(request_id) == before
    assert before["task_token"] is None and before["code_hash"] is None
    assert world.sink.events == events_before
    assert world.sender.sent == []


def test_expire_closes_the_waiting_request_as_unverified_and_clears_the_token(world: World) -> None:
    # Given a request waiting for its code
    request_id = world.request("access", world.ada.subject_id, formats=["json"])
    world.send_verification(request_id)

    # When the expire step runs (and is retried)
    out = status_step(world, "expire", request_id)
    status_step(world, "expire", request_id)

    # Then the request is expired, unverified, with no token left to answer
    assert out["outcome"] == "unverified"
    row = world.row(request_id)
    assert (row["status"], row["outcome"], row["task_token"], row["completed_at"]) == (
        "expired",
        "unverified",
        None,
        NOW,
    )
    assert world.steps(request_id) == ["send_verification", "expire"]
    assert world.changes(request_id) == [
        ("received", "awaiting_verification", "send_verification"),
        ("awaiting_verification", "expired", "expire"),
    ]


# --- access: export, notify --------------------------------------------------------------------------


def test_export_uploads_each_format_once_and_notify_mails_the_links_and_completes(world: World) -> None:
    # Given a verified access request for ada, in two formats
    request_id = world.verified("access", world.ada.subject_id, formats=["json", "csv"])

    # When the export step runs, and is retried
    out = workflow.run_export(world.ctx, world.crypto, world.store, world.org, request_id)
    again = workflow.run_export(world.ctx, world.crypto, world.store, world.org, request_id)

    # Then one object per format is uploaded under the subject's prefix and recorded on the request
    keys = [export_key(world.org, str(world.ada.subject_id), request_id, ext) for ext in ("json", "zip")]
    assert sorted(world.store.objects) == sorted(keys)
    assert world.store.puts == 2  # the retry uploaded nothing
    row = world.row(request_id)
    assert [(o["format"], o["key"]) for o in row["export_objects"]] == list(
        zip(["json", "csv"], keys, strict=True)
    )
    assert out["objects"] == again["objects"] == 2 and out["large"] is False
    assert row["status"] == "running"
    assert world.steps(request_id) == ["start", "export"]
    assert world.changes(request_id) == [("verified", "running", "start"), ("running", "running", "export")]
    # And the export holds ada's data
    assert PROMPT in world.store.objects[keys[0]].body.decode()

    # When the subject is told (twice: a retry)
    links_before = len(world.store.links)
    closed = workflow.notify_and_close(
        world.ctx, world.crypto, world.sender, world.store, world.org, request_id, link_ttl_s=3600
    )
    workflow.notify_and_close(
        world.ctx, world.crypto, world.sender, world.store, world.org, request_id, link_ttl_s=3600
    )

    # Then one e-mail to ada holds a fresh link per format, valid for the TTL asked for
    assert closed["outcome"] == "answered"
    (mail,) = world.sender.sent
    assert mail.to == ADA
    new_links = world.store.links[links_before:]
    assert sorted(new_links) == sorted((k, 3600) for k in keys)
    for key, _ttl in new_links:
        assert f"https://exports.example.test/{key}?X-Amz-Expires=3600" in mail.body
    # And the request is completed with the links' expiry, the links stored nowhere
    row = world.row(request_id)
    assert (row["status"], row["outcome"], row["completed_at"]) == ("completed", "answered", NOW)
    assert row["export_expires_at"] == NOW + timedelta(seconds=3600)
    assert "X-Amz-Expires" not in json.dumps(row, default=str)
    assert world.changes(request_id)[-1] == ("running", "completed", "close")
    assert "X-Amz-Expires" not in json.dumps([e.details for e in world.sink.events], default=str)


def test_notify_caps_the_link_lifetime_at_seven_days(world: World) -> None:
    request_id = world.verified("access", world.ada.subject_id, formats=["json"])
    workflow.run_export(world.ctx, world.crypto, world.store, world.org, request_id)
    workflow.notify_and_close(
        world.ctx, world.crypto, world.sender, world.store, world.org, request_id, link_ttl_s=30 * 24 * 3600
    )
    assert world.store.links[-1][1] == workflow.MAX_LINK_TTL_S
    assert world.row(request_id)["export_expires_at"] == NOW + timedelta(seconds=workflow.MAX_LINK_TTL_S)


# --- erasure -----------------------------------------------------------------------------------------


def test_erasure_deletes_exports_and_the_subject_stores_the_receipt_and_tells_the_subject(
    world: World,
) -> None:
    # Given a verified erasure request for ada, an earlier export of hers and one of another subject
    request_id = world.verified("erasure", world.ada.subject_id)
    hers = export_key(world.org, str(world.ada.subject_id), uuid.uuid4(), "json")
    theirs = export_key(world.org, str(world.mute.subject_id), uuid.uuid4(), "json")
    for key in (hers, theirs):
        world.store.objects[key] = _stored(b"{}")

    # When the erasure step runs, and is retried
    out = workflow.run_erasure(
        world.ctx, world.crypto, world.ledger, world.store, world.sender, world.org, request_id
    )
    again = workflow.run_erasure(
        world.ctx, world.crypto, world.ledger, world.store, world.sender, world.org, request_id
    )

    # Then her exports are gone, the other subject's kept
    assert (
        out
        == again
        == {"request_id": str(request_id), "org_id": str(world.org), "type": "erasure", "erased": True}
    )
    assert sorted(world.store.objects) == [theirs]
    # And her subject row is gone, the receipt stored on the request with the exports deleted
    assert world.subject_row(world.ada.subject_id) is None
    row = world.row(request_id)
    receipt = row["receipt"]
    assert receipt["exports_deleted"] == 1
    assert {t["table"]: (t["action"], t["rows"]) for t in receipt["tables"]} == {
        "consents": ("delete", 0),
        "data_keys": ("retain", 1),
        "dsr_requests": ("retain", 1),
        "usage_records": ("update", 2),
        "subjects": ("delete", 1),
    }
    assert receipt["rows_total"] == 5
    # And her data key was destroyed and the shred recorded once (the retry shredded nothing more)
    with world.db.owner() as conn:
        keys = conn.execute(
            "SELECT key_id, destroyed_at FROM data_keys WHERE subject_id = %s", (world.ada.subject_id,)
        ).fetchall()
    assert receipt["keys_shredded"] == [str(key) for key, _destroyed in keys]
    assert all(destroyed is not None for _key, destroyed in keys)
    assert [(r.org_id, r.subject_id) for r in world.ledger.records] == [(world.org, world.ada.subject_id)]
    assert receipt["verification"]["verified"] is True
    assert world.steps(request_id) == ["start", "erase"]
    assert world.changes(request_id) == [("verified", "running", "start"), ("running", "running", "erase")]
    # And one e-mail went to the address read before it was erased, naming no value of hers
    (mail,) = world.sender.sent
    assert mail.to == ADA
    assert mail.subject == "Your personal data was erased"
    assert ADA not in mail.body and PROMPT not in mail.body
    assert f"Records erased or cleared: {receipt['rows_total']}" in mail.body

    # When the request is closed / Then it completes without a second e-mail (the subject was told)
    workflow.notify_and_close(
        world.ctx, world.crypto, world.sender, world.store, world.org, request_id, link_ttl_s=3600
    )
    row = world.row(request_id)
    assert (row["status"], row["outcome"]) == ("completed", "answered")
    assert len(world.sender.sent) == 1


def test_an_erasure_retried_after_it_committed_completes_its_receipt(world: World) -> None:
    from compliance.aws.email import EmailUnavailableError

    # Given a verified erasure whose first attempt stops after the erasure committed (here: SES refuses
    # the confirmation; a timeout or a lost connection at that point does the same)
    request_id = world.verified("erasure", world.ada.subject_id)

    class RefusingSender:
        def send(self, to: str, subject: str, body: str) -> str:
            raise EmailUnavailableError("the e-mail could not be sent")

    with pytest.raises(EmailUnavailableError):
        workflow.run_erasure(
            world.ctx, world.crypto, world.ledger, world.store, RefusingSender(), world.org, request_id
        )
    assert world.subject_row(world.ada.subject_id) is None  # erased, its link on the request cleared
    assert world.row(request_id)["subject_id"] is None

    # When the state machine retries the step
    out = workflow.run_erasure(
        world.ctx, world.crypto, world.ledger, world.store, world.sender, world.org, request_id
    )

    # Then it completes from the recorded subject: verified again, the receipt whole, and it says the
    # subject could not be told (the address went with the erasure)
    assert out["erased"] is True
    receipt = world.row(request_id)["receipt"]
    assert receipt["verification"]["verified"] is True
    assert receipt["subject_notified"] is False
    assert world.sender.sent == []
    assert [(r.org_id, r.subject_id) for r in world.ledger.records] == [(world.org, world.ada.subject_id)]


def test_an_erasure_whose_receipt_cannot_be_recorded_erases_nothing(world: World) -> None:
    # Given an audit trail that refuses the request's "erase" step event (recorded in the erasure's
    # own transaction)
    request_id = world.verified("erasure", world.ada.subject_id)
    publish = world.sink.publish

    def refuse_erase_step(events: Any) -> None:
        if any(e.event_type == "dsr.status_changed" and e.details.get("step") == "erase" for e in events):
            raise RuntimeError("audit trail down")
        publish(events)

    world.sink.publish = refuse_erase_step  # type: ignore[method-assign]

    # When the step runs / Then it fails and the subject is still there, their key alive
    with pytest.raises(Exception, match="audit"):
        workflow.run_erasure(
            world.ctx, world.crypto, world.ledger, world.store, world.sender, world.org, request_id
        )
    assert world.subject_row(world.ada.subject_id) is not None
    assert world.row(request_id)["receipt"] is None


def _stored(body: bytes) -> Any:
    import hashlib

    from tests.unit.dsr.fakes_exports import StoredObject

    return StoredObject(body, "application/json", hashlib.sha256(body).hexdigest())


# --- rectification -----------------------------------------------------------------------------------


def test_rectification_seals_the_new_address_and_audits_before_and_after_as_ciphertext(world: World) -> None:
    # Given a verified rectification request correcting ada's address
    request_id = world.verified(
        "rectification", world.ada.subject_id, corrections=DsrCorrections(email=NEW_ADA)
    )
    subject = world.ada.subject_id

    # When the change step rectifies, and is retried
    step = StepInput(request_id=request_id, org_id=world.org, action="rectify")
    out = workflow.run_change_step(world.ctx, world.crypto, step)
    workflow.run_change_step(world.ctx, world.crypto, step)

    # Then the subject's address is the new one, sealed in its own context
    assert out["rectified"] is True
    stored = world.subject_row(subject)
    assert stored is not None and stored[0].startswith("enc:")
    assert world.decrypt(stored[0], EncryptionContext(world.org, "subjects", "email", subject)) == NEW_ADA
    # And one subject.rectified event holds both values as ciphertext readable in the trail's context only
    (event,) = world.events("subject.rectified")
    assert event.details["request_id"] == str(request_id)
    (change,) = event.details["changes"]
    assert change["field"] == "email"
    assert ADA not in json.dumps(event.details) and NEW_ADA not in json.dumps(event.details)
    trail = EncryptionContext(world.org, "audit_events", "details", subject)
    assert world.decrypt(change["before"], trail) == ADA
    assert world.decrypt(change["after"], trail) == NEW_ADA
    assert world.steps(request_id) == ["start", "rectify"]

    # When the subject is told
    workflow.notify_and_close(
        world.ctx, world.crypto, world.sender, world.store, world.org, request_id, link_ttl_s=3600
    )
    # Then the confirmation goes to the corrected address and the request completes
    (mail,) = world.sender.sent
    assert (mail.to, mail.subject) == (NEW_ADA, "Your personal data was corrected")
    assert world.row(request_id)["status"] == "completed"
    assert world.changes(request_id) == [
        ("verified", "running", "start"),
        ("running", "running", "rectify"),
        ("running", "completed", "close"),
    ]


# --- restriction -------------------------------------------------------------------------------------


def test_restriction_marks_the_subject_once_and_notify_tells_them(world: World) -> None:
    # Given a verified restriction request for ada
    request_id = world.verified("restriction", world.ada.subject_id)

    # When the change step restricts, and is retried
    step = StepInput(request_id=request_id, org_id=world.org, action="restrict")
    out = workflow.run_change_step(world.ctx, world.crypto, step)
    workflow.run_change_step(world.ctx, world.crypto, step)

    # Then the subject is restricted by this request, audited once
    assert out["restricted"] is True
    stored = world.subject_row(world.ada.subject_id)
    assert stored is not None and stored[1:] == (NOW, request_id)
    (event,) = world.events("subject.restricted")
    assert event.details == {"request_id": str(request_id)}
    assert world.steps(request_id) == ["start", "restrict"]
    assert world.row(request_id)["steps"][-1]["detail"] == {"already_restricted": False}

    # When the subject is told
    workflow.notify_and_close(
        world.ctx, world.crypto, world.sender, world.store, world.org, request_id, link_ttl_s=3600
    )
    # Then they are e-mailed and the request completes
    (mail,) = world.sender.sent
    assert (mail.to, mail.subject) == (ADA, "Processing of your personal data is restricted")
    row = world.row(request_id)
    assert (row["status"], row["outcome"]) == ("completed", "answered")
    assert world.changes(request_id) == [
        ("verified", "running", "start"),
        ("running", "running", "restrict"),
        ("running", "completed", "close"),
    ]


# --- failure -----------------------------------------------------------------------------------------


def test_fail_records_the_error_and_the_lambda_message_and_clears_the_token(world: World) -> None:
    # Given a request waiting for its code
    request_id = world.request("access", world.ada.subject_id, formats=["json"])
    world.send_verification(request_id)
    cause = json.dumps(
        {
            "errorType": "EmailUnavailableError",
            "errorMessage": "the e-mail could not be sent",
            "stackTrace": ['  File "/var/task/x.py", line 1, in send'],
        }
    )

    # When the execution's Catch runs the fail step (and it is retried)
    out = status_step(world, "fail", request_id, error={"Error": "EmailUnavailableError", "Cause": cause})
    status_step(world, "fail", request_id, error={"Error": "Other", "Cause": "later"})

    # Then the request is failed with the error name and the Lambda's message, not its stack trace
    assert out["error"] == "EmailUnavailableError"
    row = world.row(request_id)
    assert row["status"] == "failed" and row["task_token"] is None
    assert row["failure"] == {"error": "EmailUnavailableError", "cause": "the e-mail could not be sent"}
    assert world.changes(request_id) == [
        ("received", "awaiting_verification", "send_verification"),
        ("awaiting_verification", "failed", "fail"),
    ]


def test_fail_keeps_a_plain_cause_bounded_and_names_a_missing_error_unknown(world: World) -> None:
    request_id = world.request("access", world.ada.subject_id, formats=["json"])
    status_step(world, "fail", request_id, error={"Cause": "x" * 900})
    assert world.row(request_id)["failure"] == {"error": "Unknown", "cause": "x" * 500}


# --- another organisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step",
    [
        "record",
        "close_no_data",
        "expire",
        "fail",
        "send_verification",
        "export",
        "erasure",
        "restrict",
        "notify",
    ],
)
def test_a_step_on_another_orgs_request_finds_nothing_and_changes_nothing(world: World, step: str) -> None:
    # Given a request of org A (every type its step accepts)
    dsr_type = {"export": "access", "erasure": "erasure", "restrict": "restriction"}.get(step, "access")
    request_id = world.verified(
        dsr_type, world.ada.subject_id, formats=["json"] if dsr_type == "access" else None
    )
    before = world.row(request_id)
    other = world.other_org
    calls: dict[str, Callable[[], Any]] = {
        "send_verification": lambda: workflow.send_verification(
            world.ctx, world.crypto, world.sender, other, request_id, TOKEN, key=KEY, policy=POLICY
        ),
        "export": lambda: workflow.run_export(world.ctx, world.crypto, world.store, other, request_id),
        "erasure": lambda: workflow.run_erasure(
            world.ctx, world.crypto, world.ledger, world.store, world.sender, other, request_id
        ),
        "restrict": lambda: workflow.run_restriction(world.ctx, other, request_id),
        "notify": lambda: workflow.notify_and_close(
            world.ctx, world.crypto, world.sender, world.store, other, request_id, link_ttl_s=60
        ),
    }

    def status() -> Any:
        step_input = StepInput.model_validate({"request_id": request_id, "org_id": other, "action": step})
        return workflow.run_status_step(world.ctx, step_input)

    # When org B's scope runs the step on its id / Then it is not found and nothing changed
    with pytest.raises(NotFoundError):
        calls.get(step, status)()
    assert world.row(request_id) == before
    assert world.sink.events == [] and world.sender.sent == [] and world.store.objects == {}
    assert world.subject_row(world.ada.subject_id) is not None


def test_an_export_that_survives_its_deletion_fails_the_erasure_until_it_is_gone(world: World) -> None:
    # Given an erasure request and an export store whose deletion silently keeps an object
    request_id = world.verified("erasure", world.ada.subject_id)
    hers = export_key(world.org, str(world.ada.subject_id), uuid.uuid4(), "json")
    world.store.objects[hers] = _stored(b"{}")
    delete_prefix = world.store.delete_prefix
    world.store.delete_prefix = lambda prefix: 0  # type: ignore[method-assign]

    # When the step runs / Then the erasure is not reported done: the receipt says what is left
    from compliance.dsr.erase import ErasureIncompleteError

    with pytest.raises(ErasureIncompleteError):
        workflow.run_erasure(
            world.ctx, world.crypto, world.ledger, world.store, world.sender, world.org, request_id
        )
    verification = world.row(request_id)["receipt"]["verification"]
    assert verification["exports_remaining"] == 1 and verification["verified"] is False

    # When the deletion works again and the step is retried / Then it completes
    world.store.delete_prefix = delete_prefix  # type: ignore[method-assign]
    workflow.run_erasure(
        world.ctx, world.crypto, world.ledger, world.store, world.sender, world.org, request_id
    )
    verification = world.row(request_id)["receipt"]["verification"]
    assert verification["exports_remaining"] == 0 and verification["verified"] is True
    assert world.store.objects == {}
