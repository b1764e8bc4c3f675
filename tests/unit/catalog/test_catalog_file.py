"""The data catalog file: the repository's file validates and says what a DPO expects; bad files
are refused with errors that name the table and column. No database involved."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.catalog import (
    CATALOG_FILE_NAME,
    CatalogEntry,
    CatalogError,
    catalog_path,
    load_catalog,
    parse_catalog,
)
from compliance.catalog.model import is_iso_duration

REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"

HEADER = """
version = 1
[retention_policies.contract]
description = "While the organisation is a customer."
"""
# A non-personal column, open for the key under test.
NOTE = 'note = { category = "usage", personal = false, sensitivity = "internal"'
USAGE_TABLE = """
[tables.usage_records]
subject_link = "subject_id"
retention = "contract"
erasure = "delete"
[tables.usage_records.columns]
subject_id = { category = "identifier", personal = true, sensitivity = "confidential", erasure = "anonymize" }
cost = { category = "cost", personal = false, sensitivity = "confidential" }
"""


def catalog_with(column_line: str) -> str:
    """A valid one-table catalog plus the column line under test."""
    return HEADER + USAGE_TABLE + column_line + "\n"


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text)
    return caught.value.problems


def test_the_repository_catalog_validates_and_sits_next_to_the_migrations() -> None:
    # Given the file the domain layer ships / When loaded from where the deploy looks for it
    catalog = load_catalog(catalog_path(REPO_MIGRATIONS))

    # Then every table of the schema is in it, each column with a complete entry
    assert set(catalog.tables()) >= {
        "organisations",
        "api_keys",
        "subjects",
        "usage_records",
        "audit_events",
        "audit_heads",
        "audit_checkpoints",
        "schema_migrations",
        "data_catalog",
    }
    assert all(e.retention and e.erasure for e in catalog.entries)


def test_the_repository_catalog_governs_personal_data_as_a_dpo_would() -> None:
    catalog = load_catalog(REPO_MIGRATIONS / CATALOG_FILE_NAME)

    def entry(name: str) -> CatalogEntry:
        table, column = name.split(".")
        found = catalog.entry(table, column)
        assert found is not None, name
        return found

    # Prompt and completion text: personal content, restricted, crypto-shredded
    for name in ("usage_records.prompt_text", "usage_records.completion_text"):
        text = entry(name)
        assert (text.category, text.personal, text.sensitivity, text.erasure) == (
            "content",
            True,
            "restricted",
            "crypto_shred",
        )
    # Cost is not personal; usage rows link to their subject through subject_id, which erasure anonymizes
    assert entry("usage_records.cost").personal is False
    assert entry("usage_records.cost").category == "cost"
    assert entry("usage_records.subject_id").erasure == "anonymize"
    assert {e.subject_link for e in catalog.entries if e.table_name == "usage_records"} == {"subject_id"}
    assert {e.subject_link for e in catalog.entries if e.table_name == "subjects"} == {"id"}
    # IP addresses are personal identifiers
    assert entry("audit_events.ip_address").personal is True
    assert entry("audit_events.ip_address").category == "identifier"
    # The audit tables are retained on a legal basis citing Art. 17(3)
    audit = [e for e in catalog.entries if e.table_name.startswith("audit_")]
    assert audit and all(e.erasure == "retain_legal_basis" for e in audit)
    assert all(e.legal_basis and "17(3)" in e.legal_basis for e in audit)
    # Named retentions resolve to policies of the file
    named = {e.retention for e in catalog.entries if not is_iso_duration(e.retention)}
    assert named <= set(catalog.retention_policies)


def test_columns_inherit_table_defaults_and_the_legal_basis_goes_with_the_erasure() -> None:
    # Given a table retained on a legal basis, one column of which is deleted instead
    text = HEADER + (
        """
[tables.audit_events]
subject_link = "none"
retention = "P7Y"
erasure = "retain_legal_basis"
legal_basis = "GDPR Art. 17(3)(e): legal claims."
[tables.audit_events.columns]
actor = { category = "identifier", personal = true, sensitivity = "confidential" }
"""
        + NOTE.replace("note", "scratch")
        + ', erasure = "delete", retention = "contract" }\n'
    )

    # When parsed
    catalog = parse_catalog(text)

    # Then the inheriting column has the table's retention, erasure and basis; the other has its own
    actor, scratch = catalog.entry("audit_events", "actor"), catalog.entry("audit_events", "scratch")
    assert actor is not None and scratch is not None
    assert (actor.retention, actor.erasure, actor.legal_basis) == (
        "P7Y",
        "retain_legal_basis",
        "GDPR Art. 17(3)(e): legal claims.",
    )
    assert (scratch.retention, scratch.erasure, scratch.legal_basis) == ("contract", "delete", None)
    assert actor.subject_link is None


def test_retain_legal_basis_without_a_legal_basis_is_refused() -> None:
    found = problems(
        catalog_with(
            'notes = { category = "audit", personal = false, sensitivity = "internal",'
            ' erasure = "retain_legal_basis" }'
        )
    )
    assert found == ["usage_records.notes: erasure 'retain_legal_basis' needs a legal_basis"]


def test_an_unknown_category_is_refused_naming_table_and_column() -> None:
    found = problems(
        catalog_with('model = { category = "telemetry", personal = false, sensitivity = "internal" }')
    )
    assert len(found) == 1
    assert found[0].startswith("usage_records.model: category: Input should be 'identifier',")


def test_a_column_written_twice_is_refused_naming_it_and_its_table() -> None:
    found = problems(catalog_with('cost = { category = "cost", personal = false, sensitivity = "internal" }'))
    assert len(found) == 1
    assert "[tables.usage_records.columns]" in found[0]
    assert "cost = {" in found[0] and "Cannot overwrite a value" in found[0]


@pytest.mark.parametrize(
    ("column_line", "expected"),
    [
        (
            NOTE + ', retention = "forever" }',
            "usage_records.note: retention 'forever' is neither an ISO 8601 duration nor a retention policy",
        ),
        (
            'note = { category = "usage", personal = false, sensitivity = "confidential",'
            ' erasure = "crypto_shred", encrypted = true }',
            "usage_records.note: erasure 'crypto_shred' is for personal data, and the column is not personal",
        ),
        (
            'note = { category = "content", personal = true, sensitivity = "restricted",'
            ' erasure = "crypto_shred" }',
            "usage_records.note: erasure 'crypto_shred' needs encrypted = true",
        ),
        (
            'note = { category = "usage", personal = false, sensitivity = "internal", encrypted = true }',
            "usage_records.note: an encrypted column is 'confidential' or 'restricted'",
        ),
        (
            'email = { category = "contact", personal = true, sensitivity = "public" }',
            "usage_records.email: personal data cannot be 'public'",
        ),
        (
            'note = { category = "usage", personal = false, sensitivity = "internal",'
            ' legal_basis = "GDPR Art. 6(1)(c) obligation" }',
            "usage_records.note: legal_basis is only for erasure = 'retain_legal_basis', not 'delete'",
        ),
        (
            'note = { category = "usage", personal = "no", sensitivity = "internal" }',
            "usage_records.note: personal: Input should be a valid boolean",
        ),
        (
            'note = { category = "usage", personal = false, sensitivity = "internal", colour = "red" }',
            "usage_records.note: colour: Extra inputs are not permitted",
        ),
        (
            'Note = { category = "usage", personal = false, sensitivity = "internal" }',
            "usage_records.Note: [key]: String should match pattern",
        ),
    ],
)
def test_rule_breaking_columns_are_refused_naming_table_and_column(column_line: str, expected: str) -> None:
    found = problems(catalog_with(column_line))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_every_problem_is_reported_at_once_and_table_rules_name_the_table() -> None:
    # Given a subject link to a missing column and two bad columns
    text = HEADER + (
        """
[tables.subjects]
subject_link = "person_id"
[tables.subjects.columns]
a = { category = "identifier", personal = true, sensitivity = "confidential" }
b = { category = "usage", personal = false, sensitivity = "internal", retention = "P1D" }
"""
    )

    # When parsed / Then each problem is listed
    assert problems(text) == [
        "subjects: subject_link 'person_id' is not a column of the table",
        "subjects.a: no retention (set it on the column or its table)",
        "subjects.a: no erasure strategy (set it on the column or its table)",
        "subjects.b: no erasure strategy (set it on the column or its table)",
    ]


def test_files_that_are_not_catalogs_are_refused(tmp_path: Path) -> None:
    # A missing file, invalid TOML, an unknown version, a policy whose duration is not ISO 8601
    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog(tmp_path / "catalog.toml")
    with pytest.raises(CatalogError, match="invalid TOML"):
        parse_catalog("version = ")
    text = catalog_with("").replace("version = 1", "version = 2")
    assert problems(text) == ["catalog: version: Input should be 1"]
    text = catalog_with("").replace("description =", 'duration = "10 years"\ndescription =')
    assert problems(text) == ["retention_policies.contract: duration '10 years' is not an ISO 8601 duration"]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("P7Y", True),
        ("P90D", True),
        ("P1Y6M", True),
        ("PT12H", True),
        ("P2W", True),
        ("P1DT1.5S", True),
        ("P", False),
        ("PT", False),
        ("P1YT", False),
        ("7Y", False),
        ("P-1D", False),
        ("contract", False),
    ],
)
def test_iso_8601_durations(value: str, valid: bool) -> None:
    assert is_iso_duration(value) is valid
