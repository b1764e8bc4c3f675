"""Access and portability: everything held of one subject, decrypted, and nothing of anyone else."""

from __future__ import annotations

import base64
import io
import json
import uuid
from typing import Any

import pytest

from compliance.catalog.model import CatalogEntry, CatalogError
from compliance.crypto.context import KeyScope
from compliance.crypto.session import FieldCrypto
from compliance.db import dsr_collect
from compliance.db.catalog import list_entries
from compliance.dsr.collect import NO_SUBJECT_REF, collect_subject_data, erased_marker
from compliance.dsr.export_format import SubjectExport, write_export
from compliance.errors import DataAccessError
from tests.conftest import ProvisionedDatabase
from tests.integration.dsr.conftest import T0, Seeded, append_subject_events, seed_subject

# Ada's address's look-up key as ingest stores it with the DSR secret (migration 0012): 32 bytes.
ADA_EMAIL_KEY = bytes(range(32))

EMAIL = "ada.lovelace@example.com"
PROMPT = "Summarise the quarterly report for Ada"
REQUEST = uuid.UUID("00000000-0000-4000-8000-000000000005")


def collect(
    db: ProvisionedDatabase, crypto: FieldCrypto, org: uuid.UUID, subject: Any, **kw: Any
) -> SubjectExport:
    return collect_subject_data(
        db.app, crypto, org, subject, request_id=REQUEST, regulation="gdpr", generated_at=T0, **kw
    )


def as_json(export: SubjectExport) -> tuple[bytes, dict[str, Any]]:
    out = io.BytesIO()
    write_export(export, "json", out)
    return out.getvalue(), json.loads(out.getvalue())


def rows_by(export: SubjectExport, category: str, key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: dict(row) for row in export.categories[category].rows if key in row}


@pytest.fixture
def world(migrated_db: ProvisionedDatabase, writer: FieldCrypto) -> dict[str, Seeded]:
    """Ada (two records with sealed text and IP, one with figures only) and Bob in org A; in org B a
    subject with Ada's external id. Audit events naming Ada and Bob."""
    org_a, org_b = migrated_db.create_org("Org A"), migrated_db.create_org("Org B")
    ada = seed_subject(
        migrated_db,
        writer,
        org_a,
        "user-1",
        email=EMAIL,
        records=[
            ("req-1", PROMPT, "Revenue grew 4 %", "203.0.113.7"),
            ("req-2", "Draft a reply to HR", "Dear HR,", "2001:db8::1"),
            ("req-3", None, None, None),
        ],
    )
    bob = seed_subject(
        migrated_db,
        writer,
        org_a,
        "user-2",
        email="bob@example.com",
        records=[("req-b", "Bob's secret", "ok", "192.0.2.1")],
    )
    other = seed_subject(
        migrated_db,
        writer,
        org_b,
        "user-1",
        email="ada.other@example.org",
        records=[("req-1", "Org B prompt", "x", "192.0.2.99")],
    )
    # Ada asked for a restriction of processing once (migration 0011): that is about her too
    with migrated_db.owner() as conn:
        conn.execute(
            "UPDATE subjects SET restricted_at = %s, restriction_request_id = gen_random_uuid(),"
            " email_key = %s WHERE id = %s",
            (T0, ADA_EMAIL_KEY, ada.subject_id),
        )
    append_subject_events(migrated_db, org_a, ada.subject_id)
    append_subject_events(migrated_db, org_a, bob.subject_id)
    append_subject_events(migrated_db, org_b, other.subject_id)
    return {"ada": ada, "bob": bob, "other": other}


def test_every_catalogued_personal_field_of_the_subject_decrypted_and_nothing_of_others(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded]
) -> None:
    ada, bob, other = world["ada"], world["bob"], world["other"]
    # Given Ada's data in org A, Bob's beside it and a namesake in org B (same external id)
    # When Ada's data is collected by her external id, by another process than the writer
    export = collect(migrated_db, reader, ada.org_id, "user-1")

    # Then the export names her by her pseudonymous id, never the external id
    assert export.subject_ref == str(ada.subject_id)
    # And every personal column the catalog links to a subject is there, in its category
    with migrated_db.app.tenant(ada.org_id) as conn:
        catalog = list_entries(conn)
    # (the tables this test seeds; a new subject-linked table needs its rows seeded here too)
    seeded = {"subjects", "usage_records", "data_keys"}
    personal = [e for e in catalog if e.subject_link is not None and e.personal and e.table_name in seeded]
    assert {e.table_name for e in personal} == seeded
    for entry in personal:
        assert entry.qualified_name in export.categories[entry.category].columns(), entry.qualified_name
    # ... decrypted in its own row's context
    (contact,) = export.categories["contact"].rows
    # (the address's look-up key is about her too: it is listed, as base64 of its bytes)
    assert contact == {
        "subjects.id": str(ada.subject_id),
        "subjects.email": EMAIL,
        "subjects.email_key": base64.b64encode(ADA_EMAIL_KEY).decode(),
    }
    content = rows_by(export, "content", "usage_records.request_id")
    assert set(content) == {"req-1", "req-2"}  # req-3 stored no text: no content row
    assert content["req-1"]["usage_records.prompt_text"] == PROMPT
    assert content["req-2"]["usage_records.completion_text"] == "Dear HR,"
    identifiers = [r for r in export.categories["identifier"].rows if "usage_records.client_ip" in r]
    assert {r["usage_records.client_ip"] for r in identifiers} == {"203.0.113.7", "2001:db8::1", None}
    # ... with the figures of her records, joinable to their content by request id
    usage = rows_by(export, "usage", "usage_records.request_id")
    assert usage["req-1"]["usage_records.prompt_tokens"] == 10
    assert rows_by(export, "cost", "usage_records.request_id")["req-3"]["usage_records.cost"] == "0.00123456"
    assert export.categories["usage"].tables == ("subjects", "usage_records")

    # And nothing of Bob, of org B, of ciphertext or key material
    raw, document = as_json(export)
    text = raw.decode()
    for foreign in (
        str(bob.subject_id),
        "Bob's secret",
        "bob@example.com",
        str(other.subject_id),
        "Org B prompt",
    ):
        assert foreign not in text
    assert (
        "ada.other@example.org" not in text and str(other.org_id) not in text and str(ada.org_id) not in text
    )
    assert "enc:v1:" not in text
    assert "security" not in export.categories
    assert not any(
        c.endswith((".wrapped_key", ".kms_key_id"))
        for cat in export.categories.values()
        for c in cat.columns()
    )

    # And her audit events, with the origin of the events she performed only
    events = export.categories["audit"].rows
    audited = [e for e in events if "audit_events.seq" in e]
    assert len(audited) == 2 and {e["audit_events.event_type"] for e in audited} == {
        "key.created",
        "consent.granted",
    }
    by_dpo = next(e for e in audited if e["audit_events.event_type"] == "key.created")
    by_her = next(e for e in audited if e["audit_events.event_type"] == "consent.granted")
    assert by_dpo["audit_events.resource"] == f"subject:{ada.subject_id}"
    assert "audit_events.ip_address" not in by_dpo and "audit_events.user_agent" not in by_dpo
    assert by_her["audit_events.ip_address"] == "203.0.113.50"

    # And the JSON export carries exactly the collection (round trip)
    assert document["data"] == {name: [dict(r) for r in cat.rows] for name, cat in export.held()}
    assert document["manifest"]["subject"] == str(ada.subject_id)
    assert document["manifest"]["no_data_held"] is False
    assert document["manifest"]["rows"] == sum(len(c.rows) for _, c in export.held())
    assert document["manifest"]["categories"]["content"]["tables"] == ["usage_records"]


def test_a_subject_is_found_by_its_uuid_within_its_own_org_only(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded]
) -> None:
    ada, other = world["ada"], world["other"]
    # When Ada is looked up by her uuid: the same collection as by external id
    by_uuid = collect(migrated_db, reader, ada.org_id, ada.subject_id)
    assert by_uuid == collect(migrated_db, reader, ada.org_id, "user-1")
    # But org B's subject's uuid in org A's scope finds nobody, and a uuid given as an external id
    # is an external id
    assert collect(migrated_db, reader, ada.org_id, other.subject_id).categories == {}
    assert collect(migrated_db, reader, ada.org_id, str(ada.subject_id)).categories == {}


def test_an_unknown_subject_is_no_data_held(
    migrated_db: ProvisionedDatabase, reader: FieldCrypto, world: dict[str, Seeded]
) -> None:
    # When a subject nobody holds is collected
    export = collect(migrated_db, reader, world["ada"].org_id, "nobody@example.com")
    # Then the export is empty, not an error, and never names the lookup
    assert export.subject_ref == NO_SUBJECT_REF and export.categories == {}
    raw, document = as_json(export)
    assert document["manifest"]["no_data_held"] is True and document["data"] == {}
    assert b"nobody" not in raw


def test_a_shredded_subject_s_encrypted_values_are_marked_erased(
    migrated_db: ProvisionedDatabase, writer: FieldCrypto, reader: FieldCrypto, world: dict[str, Seeded]
) -> None:
    ada = world["ada"]
    # Given Ada's data keys destroyed (crypto-shredding), her rows still in place
    with writer.tenant(migrated_db.app, ada.org_id) as (_conn, encryptor):
        encryptor.destroy_keys(KeyScope(ada.org_id, ada.subject_id))
    # When her data is collected
    export = collect(migrated_db, reader, ada.org_id, "user-1")
    # Then every encrypted value is marked erased, the rest is shown
    (contact,) = export.categories["contact"].rows
    assert contact["subjects.email"] == erased_marker()
    content = rows_by(export, "content", "usage_records.request_id")
    assert content["req-1"]["usage_records.prompt_text"] == erased_marker()
    assert content["req-2"]["usage_records.completion_text"] == erased_marker()
    assert rows_by(export, "usage", "usage_records.request_id")["req-1"]["usage_records.prompt_tokens"] == 10
    keys = [r for r in export.categories["audit"].rows if "data_keys.destroyed_at" in r]
    assert keys and all(r["data_keys.destroyed_at"] is not None for r in keys)
    # And the export still writes (the marker is a JSON object)
    _raw, document = as_json(export)
    assert document["data"]["contact"][0]["subjects.email"] == {"erased": "crypto_shred"}
    # While Bob's values still decrypt
    assert (
        rows_by(collect(migrated_db, reader, ada.org_id, "user-2"), "content", "usage_records.request_id")[
            "req-b"
        ]["usage_records.prompt_text"]
        == "Bob's secret"
    )


_BULK = """
    INSERT INTO usage_records (org_id, request_id, subject_id, provider, model, prompt_tokens,
        completion_tokens, cost, currency, occurred_at, received_at, batch_id)
    SELECT %s, 'bulk-' || lpad(g::text, 5, '0'), %s, 'openai', 'gpt-4o', g, g, 0.001, 'USD', now(), now(),
        gen_random_uuid()
    FROM generate_series(1, %s) AS g
"""


def test_thousands_of_rows_are_read_in_bounded_batches_through_a_server_side_cursor(
    migrated_db: ProvisionedDatabase, writer: FieldCrypto, reader: FieldCrypto
) -> None:
    # Given a subject with 2,050 usage records
    org = migrated_db.create_org()
    heavy = seed_subject(migrated_db, writer, org, "heavy-user", email=None, records=[])
    with migrated_db.owner() as conn:
        conn.execute(_BULK, (org, heavy.subject_id, 2050))

    # When its rows are streamed 500 at a time
    with migrated_db.app.tenant(org) as conn:
        entries = list_entries(conn)
        batches = dsr_collect.iter_linked_rows(
            conn,
            org,
            heavy.subject_id,
            table="usage_records",
            columns=("request_id", "prompt_tokens"),
            order_by=("request_id",),
            entries=entries,
            batch_size=500,
        )
        first = next(batches)
        # Then the rows stay on the server behind a cursor of this transaction
        open_cursors = conn.execute(
            "SELECT count(*) AS n FROM pg_cursors WHERE name LIKE 'dsr_collect_%'"
        ).fetchone()
        sizes = [len(first), *(len(batch) for batch in batches)]
    assert open_cursors is not None and open_cursors["n"] == 1
    # And no batch holds more than 500 rows; together they hold each row once, in key order
    assert sizes == [500, 500, 500, 500, 50]
    assert first[0] == {"request_id": "bulk-00001", "prompt_tokens": 1}

    # And the whole collection has every record
    export = collect(migrated_db, reader, org, "heavy-user", batch_size=500)
    usage = [r for r in export.categories["usage"].rows if "usage_records.request_id" in r]
    assert [r["usage_records.request_id"] for r in usage] == [f"bulk-{n:05d}" for n in range(1, 2051)]
    _raw, document = as_json(export)
    assert len(document["data"]["usage"]) == 2051  # and the subject's own row


def test_names_outside_the_catalog_are_refused_before_any_sql(
    migrated_db: ProvisionedDatabase, world: dict[str, Seeded]
) -> None:
    ada = world["ada"]
    with migrated_db.app.tenant(ada.org_id) as conn:
        entries = list_entries(conn)

        def rows(table: str, columns: tuple[str, ...], key: str = "request_id") -> Any:
            return list(
                dsr_collect.iter_linked_rows(
                    conn,
                    ada.org_id,
                    ada.subject_id,
                    table=table,
                    columns=columns,
                    order_by=(key,),
                    entries=entries,
                )
            )

        # An uncatalogued column or table, or a table without a subject link: refused
        with pytest.raises(CatalogError):
            rows("usage_records", ("prompt_text", 'x" FROM organisations --'))
        with pytest.raises(CatalogError):
            rows("pg_authid", ("rolname",), "oid")
        with pytest.raises(CatalogError):
            rows("api_keys", ("name",), "id")  # catalogued, but no subject link

    # A catalogued name the database lacks: the driver's error leaves as a domain error
    ghost = CatalogEntry.model_validate(
        {
            **entries[0].model_dump(),
            "table_name": "usage_records",
            "column_name": "ghost",
            "subject_link": "subject_id",
        }
    )
    with migrated_db.app.tenant(ada.org_id) as conn, pytest.raises(DataAccessError):
        list(
            dsr_collect.iter_linked_rows(
                conn,
                ada.org_id,
                ada.subject_id,
                table="usage_records",
                columns=("ghost",),
                order_by=("request_id",),
                entries=[*entries, ghost],
            )
        )
