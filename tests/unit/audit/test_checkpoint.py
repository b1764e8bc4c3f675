"""compliance.audit.checkpoint: the signed head format (known answer), signing and verification."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from compliance.audit.checkpoint import (
    CHECKPOINT_FORMAT,
    ZERO_HASH,
    CheckpointSignatureError,
    KmsSigner,
    LocalSigner,
    SignedCheckpoint,
    SigningError,
    TreeHead,
    checkpoint_json,
    head_bytes,
    head_hash,
    load_public_key,
    parse_checkpoint_json,
    sign_head,
    verify_message,
    verify_signature,
)
from compliance.audit.merkle import EMPTY_ROOT
from compliance.errors import IntegrityError

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
HEAD = TreeHead(
    org_id=UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001"),
    number=2,
    tree_size=5,
    root_hash="ab" * 32,
    last_event_hash="cd" * 32,
    issued_at=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    previous_head_hash="ef" * 32,
    key_id=KEY_ARN,
)

# Written by hand from the format table in the module docstring (RFC 8785: members sorted,
# no whitespace), not produced by the code under test.
EXPECTED_HEAD_BYTES = (
    b'{"algorithm":"ECDSA_SHA_256",'
    b'"format":"compliance-audit-checkpoint/v1",'
    b'"issued_at":"2026-01-02T03:04:05.123456Z",'
    b'"key_id":"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",'
    b'"last_event_hash":"' + b"cd" * 32 + b'",'
    b'"number":2,'
    b'"org_id":"6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001",'
    b'"previous_head_hash":"' + b"ef" * 32 + b'",'
    b'"root_hash":"' + b"ab" * 32 + b'",'
    b'"tree_size":5}'
)


@pytest.fixture(scope="module")
def signer() -> LocalSigner:
    return LocalSigner.generate(KEY_ARN)


def _flip(value: bytes, position: int) -> bytes:
    mutated = bytearray(value)
    mutated[position] ^= 0x01
    return bytes(mutated)


# ---------------------------------------------------------------------------- format


def test_head_bytes_match_the_published_format() -> None:
    # Given a fixed head / When serialized / Then the bytes are exactly the documented JCS form
    assert head_bytes(HEAD) == EXPECTED_HEAD_BYTES
    assert head_hash(HEAD) == hashlib.sha256(EXPECTED_HEAD_BYTES).hexdigest()
    assert json.loads(EXPECTED_HEAD_BYTES)["format"] == CHECKPOINT_FORMAT


def test_issued_at_is_normalised_to_utc_microseconds() -> None:
    # Given the same instant in another zone, without fractional seconds
    local = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    head = HEAD.model_copy(update={"issued_at": local})
    validated = TreeHead.model_validate(head.model_dump())
    # Then it serializes in UTC with six fractional digits, in the head bytes and in JSON alike
    assert b'"issued_at":"2026-01-02T03:04:05.000000Z"' in head_bytes(validated)
    assert validated.model_dump(mode="json")["issued_at"] == "2026-01-02T03:04:05.000000Z"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"number": 1}, "previous_head_hash must be 64 zeros"),
        ({"tree_size": 0}, "empty tree"),
        ({"number": 0}, "greater than or equal to 1"),
        ({"root_hash": "AB" * 32}, "pattern"),
        ({"issued_at": datetime(2026, 1, 2)}, "timezone"),
        ({"algorithm": "RSASSA_PSS_SHA_256"}, "ECDSA_SHA_256"),
        ({"key_id": ""}, "at least 1"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_inconsistent_heads_are_refused(changes: dict[str, Any], message: str) -> None:
    # Given a valid head's fields with one change / When validated / Then it is refused
    with pytest.raises(ValidationError, match=message):
        TreeHead.model_validate({**HEAD.model_dump(), **changes})


def test_the_first_checkpoint_of_an_empty_log_is_valid() -> None:
    head = TreeHead.model_validate(
        {
            **HEAD.model_dump(),
            "number": 1,
            "tree_size": 0,
            "root_hash": EMPTY_ROOT.hex(),
            "last_event_hash": "0" * 64,
            "previous_head_hash": ZERO_HASH,
        }
    )
    assert head.tree_size == 0


def test_the_published_document_round_trips(signer: LocalSigner) -> None:
    # Given a signed checkpoint / When published and parsed back
    checkpoint = sign_head(HEAD, signer)
    document = checkpoint_json(checkpoint)
    parsed = parse_checkpoint_json(document)
    # Then nothing is lost, and the document names its format and head hash
    assert parsed == checkpoint
    data = json.loads(document)
    assert data["format"] == CHECKPOINT_FORMAT
    assert data["head_hash"] == head_hash(HEAD)
    assert set(data["head"]) == set(TreeHead.model_fields)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(format="other/v2"),
        lambda d: d.update(head_hash="00" * 32),
        lambda d: d["head"].update(tree_size=6),
        lambda d: d.update(signature="not base64!"),
    ],
)
def test_a_bad_published_document_is_refused(signer: LocalSigner, mutate: Any) -> None:
    data = json.loads(checkpoint_json(sign_head(HEAD, signer)))
    mutate(data)
    with pytest.raises(ValueError):
        parse_checkpoint_json(json.dumps(data))


# ---------------------------------------------------------------------------- signatures


def test_a_signed_checkpoint_verifies(signer: LocalSigner) -> None:
    # Given a head signed locally
    checkpoint = sign_head(HEAD, signer)
    # When verified with the PEM and the DER public key / Then both accept it
    verify_signature(checkpoint, load_public_key(signer.public_key_pem()))
    der = signer.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verify_signature(checkpoint, load_public_key(der))


def test_any_flipped_byte_of_the_head_bytes_fails(signer: LocalSigner) -> None:
    # Given the signature of the head bytes
    message = head_bytes(HEAD)
    signature = signer.sign(message)
    verify_message(message, signature, signer.public_key)
    # When any single byte of the message changes / Then verification fails
    for position in range(len(message)):
        with pytest.raises(CheckpointSignatureError):
            verify_message(_flip(message, position), signature, signer.public_key)


def test_any_flipped_byte_of_the_signature_fails(signer: LocalSigner) -> None:
    message = head_bytes(HEAD)
    signature = signer.sign(message)
    for position in range(len(signature)):
        with pytest.raises(CheckpointSignatureError):
            verify_message(message, _flip(signature, position), signer.public_key)


@pytest.mark.parametrize(
    "changes",
    [
        {"org_id": UUID(int=1)},
        {"number": 3},
        {"tree_size": 6},
        {"root_hash": "ac" * 32},
        {"last_event_hash": "ce" * 32},
        {"issued_at": HEAD.issued_at + timedelta(microseconds=1)},
        {"previous_head_hash": "ee" * 32},
        {"key_id": KEY_ARN + "x"},
    ],
)
def test_any_changed_field_fails_verification(signer: LocalSigner, changes: dict[str, Any]) -> None:
    # Given a signed checkpoint whose head is then altered
    checkpoint = sign_head(HEAD, signer)
    forged = SignedCheckpoint(head=HEAD.model_copy(update=changes), signature=checkpoint.signature)
    # Then the signature no longer verifies (an IntegrityError, 500 "Integrity check failed")
    with pytest.raises(CheckpointSignatureError) as caught:
        verify_signature(forged, signer.public_key)
    assert isinstance(caught.value, IntegrityError)


def test_another_key_does_not_verify(signer: LocalSigner) -> None:
    checkpoint = sign_head(HEAD, signer)
    with pytest.raises(CheckpointSignatureError):
        verify_signature(checkpoint, LocalSigner.generate(KEY_ARN).public_key)


def test_a_signer_signs_only_heads_naming_its_key(signer: LocalSigner) -> None:
    with pytest.raises(ValueError, match="another key"):
        sign_head(HEAD.model_copy(update={"key_id": "arn:other"}), signer)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        b"\x30\x03\x02\x01\x00",
    ],
)
def test_unusable_public_keys_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="PEM or DER"):
        load_public_key(data)


def test_keys_of_other_curves_and_types_are_refused() -> None:
    # Given a P-384 and an RSA public key / Then neither is accepted for ECDSA_SHA_256 checkpoints
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    for key in (p384, rsa_key):
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with pytest.raises(ValueError, match="P-256"):
            load_public_key(pem)


# ---------------------------------------------------------------------------- KMS signer (fake client)


class _FailingKms:
    def sign(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "KMSInvalidStateException", "Message": "x"}}, "Sign")

    def get_public_key(self, **kwargs: Any) -> dict[str, Any]:
        return self.sign()


class _RecordingKms:
    def __init__(self, signer: LocalSigner) -> None:
        self.signer = signer
        self.calls: list[dict[str, Any]] = []

    def sign(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"KeyId": kwargs["KeyId"], "Signature": self.signer.sign(kwargs["Message"])}


def test_the_kms_signer_signs_the_raw_head_bytes(signer: LocalSigner) -> None:
    # Given a KMS client that records its calls
    kms = _RecordingKms(signer)
    # When a head is signed through KmsSigner
    checkpoint = sign_head(HEAD, KmsSigner(kms, KEY_ARN))  # type: ignore[arg-type]
    # Then KMS got the raw head bytes with ECDSA_SHA_256, and the signature verifies
    assert kms.calls == [
        {
            "KeyId": KEY_ARN,
            "Message": EXPECTED_HEAD_BYTES,
            "MessageType": "RAW",
            "SigningAlgorithm": "ECDSA_SHA_256",
        }
    ]
    verify_signature(checkpoint, signer.public_key)
    assert base64.b64decode(checkpoint.signature)[0] == 0x30  # DER SEQUENCE


def test_kms_failures_become_signing_errors() -> None:
    kms_signer = KmsSigner(_FailingKms(), KEY_ARN)  # type: ignore[arg-type]
    with pytest.raises(SigningError, match="KMSInvalidStateException") as caught:
        kms_signer.sign(b"message")
    assert caught.value.status == 503
    with pytest.raises(SigningError):
        kms_signer.public_key_der()
