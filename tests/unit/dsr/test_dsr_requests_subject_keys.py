"""compliance.dsr.subject_keys: the keyed key that finds a second open request for the same person."""

from __future__ import annotations

import uuid

import pytest

from compliance.dsr.subject_keys import subject_key

SECRET = bytes(range(32))
ORG = uuid.UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
OTHER_ORG = uuid.UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0002")


def test_the_same_subject_gives_the_same_32_byte_key() -> None:
    # Given the same secret, org and id / When keyed twice / Then the keys are equal
    first = subject_key(SECRET, ORG, subject_id="user-42")
    assert first == subject_key(SECRET, ORG, subject_id="user-42")
    assert len(first) == 32 and b"user-42" not in first


def test_an_email_is_compared_stripped_and_lower_cased() -> None:
    assert subject_key(SECRET, ORG, email=" Ada@Example.COM ") == subject_key(
        SECRET, ORG, email="ada@example.com"
    )


@pytest.mark.parametrize(
    "other",
    [
        subject_key(SECRET, ORG, subject_id="user-43"),  # another person
        subject_key(SECRET, OTHER_ORG, subject_id="user-42"),  # the same id in another org
        subject_key(bytes(32), ORG, subject_id="user-42"),  # another deployment's secret
        subject_key(SECRET, ORG, email="user-42"),  # an address spelled like the id
    ],
)
def test_anything_else_gives_another_key(other: bytes) -> None:
    assert subject_key(SECRET, ORG, subject_id="user-42") != other


@pytest.mark.parametrize(
    ("secret", "kwargs"),
    [
        (b"short", {"subject_id": "user-42"}),
        (SECRET, {}),
        (SECRET, {"subject_id": "user-42", "email": "a@example.com"}),
    ],
)
def test_a_short_secret_or_not_exactly_one_identifier_is_refused(
    secret: bytes, kwargs: dict[str, str]
) -> None:
    with pytest.raises(ValueError):
        subject_key(secret, ORG, **kwargs)
