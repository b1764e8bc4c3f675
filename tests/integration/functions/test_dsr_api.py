"""POST/GET /v1/dsr, extend, cancel and verify through the DSR handler, on sample events, against the
migrated test database, moto (KMS, Secrets Manager) and an in-memory workflow."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from compliance.audit.sink import MemoryAuditSink
from compliance.dsr import verification
from tests.unit.dsr.fakes import STATE_MACHINE, MemoryWorkflow

CODE = "ABCDE12345"
TOKEN = "task-token-1"


class Api:
    def __init__(self, module: Any, workflow: MemoryWorkflow, secret: bytes, event: Any, ctx: Any) -> None:
        self.module, self.workflow, self.secret, self._event, self._ctx = module, workflow, secret, event, ctx

    def call(self, request: dict[str, Any]) -> tuple[int, Any]:
        response = self.module.handler(request, self._ctx)
        return response["statusCode"], json.loads(response["body"])

    def create(self, roles: str = "dpo", **changes: Any) -> tuple[int, Any]:
        request: dict[str, Any] = self._event("dsr/post-dsr.json")
        body = json.loads(request["body"]) | changes
        request["body"] = json.dumps({k: v for k, v in body.items() if v is not None})
        request["requestContext"]["authorizer"]["roles"] = roles
        return self.call(request)

    def on(self, name: str, request_id: str, body: Any = None, org: str | None = None) -> tuple[int, Any]:
        request: dict[str, Any] = self._event(f"dsr/{name}.json")
        request["path"] = request["path"].replace(request["pathParameters"]["request_id"], request_id)
        request["pathParameters"] = {"request_id": request_id}
        if body is not None:
            request["body"] = json.dumps(body)
        if org is not None:
            request["requestContext"]["authorizer"]["org_id"] = org
        return self.call(request)

    def list(self, **query: str) -> tuple[int, Any]:
        request: dict[str, Any] = self._event("dsr/list-dsr.json")
        request["queryStringParameters"] = query or None
        request["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
        return self.call(request)


@pytest.fixture
def api(
    aws: None,
    org: str,
    db_env: dict[str, str],
    audited: Any,
    field_key: str,
    event: Any,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Api:
    import boto3

    secret = secrets.token_bytes(32)
    arn = boto3.client("secretsmanager").create_secret(
        Name="dsr", SecretString=json.dumps({"key": secret.hex()})
    )["ARN"]
    module = audited(
        "functions.dsr.api",
        {
            **db_env,
            "FIELD_KEY_ID": field_key,
            "DSR_STATE_MACHINE_ARN": STATE_MACHINE,
            "DSR_SECRET_ARN": arn,
            "EXPORTS_BUCKET": "exports",
            "EXPORTS_KEY_ID": field_key,
        },
    )
    workflow = MemoryWorkflow()
    monkeypatch.setattr(module, "_workflow", lambda: workflow)
    monkeypatch.setattr(
        module, "_link_for", lambda key, seconds: f"https://exports.invalid/{key}?ttl={seconds}"
    )
    return Api(module, workflow, secret, event, lambda_context)


def row_of(migrated_db: Any, request_id: str) -> dict[str, Any]:
    from psycopg.rows import dict_row

    with migrated_db.owner() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM dsr_requests WHERE id = %s", (request_id,)).fetchone()
    assert row is not None
    return dict(row)


def awaiting_code(migrated_db: Any, api: Api, request_id: str) -> None:
    """What the workflow's verification step stores: the code's hash, its times, the task token."""
    now = datetime.now(UTC)
    issued = verification.issue(uuid.UUID(request_id), api.secret, now, code=CODE)
    with migrated_db.owner() as conn:
        conn.execute(
            "UPDATE dsr_requests SET status = 'awaiting_verification', code_hash = %s, code_issued_at = %s,"
            " code_expires_at = %s, task_token = %s WHERE id = %s",
            (issued.state.code_hash, issued.state.issued_at, issued.state.expires_at, TOKEN, request_id),
        )


def test_a_request_is_accepted_stored_audited_and_started(
    api: Api, audit: MemoryAuditSink, migrated_db: Any, org: str
) -> None:
    # When a DPO asks for an access request for the platform's user-42
    status, body = api.create()

    # Then it is accepted with its id, status and the GDPR deadline (one month)
    assert status == 202, body
    assert body["status"] == "received"
    deadline = datetime.fromisoformat(body["deadline"])
    assert timedelta(days=27) < deadline - datetime.now(UTC) < timedelta(days=32)
    # And stored without the identifier (a keyed hash only), with its execution
    row = row_of(migrated_db, body["id"])
    assert row["type"] == "access" and row["export_formats"] == ["json", "csv"] and row["subject_id"] is None
    assert len(row["subject_key"]) == 32 and b"user-42" not in bytes(row["subject_key"])
    assert row["execution_arn"].endswith(f":execution:dsr:{body['id']}")
    # And audited (no personal data) and its workflow started with ids only
    (received,) = [e for e in audit.events if e.event_type == "dsr.received"]
    assert received.resource == f"dsr:{body['id']}" and "user-42" not in json.dumps(received.details)
    assert api.workflow.started == [(uuid.UUID(body["id"]), {"request_id": body["id"], "org_id": org})]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"type": "deletion"}, 400),
        ({"regulation": "popia"}, 400),
        ({"export_formats": ["pdf"]}, 400),
        ({"colour": "red"}, 400),
        ({"email": "someone@example.com"}, 400),  # both a subject id and an address
    ],
)
def test_bad_requests_are_refused_and_store_nothing(
    api: Api, audit: MemoryAuditSink, migrated_db: Any, changes: dict[str, Any], expected: int
) -> None:
    status, problem = api.create(**changes)
    assert status == expected, problem
    assert not [e for e in audit.events if e.event_type == "dsr.received"]
    with migrated_db.owner() as conn:
        assert conn.execute("SELECT count(*) FROM dsr_requests").fetchone() == (0,)


def test_a_second_open_request_is_a_conflict_naming_the_open_one(api: Api) -> None:
    _, first = api.create()
    status, problem = api.create()
    assert status == 409, problem
    assert problem["open_request_id"] == first["id"]
    # Another type for the same subject is its own request
    assert api.create(type="erasure", export_formats=None)[0] == 202


def test_only_dpos_and_system_admins_manage_requests(api: Api) -> None:
    assert api.create(roles="cost_viewer")[0] == 403
    assert api.create(roles="system_admin")[0] == 202


def test_a_failed_start_closes_the_request_as_failed(
    api: Api, audit: MemoryAuditSink, migrated_db: Any
) -> None:
    api.workflow.fail = True
    status, problem = api.create()
    assert status == 503, problem
    with migrated_db.owner() as conn:
        ((state, failure),) = conn.execute("SELECT status, failure FROM dsr_requests").fetchall()
    assert state == "failed" and failure["cause"] == "workflow could not start"
    assert [e.details["details"] for e in audit.events if e.event_type == "dsr.status_changed"] == [
        {"cause": "workflow could not start"}
    ]
    # And the slot is free again
    api.workflow.fail = False
    assert api.create()[0] == 202


def test_get_shows_status_deadline_and_the_export_link_while_kept(api: Api, migrated_db: Any) -> None:
    _, created = api.create()
    status, body = api.on("get-dsr", created["id"])
    assert status == 200 and body["status"] == "received" and body["extended"] is False
    assert 27 <= body["days_left"] <= 31 and body["export_url"] is None
    assert "user-42" not in json.dumps(body)

    # Given a ready export / Then the link is given while it is kept, not after
    objects = [{"format": "json", "key": "k/export.json", "bytes": 10, "sha256": "a" * 64, "large": False}]
    for expires, linked in ((timedelta(days=7), True), (timedelta(seconds=-1), False)):
        with migrated_db.owner() as conn:
            conn.execute(
                "UPDATE dsr_requests SET export_objects = %s::jsonb, export_expires_at = %s WHERE id = %s",
                (json.dumps(objects), datetime.now(UTC) + expires, created["id"]),
            )
        _, body = api.on("get-dsr", created["id"])
        assert (body["export_url"] is not None) is linked
        assert body["export_sha256"] == "a" * 64 and body["exports"][0]["format"] == "json"
    assert body["export_url"] is None


def test_extending_once_then_a_conflict(api: Api, audit: MemoryAuditSink) -> None:
    _, created = api.create()
    reason = {"reason": "Records must be gathered from three archived systems."}
    status, body = api.on("extend-dsr", created["id"], reason)
    assert status == 200, body
    assert body["extended"] is True and body["extension_reason"] == reason["reason"]
    assert datetime.fromisoformat(body["deadline"]) > datetime.fromisoformat(created["deadline"])
    (extended,) = [e for e in audit.events if e.event_type == "dsr.extended"]
    assert "reason" not in extended.details
    # When extended again / Then 409
    status, problem = api.on("extend-dsr", created["id"], reason)
    assert status == 409, problem
    # A reason too short is a 400
    _, other = api.create(type="erasure", export_formats=None)
    assert api.on("extend-dsr", other["id"], {"reason": "short"})[0] == 400


def test_cancel_stops_the_execution_and_a_closed_request_cannot_be_cancelled(
    api: Api, audit: MemoryAuditSink
) -> None:
    _, created = api.create()
    status, body = api.on("cancel-dsr", created["id"])
    assert status == 200 and body["status"] == "cancelled"
    assert [arn for arn, _ in api.workflow.stopped] == [
        f"{STATE_MACHINE.replace('stateMachine', 'execution')}:{created['id']}"
    ]
    assert [e.event_type for e in audit.events if e.event_type.startswith("dsr.")] == [
        "dsr.received",
        "dsr.cancelled",
    ]
    assert api.on("cancel-dsr", created["id"])[0] == 409
    assert api.on("extend-dsr", created["id"], {"reason": "Records must be gathered."})[0] == 409


def test_another_orgs_request_ids_are_not_found(api: Api, migrated_db: Any) -> None:
    _, created = api.create()
    other = str(migrated_db.create_org("Other Org"))
    assert api.on("get-dsr", created["id"], org=other)[0] == 404
    assert api.on("extend-dsr", created["id"], {"reason": "Records must be gathered."}, org=other)[0] == 404
    assert api.on("cancel-dsr", created["id"], org=other)[0] == 404
    assert api.on("get-dsr", str(uuid.uuid4()))[0] == 404
    assert api.on("verify-dsr", str(uuid.uuid4()), {"code": CODE})[0] == 404


def test_list_pages_through_the_orgs_requests(api: Api) -> None:
    ids = [api.create(subject_id=f"user-{i}")[1]["id"] for i in range(3)]
    status, page = api.list(limit="2")
    assert status == 200 and len(page["items"]) == 2 and page["next_cursor"]
    status, rest = api.list(limit="2", cursor=page["next_cursor"])
    assert status == 200 and rest["next_cursor"] is None
    assert [i["id"] for i in page["items"] + rest["items"]] == list(reversed(ids))
    assert api.list(status="completed")[1]["items"] == []
    assert api.list(type="bogus")[0] == 400
    assert api.list(cursor="bm90LWEtY3Vyc29y")[0] == 400


def test_a_wrong_code_is_counted_and_five_lock_the_request(
    api: Api, audit: MemoryAuditSink, migrated_db: Any
) -> None:
    _, created = api.create()
    awaiting_code(migrated_db, api, created["id"])

    # When a wrong code is given / Then 403 with the attempts left, counted and audited
    status, problem = api.on("verify-dsr", created["id"], {"code": "ZZZZZ-ZZZZZ"})
    assert status == 403 and problem["attempts_left"] == 4
    assert row_of(migrated_db, created["id"])["failed_attempts"] == 1
    # When four more are wrong / Then the fifth locks it, and even the right code is refused
    for _ in range(3):
        assert api.on("verify-dsr", created["id"], {"code": "ZZZZZ-ZZZZZ"})[0] == 403
    status, problem = api.on("verify-dsr", created["id"], {"code": "ZZZZZ-ZZZZZ"})
    assert status == 403 and problem["title"] == "Verification locked"
    status, problem = api.on("verify-dsr", created["id"], {"code": CODE})
    assert status == 403 and problem["title"] == "Verification locked"
    failed = [e for e in audit.events if e.event_type == "dsr.verification_failed"]
    assert [e.details["outcome"] for e in failed] == ["wrong"] * 4 + ["locked"] * 2
    assert all(e.actor == "dsr_subject" and CODE not in json.dumps(e.details) for e in failed)
    row = row_of(migrated_db, created["id"])
    assert row["failed_attempts"] == 5 and row["status"] == "awaiting_verification"
    assert api.workflow.resumed == []


def test_the_right_code_verifies_and_resumes_the_workflow(
    api: Api, audit: MemoryAuditSink, migrated_db: Any
) -> None:
    _, created = api.create()
    awaiting_code(migrated_db, api, created["id"])
    assert api.on("verify-dsr", created["id"], {"code": "zzzzz-zzzzz"})[0] == 403

    # When the subject types the code (any case, with the hyphen)
    status, body = api.on("verify-dsr", created["id"], {"code": "abcde-12345"})

    # Then it is verified, only id and status are answered, and the execution resumes
    assert status == 200, body
    assert body == {"id": created["id"], "status": "verified"}
    row = row_of(migrated_db, created["id"])
    assert row["status"] == "verified" and row["verified_at"] is not None
    assert api.workflow.resumed == [(TOKEN, {"verified": True})]
    assert [e.event_type for e in audit.events if e.event_type.startswith("dsr.verif")] == [
        "dsr.verification_failed",
        "dsr.verified",
    ]
    # And verifying again is a conflict
    assert api.on("verify-dsr", created["id"], {"code": CODE})[0] == 409


def test_verify_before_a_code_was_sent_is_a_conflict(api: Api) -> None:
    _, created = api.create()
    status, problem = api.on("verify-dsr", created["id"], {"code": CODE})
    assert status == 409, problem
    assert api.on("verify-dsr", created["id"], {"code": "bad!"})[0] == 400


def test_rectification_seals_the_corrections_under_the_subjects_key(
    api: Api, migrated_db: Any, org: str, field_key: str
) -> None:
    from compliance.crypto.context import EncryptionContext
    from compliance.crypto.envelope import is_encrypted_text
    from compliance.crypto.session import kms_field_crypto

    # Given a subject the org holds
    with migrated_db.owner() as conn:
        (subject,) = conn.execute(
            "INSERT INTO subjects (org_id, external_id) VALUES (%s, 'user-42') RETURNING id", (org,)
        ).fetchone()
    # When its e-mail address is to be corrected
    status, body = api.create(
        type="rectification", export_formats=None, corrections={"email": "new@example.com"}
    )
    assert status == 202, body
    # Then the request is linked to the subject and holds the new value only as ciphertext
    row = row_of(migrated_db, body["id"])
    assert row["subject_id"] == subject
    assert is_encrypted_text(row["corrections"]) and "example.com" not in row["corrections"]
    crypto = kms_field_crypto(field_key, max_age_s=60, max_entries=10)
    with crypto.tenant(migrated_db.app, uuid.UUID(org)) as (_conn, encryptor):
        plain = encryptor.decrypt(
            row["corrections"], EncryptionContext(uuid.UUID(org), "dsr_requests", "corrections", subject)
        )
    assert json.loads(plain) == {"email": "new@example.com"}


def test_a_restriction_is_lifted_once_and_only_for_a_completed_restriction(
    api: Api, audit: MemoryAuditSink, migrated_db: Any, org: str, grant_consent: Any
) -> None:
    # Given a restriction request of user-42 that the workflow completed (the subject restricted by it)
    grant_consent(org, "user-42")
    status, body = api.create(type="restriction", export_formats=None)
    assert status == 202, body
    request_id = body["id"]
    with migrated_db.owner() as conn:
        conn.execute(
            "UPDATE dsr_requests SET status = 'completed', completed_at = now() WHERE id = %s", (request_id,)
        )
        conn.execute(
            "UPDATE subjects SET restricted_at = now(), restriction_request_id = %s"
            " WHERE org_id = %s AND external_id = 'user-42'",
            (request_id, org),
        )

    # When a DPO lifts it
    status, body = api.on("lift-dsr", request_id)

    # Then the subject is no longer restricted, the request says so, and the lift is audited
    assert status == 200, body
    assert body["outcome"] == "lifted" and body["steps"][-1]["name"] == "lift"
    with migrated_db.owner() as conn:
        restricted = conn.execute(
            "SELECT restricted_at FROM subjects WHERE org_id = %s AND external_id = 'user-42'", (org,)
        ).fetchone()
    assert restricted == (None,)
    assert "subject.restriction_lifted" in [e.event_type for e in audit.events]

    # And a second lift, or a lift of another type of request, is a conflict
    assert api.on("lift-dsr", request_id)[0] == 409
    status, body = api.create(type="erasure", export_formats=None)
    assert status == 202, body
    assert api.on("lift-dsr", body["id"])[0] == 409


def keyed_subject(migrated_db: Any, api: Api, org: str, external_id: str, address: str) -> uuid.UUID:
    """A subject whose address ingest stored with its look-up key (as the processor does)."""
    from compliance.dsr.subject_keys import subject_key

    key = subject_key(api.secret, uuid.UUID(org), email=address)
    with migrated_db.owner() as conn:
        row = conn.execute(
            "INSERT INTO subjects (org_id, external_id, email, email_key)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (org, external_id, "enc:v1:stand-in", key),
        ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def test_a_request_by_email_finds_the_subject_by_its_look_up_key(
    api: Api, migrated_db: Any, org: str
) -> None:
    # Given a subject whose address was stored with its key
    subject = keyed_subject(migrated_db, api, org, "user-ada", "ada@example.com")
    # When a DPO names the person by that address, spelled differently
    status, body = api.create(subject_id=None, email="  ADA@Example.com ")
    # Then the request is the subject's, and the address is stored nowhere on it
    assert status == 202, body
    row = row_of(migrated_db, body["id"])
    assert row["subject_id"] == subject
    assert b"ada@example.com" not in bytes(row["subject_key"]) and "ada" not in json.dumps(row, default=str)
    # And a second open request by address is the same person's duplicate
    again, problem = api.create(subject_id=None, email="ada@example.com")
    assert again == 409 and problem["open_request_id"] == body["id"]


def test_an_address_nobody_has_is_no_data_held_only_when_every_address_is_keyed(
    api: Api, migrated_db: Any, org: str
) -> None:
    keyed_subject(migrated_db, api, org, "user-ada", "ada@example.com")
    # When nobody's address has the key, and every stored address is keyed: nobody (no data held)
    status, body = api.create(subject_id=None, email="nobody@example.com")
    assert status == 202, body
    assert row_of(migrated_db, body["id"])["subject_id"] is None
    # When some address is stored without a key (before the index), the answer could be wrong: 409
    with migrated_db.owner() as conn:
        conn.execute(
            "INSERT INTO subjects (org_id, external_id, email) VALUES (%s, 'user-old', 'enc:v1:x')", (org,)
        )
    status, problem = api.create(
        type="erasure", export_formats=None, subject_id=None, email="else@example.com"
    )
    assert status == 409 and problem["title"] == "Look-up not available", problem


def test_an_address_two_subjects_share_is_ambiguous(api: Api, migrated_db: Any, org: str) -> None:
    keyed_subject(migrated_db, api, org, "user-a", "team@example.com")
    keyed_subject(migrated_db, api, org, "user-b", "team@example.com")
    status, problem = api.create(subject_id=None, email="team@example.com")
    assert status == 409 and problem["title"] == "Ambiguous e-mail address", problem
    with migrated_db.owner() as conn:
        assert conn.execute("SELECT count(*) FROM dsr_requests").fetchone() == (0,)
