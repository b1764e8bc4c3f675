"""Signed checkpoints (tree heads) of an organisation's audit log.

A checkpoint states, under the platform's signature, "the audit log of organisation ``org_id`` had
``tree_size`` events whose RFC 6962 Merkle root is ``root_hash`` and whose last ``event_hash`` is
``last_event_hash``". Checkpoints of one organisation are numbered 1, 2, 3... and each names the
SHA-256 of the previous one's head bytes, so they form a chain of their own.

Format ``compliance-audit-checkpoint/v1`` (what a third party needs to verify one)
--------------------------------------------------------------------------------
The signed message (:func:`head_bytes`) is the RFC 8785 (JCS) canonical JSON of an object with
exactly these members:

======================  ===========================================================================
``algorithm``           ``"ECDSA_SHA_256"``
``format``              ``"compliance-audit-checkpoint/v1"``
``issued_at``           RFC 3339 UTC with six fractional digits and ``Z`` (``...T03:04:05.123456Z``)
``key_id``              the ARN of the KMS key that signed
``last_event_hash``     ``event_hash`` of the event at ``seq = tree_size`` (64 zeros when 0)
``number``              1, 2, 3... per organisation
``org_id``              lowercase hyphenated UUID
``previous_head_hash``  lowercase hex SHA-256 of the previous checkpoint's head bytes (64 zeros for 1)
``root_hash``           lowercase hex RFC 6962 root of the first ``tree_size`` leaves
``tree_size``           number of events covered (the leaves are ``SHA-256(0x00 || event_hash bytes)``)
======================  ===========================================================================

``head_hash`` is the lowercase hex SHA-256 of those bytes. The signature is ECDSA P-256 over
SHA-256 of the head bytes (KMS ``ECDSA_SHA_256`` with ``MessageType=RAW``), DER-encoded
(``ECDSA-Sig-Value``), then standard base64. Verify with the key's SubjectPublicKeyInfo
(``kms:GetPublicKey``), e.g. ``openssl dgst -sha256 -verify key.pem -signature sig.der head.json``.

The published document (:func:`checkpoint_json`, what the S3 anchor and exports hold) is
``{"format", "head": {...the members above but format...}, "head_hash", "signature"}``.

cryptography is imported inside the functions that need it: the checkpoint handler and the
API import this module at cold start, and only signing/verifying needs the library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Protocol
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from compliance.audit.canonical import GENESIS_HASH, canonicalize, format_timestamp, format_uuid
from compliance.audit.events import MAX_SEQ, Sha256Hex
from compliance.audit.merkle import EMPTY_ROOT
from compliance.aws.clients import error_code
from compliance.errors import DomainError, IntegrityError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey
    from mypy_boto3_kms import KMSClient

__all__ = [
    "CHECKPOINT_FORMAT",
    "SIGNING_ALGORITHM",
    "ZERO_HASH",
    "CheckpointSignatureError",
    "KmsSigner",
    "LocalSigner",
    "SignedCheckpoint",
    "Signer",
    "SigningError",
    "TreeHead",
    "checkpoint_json",
    "head_bytes",
    "head_hash",
    "load_public_key",
    "parse_checkpoint_json",
    "sign_head",
    "verify_message",
    "verify_signature",
]

CHECKPOINT_FORMAT: Final = "compliance-audit-checkpoint/v1"
SIGNING_ALGORITHM: Final = "ECDSA_SHA_256"
ZERO_HASH: Final = "0" * 64
"""``previous_head_hash`` of checkpoint number 1."""

KMS_MAX_RAW_MESSAGE = 4096  # KMS Sign refuses larger RAW messages
MAX_SIGNATURE_B64 = 256  # a DER P-256 signature is at most 72 bytes (96 base64 characters)

KeyId = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^[\x21-\x7e]+$")]
Base64Signature = Annotated[
    str, StringConstraints(min_length=4, max_length=MAX_SIGNATURE_B64, pattern=r"^[A-Za-z0-9+/]+={0,2}$")
]


class CheckpointSignatureError(IntegrityError):
    """A checkpoint's signature does not verify with the given public key."""

    title = "Checkpoint signature invalid"


class SigningError(DomainError):
    """The signing key (KMS) could not sign a checkpoint."""

    status = 503
    title = "Checkpoint signing unavailable"


class TreeHead(BaseModel):
    """What is signed. See the module docstring for the serialized form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: UUID
    number: int = Field(ge=1, le=MAX_SEQ, description="1, 2, 3... per organisation.")
    tree_size: int = Field(ge=0, le=MAX_SEQ, description="Events covered: seq 1..tree_size.")
    root_hash: Sha256Hex = Field(description="RFC 6962 root of the first tree_size leaves.")
    last_event_hash: Sha256Hex = Field(description="event_hash at seq = tree_size; GENESIS_HASH for 0.")
    issued_at: AwareDatetime = Field(description="When it was signed; UTC, microsecond precision.")
    previous_head_hash: Sha256Hex = Field(description="head_hash of checkpoint number - 1; zeros for 1.")
    key_id: KeyId = Field(description="ARN of the KMS key that signs.")
    algorithm: Literal["ECDSA_SHA_256"] = SIGNING_ALGORITHM

    @field_validator("issued_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_serializer("issued_at")
    def _canonical_time(self, value: datetime) -> str:
        return format_timestamp(value)

    @model_validator(mode="after")
    def _consistent(self) -> TreeHead:
        if self.number == 1 and self.previous_head_hash != ZERO_HASH:
            raise ValueError("checkpoint 1 has no predecessor: previous_head_hash must be 64 zeros")
        if self.tree_size == 0 and (
            self.root_hash != EMPTY_ROOT.hex() or self.last_event_hash != GENESIS_HASH
        ):
            raise ValueError("an empty tree has the empty root and the genesis hash")
        return self


class SignedCheckpoint(BaseModel):
    """A tree head and the base64 of its DER-encoded ECDSA signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    head: TreeHead
    signature: Base64Signature

    @property
    def head_hash(self) -> str:
        return head_hash(self.head)


def _head_object(head: TreeHead) -> dict[str, Any]:
    return {
        "algorithm": head.algorithm,
        "format": CHECKPOINT_FORMAT,
        "issued_at": format_timestamp(head.issued_at),
        "key_id": head.key_id,
        "last_event_hash": head.last_event_hash,
        "number": head.number,
        "org_id": format_uuid(head.org_id),
        "previous_head_hash": head.previous_head_hash,
        "root_hash": head.root_hash,
        "tree_size": head.tree_size,
    }


def head_bytes(head: TreeHead) -> bytes:
    """The signed message: RFC 8785 canonical JSON of the head with its ``format``."""
    return canonicalize(_head_object(head))


def head_hash(head: TreeHead) -> str:
    """Lowercase hex SHA-256 of :func:`head_bytes` (what the next checkpoint links to)."""
    return hashlib.sha256(head_bytes(head)).hexdigest()


def checkpoint_json(checkpoint: SignedCheckpoint) -> bytes:
    """The published document of a signed checkpoint (canonical JSON, UTF-8)."""
    head = _head_object(checkpoint.head)
    del head["format"]
    return canonicalize(
        {
            "format": CHECKPOINT_FORMAT,
            "head": head,
            "head_hash": checkpoint.head_hash,
            "signature": checkpoint.signature,
        }
    )


def parse_checkpoint_json(data: bytes | str) -> SignedCheckpoint:
    """Parse :func:`checkpoint_json`. Raises ``ValueError`` for another format or a
    ``head_hash`` that is not the hash of the head (the signature is *not* checked here)."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ValueError("checkpoint document is not JSON") from exc
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint document is not {CHECKPOINT_FORMAT}")
    try:
        checkpoint = SignedCheckpoint.model_validate(
            {"head": document.get("head"), "signature": document.get("signature")}
        )
    except ValidationError as exc:
        raise ValueError(f"invalid checkpoint document: {exc.error_count()} error(s)") from exc
    if document.get("head_hash") != checkpoint.head_hash:
        raise ValueError("head_hash does not match the head")
    return checkpoint


# ---------------------------------------------------------------------------- signing


class Signer(Protocol):
    """Signs checkpoint head bytes; ``key_id`` goes into the head it signs."""

    @property
    def key_id(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """The DER-encoded ECDSA P-256/SHA-256 signature of ``message``."""
        ...


def sign_head(head: TreeHead, signer: Signer) -> SignedCheckpoint:
    """Sign ``head`` (whose ``key_id`` must be the signer's)."""
    if head.key_id != signer.key_id:
        raise ValueError("the head names another key than the signer's")
    signature = signer.sign(head_bytes(head))
    return SignedCheckpoint(head=head, signature=base64.b64encode(signature).decode("ascii"))


class KmsSigner:
    """Signs with an asymmetric KMS key (ECC_NIST_P256, SIGN_VERIFY).

    Always ``MessageType=RAW``: KMS hashes the message itself. (``DIGEST`` would save sending
    ~500 bytes, but moto signs DIGEST input wrongly, and RAW keeps what is signed obvious.)
    ``key_id`` should be the key ARN: it is written into every head.
    """

    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._client = client
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, message: bytes) -> bytes:
        if len(message) > KMS_MAX_RAW_MESSAGE:
            raise ValueError(f"KMS signs RAW messages of at most {KMS_MAX_RAW_MESSAGE} bytes")
        try:
            response = self._client.sign(
                KeyId=self._key_id,
                Message=message,
                MessageType="RAW",
                SigningAlgorithm=SIGNING_ALGORITHM,
            )
        except Exception as exc:  # botocore ClientError / BotoCoreError alike
            raise SigningError(f"KMS could not sign the checkpoint ({error_code(exc)})") from exc
        return response["Signature"]

    def public_key_der(self) -> bytes:
        """The key's DER SubjectPublicKeyInfo (``kms:GetPublicKey``)."""
        try:
            return self._client.get_public_key(KeyId=self._key_id)["PublicKey"]
        except Exception as exc:
            raise SigningError(f"KMS could not return the public key ({error_code(exc)})") from exc


class LocalSigner:
    """Signs with an in-process EC P-256 private key: tests, benchmarks, local runs."""

    def __init__(self, private_key: EllipticCurvePrivateKey, key_id: str = "local:test-key") -> None:
        self._private_key = private_key
        self._key_id = key_id

    @classmethod
    def generate(cls, key_id: str = "local:test-key") -> LocalSigner:
        from cryptography.hazmat.primitives.asymmetric import ec

        return cls(ec.generate_private_key(ec.SECP256R1()), key_id)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def public_key(self) -> EllipticCurvePublicKey:
        return self._private_key.public_key()

    def public_key_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return self._private_key.sign(message, ec.ECDSA(hashes.SHA256()))


# ---------------------------------------------------------------------------- verification


def load_public_key(data: bytes) -> EllipticCurvePublicKey:
    """An EC P-256 public key from PEM or DER SubjectPublicKeyInfo (what KMS GetPublicKey returns).

    Raises ``ValueError`` for anything else (other formats, curves or key types).
    """
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a PEM or DER SubjectPublicKeyInfo public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("the checkpoint key must be an EC P-256 (secp256r1) public key")
    return key


def verify_message(message: bytes, signature: bytes, public_key: EllipticCurvePublicKey) -> None:
    """Check a DER ECDSA P-256/SHA-256 ``signature`` of ``message``; raise
    :class:`CheckpointSignatureError` if it does not verify."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError) as exc:
        raise CheckpointSignatureError("checkpoint signature does not verify") from exc


def verify_signature(checkpoint: SignedCheckpoint, public_key: EllipticCurvePublicKey) -> None:
    """Check the checkpoint's signature over :func:`head_bytes` of its head.

    Raises :class:`CheckpointSignatureError` when it does not verify (also for a signature that is
    not valid base64).
    """
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointSignatureError("checkpoint signature is not base64") from exc
    verify_message(head_bytes(checkpoint.head), signature, public_key)
