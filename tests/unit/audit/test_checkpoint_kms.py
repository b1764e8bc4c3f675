"""KmsSigner against moto's in-process KMS: an ECC_NIST_P256 signature verifies through
`cryptography` with the public key from GetPublicKey, and fails after any change of the head."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from compliance.audit.checkpoint import (
    CheckpointSignatureError,
    KmsSigner,
    SignedCheckpoint,
    head_bytes,
    load_public_key,
    sign_head,
    verify_message,
    verify_signature,
)
from tests.unit.audit.test_checkpoint import HEAD


@pytest.fixture
def kms(aws: None) -> Any:
    import boto3

    return boto3.client("kms", region_name="us-east-1")


def test_a_kms_signature_verifies_with_the_kms_public_key(kms: Any) -> None:
    # Given an asymmetric ECC P-256 signing key in KMS
    arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    signer = KmsSigner(kms, arn)
    head = HEAD.model_copy(update={"key_id": arn})

    # When a head is signed by KMS and the public key fetched with GetPublicKey
    checkpoint = sign_head(head, signer)
    public_key = load_public_key(signer.public_key_der())

    # Then the signature verifies through cryptography
    verify_signature(checkpoint, public_key)

    # And fails after any single byte of the signed head bytes changes
    message = head_bytes(head)
    signature = base64.b64decode(checkpoint.signature)
    for position in range(len(message)):
        mutated = bytearray(message)
        mutated[position] ^= 0x01
        with pytest.raises(CheckpointSignatureError):
            verify_message(bytes(mutated), signature, public_key)
    # And after a field of the head changes
    forged = SignedCheckpoint(head=head.model_copy(update={"tree_size": 6}), signature=checkpoint.signature)
    with pytest.raises(CheckpointSignatureError):
        verify_signature(forged, public_key)
