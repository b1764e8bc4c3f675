"""compliance.models.dsr: the bodies of /v1/dsr accept what the API promises and nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from compliance.models.dsr import (
    DsrCreate,
    DsrExtend,
    DsrList,
    DsrListQuery,
    DsrOut,
    DsrStatus,
    DsrType,
    DsrVerify,
    ExportFormat,
    Regulation,
)


def create(**fields: Any) -> DsrCreate:
    body: dict[str, Any] = {"type": "access", "subject_id": "user-42", "regulation": "gdpr"} | fields
    return DsrCreate.model_validate({k: v for k, v in body.items() if v is not ...})


def test_an_access_request_defaults_to_json() -> None:
    body = create()
    assert body.type is DsrType.ACCESS
    assert body.regulation is Regulation.GDPR
    assert body.export_formats == [ExportFormat.JSON]
    assert body.corrections is None


def test_a_portability_request_takes_a_subset_of_formats_and_an_email() -> None:
    body = create(
        type="portability", subject_id=..., email=" jane@example.com ", export_formats=["csv", "xml"]
    )
    assert body.export_formats == [ExportFormat.CSV, ExportFormat.XML]
    assert body.email == "jane@example.com"
    assert body.subject_id is None


@pytest.mark.parametrize("kind", ["erasure", "restriction"])
def test_erasure_and_restriction_need_only_type_subject_and_regulation(kind: str) -> None:
    body = create(type=kind, regulation="ccpa")
    assert body.export_formats is None
    assert body.corrections is None


def test_a_rectification_carries_its_corrections() -> None:
    body = create(type="rectification", corrections={"email": "new@example.com"})
    assert body.corrections is not None
    assert body.corrections.email == "new@example.com"
    assert body.export_formats is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "deletion"}, "type"),
        ({"regulation": "popia"}, "regulation"),
        ({"subject_id": ...}, "exactly one"),  # no subject at all
        ({"email": "jane@example.com"}, "exactly one"),  # both
        ({"subject_id": "user 42"}, "subject_id"),  # the usage records' identifier pattern
        ({"subject_id": "x" * 129}, "subject_id"),
        ({"subject_id": ..., "email": "not-an-address"}, "email"),
        ({"subject_id": ..., "email": "a@" + "b" * 253}, "email"),
        ({"export_formats": []}, "export_formats"),
        ({"export_formats": ["pdf"]}, "export_formats"),
        ({"export_formats": ["json", "json"]}, "repeat"),
        ({"export_formats": None}, "at least one format"),
        ({"type": "erasure", "export_formats": ["json"]}, "only allowed for access"),
        ({"type": "rectification"}, "required for rectification"),
        ({"type": "rectification", "corrections": {}}, "at least one field"),
        ({"type": "rectification", "corrections": {"email": None}}, "at least one field"),
        ({"type": "rectification", "corrections": {"external_id": "x"}}, "external_id"),
        ({"type": "rectification", "corrections": {"email": "nope"}}, "email"),
        ({"type": "erasure", "corrections": {"email": "a@b.c"}}, "only allowed for rectification"),
        ({"deadline": "2030-01-01T00:00:00Z"}, "deadline"),  # extra fields are refused
    ],
)
def test_invalid_bodies_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        create(**fields)


def test_bodies_are_immutable() -> None:
    with pytest.raises(ValidationError):
        create().type = DsrType.ERASURE


def test_extend_needs_a_reason_of_10_to_500_characters() -> None:
    assert DsrExtend.model_validate({"reason": "  " + "r" * 10 + "  "}).reason == "r" * 10
    assert DsrExtend.model_validate({"reason": "r" * 500, "days": 30}).days == 30
    for bad in (
        {},
        {"reason": "r" * 9},
        {"reason": "r" * 501},
        {"reason": "r" * 20, "days": 0},
        {"reason": "r" * 20, "days": 367},
        {"reason": "r" * 20, "months": 2},
    ):
        with pytest.raises(ValidationError):
            DsrExtend.model_validate(bad)


def test_verify_takes_the_code_as_typed_but_nothing_else() -> None:
    assert DsrVerify.model_validate({"code": " 7k3m9-q2x4t "}).code == "7k3m9-q2x4t"
    for bad in ("", "7K3M9", "7K3M9Q2X4T7K3M9Q2", "7K3M9Q2X4T;", "7K3M9\u00dfQ2X4T"):
        with pytest.raises(ValidationError):
            DsrVerify.model_validate({"code": bad})
    with pytest.raises(ValidationError):
        DsrVerify.model_validate({"code": "7K3M9Q2X4T", "request_id": "x"})


def test_list_query_limits() -> None:
    query = DsrListQuery.model_validate({"status": "running", "type": "erasure"})
    assert (query.status, query.type, query.limit, query.cursor) == (
        DsrStatus.RUNNING,
        DsrType.ERASURE,
        50,
        None,
    )
    for bad in ({"limit": 0}, {"limit": 201}, {"cursor": "a b"}, {"cursor": "x" * 201}, {"status": "done"}):
        with pytest.raises(ValidationError):
            DsrListQuery.model_validate(bad)


def test_the_response_shape() -> None:
    received = datetime(2026, 1, 31, 12, tzinfo=UTC)
    out = DsrOut(
        id=uuid.uuid4(),
        type=DsrType.ACCESS,
        status=DsrStatus.RUNNING,
        regulation=Regulation.GDPR,
        received_at=received,
        deadline=datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
        days_left=10,
        extended=False,
        steps=[{"name": "verify", "status": "succeeded", "at": received}],  # type: ignore[list-item]
    )
    body = out.model_dump(mode="json")
    assert body["steps"] == [{"name": "verify", "status": "succeeded", "at": "2026-01-31T12:00:00Z"}]
    assert body["export_url"] is None
    assert "subject_id" not in body
    assert "email" not in body
    page = DsrList(items=[out], next_cursor=None).model_dump(mode="json")
    assert page["next_cursor"] is None
    assert len(page["items"]) == 1
    with pytest.raises(ValidationError):
        DsrOut.model_validate(body | {"export_sha256": "XYZ"})
