"""KmsDataKeys against moto's in-process KMS (mock_aws, no network): a symmetric key generates,
wraps and unwraps data keys bound to their org/subject, end to end through FieldEncryptor."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from compliance.crypto import (
    DecryptionError,
    EncryptionContext,
    FieldEncryptor,
    InMemoryWrappedKeyStore,
    KeyScope,
    KeyServiceUnavailableError,
    KeyShreddedError,
    KmsDataKeys,
)

REGION = "us-east-1"
ORG = uuid.UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
ALICE = uuid.UUID("1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b")


@pytest.fixture
def kms(aws: None) -> Any:
    import boto3

    return boto3.client("kms", region_name=REGION)


@pytest.fixture
def key_arn(kms: Any) -> str:
    return str(kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"])


def test_generated_keys_unwrap_only_in_their_scope(kms: Any, key_arn: str) -> None:
    # Given a data key generated for (org, alice)
    provider = KmsDataKeys(kms, key_arn)
    scope = KeyScope(ORG, ALICE)
    generated = provider.new_key(scope)
    assert len(generated.plaintext) == 32
    assert bytes(generated.plaintext) not in generated.wrapped

    # When it is unwrapped with its id and scope, Then the plaintext comes back
    assert provider.unwrap(generated.key_id, generated.wrapped, scope) == generated.plaintext
    # And KMS refuses it under another subject, org or key id (its EncryptionContext)
    for other_id, other_scope in [
        (generated.key_id, KeyScope(ORG, uuid.uuid4())),
        (generated.key_id, KeyScope(ORG)),
        (generated.key_id, KeyScope(uuid.uuid4(), ALICE)),
        (uuid.uuid4(), scope),
    ]:
        with pytest.raises(DecryptionError):
            provider.unwrap(other_id, generated.wrapped, other_scope)


def test_field_encryption_end_to_end_with_kms(kms: Any, key_arn: str) -> None:
    # Given an encryptor on moto KMS and a value of Alice's
    provider = KmsDataKeys(kms, key_arn)
    store = InMemoryWrappedKeyStore()
    context = EncryptionContext(ORG, "usage_records", "prompt_text", ALICE)
    text = FieldEncryptor(provider, store).encrypt("jane@example.com", context)

    # Then a process with a cold cache decrypts it through KMS Decrypt
    assert FieldEncryptor(provider, store).decrypt(text, context) == "jane@example.com"
    # And after Alice's keys are destroyed it is gone, for every process
    FieldEncryptor(provider, store).destroy_keys(KeyScope(ORG, ALICE))
    with pytest.raises(KeyShreddedError):
        FieldEncryptor(provider, store).decrypt(text, context)


def test_a_kms_error_is_a_503_and_nothing_is_stored(kms: Any, key_arn: str) -> None:
    # Given a KMS key that does not exist (moto does not enforce DisableKey on GenerateDataKey)
    missing = key_arn.rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
    store = InMemoryWrappedKeyStore()

    # When a value is encrypted, Then a typed 503 error is raised and no key stored
    with pytest.raises(KeyServiceUnavailableError) as raised:
        FieldEncryptor(KmsDataKeys(kms, missing), store).encrypt(
            "v", EncryptionContext(ORG, "usage_records", "prompt_text", ALICE)
        )
    assert raised.value.status == 503
    assert "NotFoundException" in raised.value.detail
    assert store.key_count() == 0
