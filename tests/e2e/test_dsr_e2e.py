"""Data subject requests end to end over HTTP: the state machine of the synthesized template runs on moto's
interpreter, its steps in the local runtime; the subject's e-mails are read from moto's SES, the export
downloaded through its presigned link."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from compliance.models.auth import Role
from compliance_tools.loadgen import ApiClient, wait_for
from tests.e2e.test_ingest_e2e import new_org_with_key

pytestmark = pytest.mark.e2e

CODE = re.compile(r"give this code: ([0-9A-Z]{5}-[0-9A-Z]{5})")
LINK = re.compile(r"- ([A-Z]+): (\S+)")


def record(request_id: str, subject: str, email: str, prompt: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "subject_id": subject,
        "subject_email": email,
        "client_ip": "198.51.100.77",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "prompt_tokens": 11,
        "completion_tokens": 3,
        "cost": "0.00000500",
        "occurred_at": datetime.now(UTC).isoformat(),
        "prompt_text": prompt,
        "completion_text": f"Answer to {prompt}",
    }


def mails_to(address: str) -> list[Any]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return [m for m in sent if address in m.destinations.get("ToAddresses", [])]


def wait_for_mail(address: str, subject: str, *, after: int = 0, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [m for m in mails_to(address)[after:] if m.subject == subject]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"no {subject!r} e-mail")


def wait_status(
    client: ApiClient, request_id: str, done: Callable[[str], bool], timeout_s: float = 90
) -> Any:
    deadline = time.monotonic() + timeout_s
    body: Any = None
    while time.monotonic() < deadline:
        body = client.request("GET", f"/v1/dsr/{request_id}").json()
        if done(body["status"]):
            return body
        time.sleep(0.3)
    raise AssertionError(f"request {request_id} stayed {body and body['status']}")


def completed(deployed: Any, client: ApiClient, request_id: str) -> Any:
    """Wait for the request to close; on a failure, the assertion names the recorded cause."""
    done = wait_status(client, request_id, lambda s: s in {"completed", "failed"})
    if done["status"] != "completed":
        with psycopg.connect(deployed.owner_dsn) as conn:
            failure = conn.execute("SELECT failure FROM dsr_requests WHERE id = %s", (request_id,)).fetchone()
        raise AssertionError(f"request {request_id} {done['status']}: {failure}")
    return done


def ingest(client: ApiClient, records: list[dict[str, Any]]) -> None:
    assert client.request("POST", "/v1/usage", {"records": records}).status == 202
    last = records[-1]["request_id"]
    assert wait_for(lambda: client.request("GET", f"/v1/usage/{last}").status == 200, timeout_s=120)


def grant(client: ApiClient, subject: str) -> None:
    body = {"subject_id": subject, "purpose": "prompt_logging", "notice_version": "n-1", "source": "e2e"}
    assert client.request("POST", "/v1/consents", body).status == 201


@pytest.fixture
def tenant(deployed: Any) -> Any:
    """An org whose two subjects have usage with text, each their own address."""
    org, key = new_org_with_key(deployed, [Role.INGEST, Role.DPO, Role.AUDITOR])
    client = ApiClient(deployed.base_url, key)
    tag = uuid4().hex[:6]
    subject, other = f"ada-{tag}", f"bob-{tag}"
    ada, bob = f"ada.{tag}@example.com", f"bob.{tag}@example.org"
    grant(client, subject)
    grant(client, other)
    ingest(
        client,
        [record(f"a{i}-{tag}", subject, ada, f"ada prompt {i}") for i in range(3)]
        + [record(f"b{i}-{tag}", other, bob, f"bob prompt {i}") for i in range(2)],
    )
    yield {
        "org": org,
        "client": client,
        "subject": subject,
        "address": ada,
        "other": other,
        "other_address": bob,
        "tag": tag,
    }
    client.close()


def verify_with_emailed_code(client: ApiClient, request_id: str, address: str) -> None:
    mail = wait_for_mail(address, "Confirm your data request")
    match = CODE.search(mail.body)
    assert match is not None and request_id in mail.body
    # A wrong code first: refused and counted, the request still waits
    wrong = client.request("POST", f"/v1/dsr/{request_id}/verify", {"code": "00000-00000"})
    assert wrong.status == 403, wrong.body
    right = client.request("POST", f"/v1/dsr/{request_id}/verify", {"code": match.group(1)})
    assert right.status == 200, right.body


def test_an_access_request_is_verified_exported_and_downloaded(deployed: Any, tenant: Any) -> None:
    client = tenant["client"]
    # Given an access request for the subject, in all three formats
    created = client.request(
        "POST",
        "/v1/dsr",
        {
            "type": "access",
            "subject_id": tenant["subject"],
            "regulation": "gdpr",
            "export_formats": ["json", "csv", "xml"],
        },
    )
    assert created.status == 202, created.body
    request_id = created.json()["id"]

    # When the subject confirms it with the code e-mailed to them
    verify_with_emailed_code(client, request_id, tenant["address"])

    # Then the request completes, each step recorded with its time
    done = completed(deployed, client, request_id)
    assert [s["name"] for s in done["steps"]][:2] == ["record", "send_verification"]
    assert {"export", "close"} <= {s["name"] for s in done["steps"]}
    assert {e["format"] for e in done["exports"]} == {"json", "csv", "xml"}

    # And the subject receives working links; the JSON export holds every catalogued field of theirs
    mail = wait_for_mail(tenant["address"], "Your data is ready to download")
    links = dict(LINK.findall(mail.body))
    assert set(links) == {"JSON", "CSV", "XML"}
    with urllib.request.urlopen(links["JSON"], timeout=30) as response:
        exported = response.read()
    document = json.loads(exported)
    text = exported.decode()
    for i in range(3):
        assert f"ada prompt {i}" in text and f"Answer to ada prompt {i}" in text
    assert tenant["address"] in text and "198.51.100.77" in text
    assert "prompt_logging" in text  # the consent history
    # ... every personal column the catalog links to the subject that holds a value of theirs, by name
    exported = {key for rows in document["data"].values() for row in rows for key in row}
    catalog = client.request("GET", "/v1/catalog/personal-data").json()["items"]
    with psycopg.connect(deployed.owner_dsn) as conn:
        (subject_uuid,) = conn.execute(
            "SELECT id FROM subjects WHERE org_id = %s AND external_id = %s",
            (tenant["org"], tenant["subject"]),
        ).fetchone()
        for entry in catalog:
            table, column, link = entry["table_name"], entry["column_name"], entry["subject_link"]
            if link in (None, "none"):
                continue  # not linked to a subject (audit events are exported by their own rule)
            query = (
                f"SELECT EXISTS (SELECT 1 FROM {table}"
                f" WHERE org_id = %s AND {link} = %s AND {column} IS NOT NULL)"
            )
            held = conn.execute(query, (tenant["org"], subject_uuid)).fetchone()  # type: ignore[arg-type]
            if held == (True,):
                assert f"{table}.{column}" in exported, f"{table}.{column}"
    # And nothing of the other subject
    assert tenant["other_address"] not in text and "bob prompt" not in text
    assert document["manifest"]["rows"] > 0 and document["manifest"]["no_data_held"] is False


def test_an_erasure_leaves_nothing_readable_and_the_audit_chain_valid(deployed: Any, tenant: Any) -> None:
    client = tenant["client"]
    created = client.request(
        "POST", "/v1/dsr", {"type": "erasure", "subject_id": tenant["subject"], "regulation": "gdpr"}
    )
    assert created.status == 202, created.body
    request_id = created.json()["id"]
    verify_with_emailed_code(client, request_id, tenant["address"])

    completed(deployed, client, request_id)
    assert wait_for_mail(tenant["address"], "Your personal data was erased") is not None

    # Nothing of the subject is left: no subject row, no linked usage row, every key of theirs destroyed
    with psycopg.connect(deployed.owner_dsn) as conn:
        subjects = conn.execute(
            "SELECT count(*) FROM subjects WHERE org_id = %s AND external_id = %s",
            (tenant["org"], tenant["subject"]),
        ).fetchone()
        linked = conn.execute(
            "SELECT count(*) FROM usage_records"
            " WHERE org_id = %s AND request_id LIKE %s AND subject_id IS NOT NULL",
            (tenant["org"], f"a%-{tenant['tag']}"),
        ).fetchone()
        other = conn.execute(
            "SELECT count(*) FROM subjects WHERE org_id = %s AND external_id = %s",
            (tenant["org"], tenant["other"]),
        ).fetchone()
    assert subjects == (0,) and linked == (0,) and other == (1,)
    # The billing figures stay, without text
    figures = client.request("GET", f"/v1/usage/a0-{tenant['tag']}").json()
    assert figures["prompt_tokens"] == 11 and figures["prompt_text"] is None

    # And the audit trail still verifies
    assert wait_for(
        lambda: client.request("GET", "/v1/audit/verify").json().get("valid") is True, timeout_s=60
    )


def test_a_request_for_an_unknown_subject_completes_with_no_data_held(deployed: Any, tenant: Any) -> None:
    client = tenant["client"]
    created = client.request(
        "POST", "/v1/dsr", {"type": "access", "subject_id": "nobody-we-know", "regulation": "ccpa"}
    )
    assert created.status == 202, created.body
    done = wait_status(client, created.json()["id"], lambda s: s in {"completed", "failed"})
    assert done["status"] == "completed" and done["outcome"] == "no_data_held"


def test_an_unverified_request_expires(deployed: Any, tenant: Any) -> None:
    client = tenant["client"]
    created = client.request(
        "POST", "/v1/dsr", {"type": "access", "subject_id": tenant["other"], "regulation": "gdpr"}
    )
    assert created.status == 202, created.body
    request_id = created.json()["id"]
    wait_for_mail(tenant["other_address"], "Confirm your data request")
    wait_status(client, request_id, lambda s: s == "awaiting_verification")

    # When the code's validity has passed (time moved on) and the hourly SLA monitor runs
    with psycopg.connect(deployed.owner_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE dsr_requests SET code_issued_at = now() - interval '8 days',"
            " code_expires_at = now() - interval '1 minute' WHERE id = %s",
            (request_id,),
        )
    (rule,) = [
        lid
        for lid, res in deployed.runtime.physical.items()
        if lid.startswith("DsrSlaSchedule") and res.type == "AWS::Events::Rule"
    ]
    deployed.runtime.fire_rule(rule)

    # Then the execution closes the request as unverified, and the code no longer works
    done = wait_status(client, request_id, lambda s: s != "awaiting_verification")
    assert done["status"] == "expired" and done["outcome"] == "unverified"
    code = CODE.search(wait_for_mail(tenant["other_address"], "Confirm your data request").body)
    assert code is not None
    late = client.request("POST", f"/v1/dsr/{request_id}/verify", {"code": code.group(1)})
    assert late.status == 409 and late.json()["current"] == "expired", late.body


def test_a_failing_step_lands_in_the_failure_path_with_its_cause(deployed: Any, tenant: Any) -> None:
    client = tenant["client"]
    # Given a subject the org holds usage of but no e-mail address for: nobody to send the code to
    subject = f"quiet-{tenant['tag']}"
    quiet = record(f"q-{tenant['tag']}", subject, "x@example.com", "hello")
    quiet.pop("subject_email")
    ingest(client, [quiet])
    created = client.request(
        "POST", "/v1/dsr", {"type": "access", "subject_id": subject, "regulation": "gdpr"}
    )
    assert created.status == 202, created.body
    done = wait_status(client, created.json()["id"], lambda s: s in {"completed", "failed"})
    assert done["status"] == "failed"
    assert any(s["name"] == "fail" for s in done["steps"])
    with psycopg.connect(deployed.owner_dsn) as conn:
        failure = conn.execute(
            "SELECT failure FROM dsr_requests WHERE id = %s", (created.json()["id"],)
        ).fetchone()
    assert failure is not None and failure[0]["error"] == "NoContactAddressError"


def test_a_rectification_corrects_the_address_and_audits_before_and_after_sealed(
    deployed: Any, tenant: Any
) -> None:
    client = tenant["client"]
    new_address = f"ada.new.{tenant['tag']}@example.net"
    created = client.request(
        "POST",
        "/v1/dsr",
        {
            "type": "rectification",
            "subject_id": tenant["subject"],
            "regulation": "gdpr",
            "corrections": {"email": new_address},
        },
    )
    assert created.status == 202, created.body
    request_id = created.json()["id"]
    # The code goes to the address on file; the confirmation to the corrected one
    verify_with_emailed_code(client, request_id, tenant["address"])
    completed(deployed, client, request_id)
    assert wait_for_mail(new_address, "Your personal data was corrected") is not None

    with psycopg.connect(deployed.owner_dsn) as conn:
        stored = conn.execute(
            "SELECT email FROM subjects WHERE org_id = %s AND external_id = %s",
            (tenant["org"], tenant["subject"]),
        ).fetchone()
        event = conn.execute(
            "SELECT details FROM audit_events WHERE org_id = %s AND event_type = 'subject.rectified'"
            " AND details->>'request_id' = %s",
            (tenant["org"], request_id),
        ).fetchone()
    assert stored is not None and stored[0].startswith("enc:v1:")
    assert event is not None
    (change,) = event[0]["changes"]
    assert change["field"] == "email"
    assert change["before"].startswith("enc:v1:") and change["after"].startswith("enc:v1:")
    assert new_address not in json.dumps(event[0]) and tenant["address"] not in json.dumps(event[0])


def test_a_restriction_keeps_only_billing_figures_until_it_is_lifted(deployed: Any, tenant: Any) -> None:
    client = tenant["client"]
    created = client.request(
        "POST", "/v1/dsr", {"type": "restriction", "subject_id": tenant["subject"], "regulation": "gdpr"}
    )
    assert created.status == 202, created.body
    request_id = created.json()["id"]
    verify_with_emailed_code(client, request_id, tenant["address"])
    completed(deployed, client, request_id)
    assert wait_for_mail(tenant["address"], "Processing of your personal data is restricted") is not None

    # When a new record of the subject arrives, text and IP included: only its figures are stored
    restricted = f"r1-{tenant['tag']}"
    ingest(client, [record(restricted, tenant["subject"], tenant["address"], "while restricted")])
    body = client.request("GET", f"/v1/usage/{restricted}").json()
    assert body["has_prompt_text"] is False and body["client_ip"] is None and body["prompt_tokens"] == 11

    # When the DPO lifts the restriction, the next record is stored as before
    lifted = client.request("POST", f"/v1/dsr/{request_id}/lift")
    assert lifted.status == 200, lifted.body
    assert client.request("POST", f"/v1/dsr/{request_id}/lift").status == 409  # once
    after = f"r2-{tenant['tag']}"
    ingest(client, [record(after, tenant["subject"], tenant["address"], "after the lift")])
    body = client.request("GET", f"/v1/usage/{after}").json()
    assert body["prompt_text"] == "after the lift" and body["client_ip"] == "198.51.100.77"


def test_a_request_may_name_the_person_by_their_e_mail_address(deployed: Any, tenant: Any) -> None:
    client = tenant["client"]
    # Given the address ingest stored (sealed) with its look-up key; the DPO has only the address
    created = client.request(
        "POST", "/v1/dsr", {"type": "access", "email": tenant["address"].upper(), "regulation": "gdpr"}
    )
    assert created.status == 202, created.body
    request_id = created.json()["id"]
    # Then it is that subject's request: verified through their address, answered with their data
    verify_with_emailed_code(client, request_id, tenant["address"])
    done = completed(deployed, client, request_id)
    assert done["outcome"] == "answered" and [e["format"] for e in done["exports"]] == ["json"]
