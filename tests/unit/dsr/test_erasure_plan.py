"""The erasure plan derived from the data catalog: the repository's catalog gives the expected
actions in a foreign-key-safe order; synthetic catalogs cover mixed strategies and catalog changes;
the receipt carries ids, counts, strategies and bases only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest

from compliance.catalog import catalog_path, load_catalog, parse_catalog
from compliance.dsr.erasure_plan import (
    RECEIPT_FORMAT,
    ErasurePlan,
    ErasureReceiptError,
    erasure_receipt,
    plan_erasure,
)

REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
REQUEST_ID = UUID("0b7f3c1e-7d7a-4f55-9a39-2f1f0c3a9d11")
KEY_ID = UUID("9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")
AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

HEADER = """
version = 1
[retention_policies.contract]
description = "While the organisation is a customer."
"""
SUBJECTS = """
[tables.subjects]
subject_link = "id"
retention = "contract"
erasure = "delete"
[tables.subjects.columns]
id = { category = "identifier", personal = true, sensitivity = "confidential" }
external_id = { category = "identifier", personal = true, sensitivity = "restricted" }
"""
# A table whose columns mix every strategy: rows must stay (anonymize, retain), so each column
# gets its own treatment.
MIXED = """
[tables.tickets]
subject_link = "subject_id"
retention = "contract"
erasure = "delete"
[tables.tickets.columns]
subject_id = { category = "identifier", personal = true, sensitivity = "confidential", erasure = "anonymize" }
note = { category = "content", personal = true, sensitivity = "confidential" }
priority = { category = "usage", personal = false, sensitivity = "internal" }
[tables.tickets.columns.body]
category = "content"
personal = true
sensitivity = "restricted"
erasure = "crypto_shred"
encrypted = true
[tables.tickets.columns.ticket_no]
category = "audit"
personal = false
sensitivity = "internal"
erasure = "retain_legal_basis"
legal_basis = "Invoice reference kept for accounting law."
"""


@pytest.fixture(scope="module")
def real_plan() -> ErasurePlan:
    return plan_erasure(load_catalog(catalog_path(REPO_MIGRATIONS)))


# ------------------------------------------------------------------------------ the real catalog


def test_subjects_rows_are_deleted_with_their_encrypted_email_shredded(real_plan: ErasurePlan) -> None:
    # Given the repository's catalog / When planned / Then the subject's row goes
    step = real_plan.step("subjects")
    assert step.action == "delete"
    assert step.subject_link == "id"
    assert step.is_subject_table
    assert {c.effect for c in step.columns} == {"delete_row"}
    assert step.shredded == ("email",)


def test_usage_records_keep_their_figures_with_the_link_cleared_and_content_shredded(
    real_plan: ErasurePlan,
) -> None:
    # Given the repository's catalog / When planned
    step = real_plan.step("usage_records")

    # Then the rows stay, subject_id is set to NULL, the texts and IP are crypto-shredded
    assert step.action == "update"
    assert step.set_null == ("subject_id",)
    assert step.shredded == ("client_ip", "completion_text", "prompt_text")
    assert step.with_effect("key_shred") == ("client_ip", "completion_text", "prompt_text")
    # And the billing figures are kept (not personal, anonymous once the link is gone)
    assert {"cost", "prompt_tokens", "model"} <= set(step.with_effect("keep"))
    assert step.retained == ()


def test_audit_events_are_retained_with_their_legal_basis(real_plan: ErasurePlan) -> None:
    # Given the repository's catalog / When planned / Then the audit trail is kept, with its basis
    retained = {r.table: r for r in real_plan.retained}
    assert set(retained) == {"audit_events"}
    audit = retained["audit_events"]
    assert {"actor", "resource", "details", "ip_address", "user_agent"} == set(audit.columns)
    assert len(audit.legal_bases) == 1
    assert "Art. 17(3)(b)" in audit.legal_bases[0]
    assert "audit_events" not in {s.table for s in real_plan.steps}


def test_data_keys_are_retained_as_proof_of_erasure(real_plan: ErasurePlan) -> None:
    # Given the repository's catalog / When planned / Then data_keys rows stay untouched, with the basis
    step = real_plan.step("data_keys")
    assert step.action == "retain"
    assert step.set_null == ()
    assert "subject_id" in step.retained
    assert any("Proof of erasure" in basis for basis in step.legal_bases)


def test_referencing_tables_come_before_the_subjects_they_reference(real_plan: ErasurePlan) -> None:
    # Given the repository's catalog / When planned / Then subjects is last, after usage_records
    order = [step.table for step in real_plan.steps]
    assert order.index("usage_records") < order.index("subjects")
    assert order[-1] == "subjects"
    assert set(order) == {"consents", "data_keys", "dsr_requests", "subjects", "usage_records"}


def test_tables_without_the_subject_are_listed(real_plan: ErasurePlan) -> None:
    # Given the repository's catalog / When planned / Then every other table is not linked
    assert set(real_plan.not_linked) >= {"organisations", "api_keys", "audit_heads", "audit_checkpoints"}
    everything = (
        set(real_plan.not_linked) | {s.table for s in real_plan.steps} | {r.table for r in real_plan.retained}
    )
    assert everything == set(load_catalog(catalog_path(REPO_MIGRATIONS)).tables())
    assert not set(real_plan.not_linked) & {s.table for s in real_plan.steps}


def test_describe_gives_readable_lines_in_execution_order(real_plan: ErasurePlan) -> None:
    # Given the plan / When described
    lines = list(real_plan.describe())
    text = "\n".join(lines)

    # Then each table is named with its action, columns and basis, in order
    assert lines[0].startswith("1. consents")
    assert any(line.startswith("2. data_keys") for line in lines)
    assert any(line.startswith("3. dsr_requests") for line in lines)
    usage = next(i for i, line in enumerate(lines) if line.startswith("4. usage_records"))
    subjects = next(i for i, line in enumerate(lines) if line.startswith("5. subjects"))
    assert usage < subjects
    assert "usage_records: anonymize (set to NULL): subject_id" in text
    assert "usage_records: crypto_shred" in text and "client_ip, completion_text, prompt_text" in text
    assert "subjects (rows where id = the subject): delete rows" in text
    assert "audit_events: retain" in text
    assert "audit_events: legal basis: GDPR Art. 17(3)(b)" in text
    assert text.rstrip().splitlines()[-1].startswith("not linked to a subject")


# ------------------------------------------------------------------------------ synthetic catalogs


def test_a_table_mixing_strategies_gives_each_column_its_own_effect() -> None:
    # Given a table with anonymize, crypto_shred, personal delete, non-personal delete and retain
    plan = plan_erasure(parse_catalog(HEADER + SUBJECTS + MIXED))

    # When planned / Then its rows stay and each column is treated by its strategy
    step = plan.step("tickets")
    effects = {c.column: c.effect for c in step.columns}
    assert effects == {
        "subject_id": "set_null",
        "body": "key_shred",
        "note": "set_null",  # personal, and the row cannot go: cleared
        "priority": "keep",  # not personal: kept
        "ticket_no": "retain",
    }
    assert step.action == "update"
    assert step.legal_bases == ("Invoice reference kept for accounting law.",)
    assert [s.table for s in plan.steps] == ["tickets", "subjects"]


def test_a_new_table_with_a_personal_delete_column_shows_up_in_the_plan() -> None:
    # Given the catalog before and after a change adding a linked table with a personal column
    before = plan_erasure(parse_catalog(HEADER + SUBJECTS))
    added = """
[tables.consents]
subject_link = "subject_id"
retention = "contract"
erasure = "delete"
[tables.consents.columns]
subject_id = { category = "identifier", personal = true, sensitivity = "confidential" }
purpose = { category = "usage", personal = false, sensitivity = "internal" }
"""
    after = plan_erasure(parse_catalog(HEADER + SUBJECTS + added))

    # When planned / Then the new table's rows are deleted, before the subjects they reference
    assert [s.table for s in before.steps] == ["subjects"]
    assert [s.table for s in after.steps] == ["consents", "subjects"]
    assert after.step("consents").action == "delete"
    assert any(line.startswith("1. consents") for line in after.describe())


def test_an_unlinked_table_with_only_personal_delete_columns_is_not_linked() -> None:
    # Given a table without subject link (its personal column cannot be reached by subject)
    unlinked = """
[tables.runs]
subject_link = "none"
retention = "contract"
erasure = "delete"
[tables.runs.columns]
cursor = { category = "audit", personal = true, sensitivity = "confidential" }
"""
    plan = plan_erasure(parse_catalog(HEADER + SUBJECTS + unlinked))

    # Then it is listed as not linked, not as a step or retained
    assert plan.not_linked == ("runs",)
    assert plan.retained == ()


# ------------------------------------------------------------------------------ receipt


def test_the_receipt_has_counts_strategies_bases_and_key_ids_only(real_plan: ErasurePlan) -> None:
    # Given the executed plan's counts and the shredded key
    counts = {"consents": 2, "data_keys": 1, "dsr_requests": 0, "usage_records": 250, "subjects": 1}

    # When the receipt is built
    receipt = erasure_receipt(
        real_plan,
        request_id=REQUEST_ID,
        affected_rows=counts,
        shredded_key_ids=[KEY_ID, KEY_ID],
        erased_at=AT.astimezone(timezone(timedelta(hours=-5))),
    )

    # Then it is JSON, in plan order, with what happened to each table
    json.dumps(receipt, allow_nan=False)
    assert receipt["format"] == RECEIPT_FORMAT
    assert receipt["request_id"] == str(REQUEST_ID)
    assert receipt["erased_at"] == "2026-11-23T12:00:00.000000Z"
    assert [t["table"] for t in receipt["tables"]] == [
        "consents",
        "data_keys",
        "dsr_requests",
        "usage_records",
        "subjects",
    ]
    tables = {t["table"]: t for t in receipt["tables"]}
    usage = tables["usage_records"]
    assert usage["action"] == "update"
    assert usage["rows"] == 250
    assert usage["columns"]["set_null"] == ["subject_id"]
    assert usage["crypto_shredded"] == ["client_ip", "completion_text", "prompt_text"]
    assert usage["strategies"]["subject_id"] == "anonymize"
    assert tables["subjects"]["action"] == "delete" and tables["consents"]["action"] == "delete"
    assert tables["data_keys"]["legal_bases"]
    assert receipt["rows_total"] == 254
    assert receipt["keys_shredded"] == [str(KEY_ID)]
    assert receipt["retained"][0]["table"] == "audit_events"
    assert "organisations" in receipt["not_linked"]


@pytest.mark.parametrize(
    "counts",
    [
        {"consents": 0, "data_keys": 0, "usage_records": 1, "subjects": 1},  # a table missing
        # a table not in the plan
        {"consents": 0, "data_keys": 0, "dsr_requests": 0, "usage_records": 1, "subjects": 1, "api_keys": 2},
        {"consents": 0, "data_keys": 0, "dsr_requests": 0, "usage_records": -1, "subjects": 1},
        {"consents": 0, "data_keys": 0, "dsr_requests": 0, "usage_records": True, "subjects": 1},
    ],
)
def test_the_receipt_refuses_counts_that_do_not_match_the_plan(
    real_plan: ErasurePlan, counts: dict[str, int]
) -> None:
    with pytest.raises(ErasureReceiptError):
        erasure_receipt(
            real_plan, request_id=REQUEST_ID, affected_rows=counts, shredded_key_ids=[], erased_at=AT
        )


def test_the_receipt_refuses_a_naive_time(real_plan: ErasurePlan) -> None:
    counts = {"consents": 0, "data_keys": 0, "dsr_requests": 0, "usage_records": 0, "subjects": 0}
    with pytest.raises(ErasureReceiptError, match="timezone"):
        erasure_receipt(
            real_plan,
            request_id=REQUEST_ID,
            affected_rows=counts,
            shredded_key_ids=[],
            erased_at=datetime(2026, 1, 1),
        )
