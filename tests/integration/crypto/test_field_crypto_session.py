"""FieldCrypto.tenant: keys created in a transaction that does not commit leave the cache with it."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from compliance.crypto import DataKeyCache, EncryptionContext, KmsDataKeys
from compliance.crypto.session import FieldCrypto
from compliance.errors import DataAccessError
from tests.conftest import ProvisionedDatabase


@pytest.fixture
def org(migrated_db: ProvisionedDatabase) -> uuid.UUID:
    org_id = uuid.uuid4()
    with migrated_db.owner() as conn:
        conn.execute("INSERT INTO organisations (id, name) VALUES (%s, 'Session Org')", (org_id,))
    return org_id


@pytest.fixture
def kms_key(aws: None) -> str:
    return str(boto3.client("kms").create_key()["KeyMetadata"]["Arn"])


def crypto_for(kms_key: str) -> FieldCrypto:
    return FieldCrypto(KmsDataKeys(boto3.client("kms"), kms_key), kms_key_id=kms_key, cache=DataKeyCache())


def keys_stored(db: ProvisionedDatabase) -> int:
    with db.owner() as conn:
        row = conn.execute("SELECT count(*) FROM data_keys").fetchone()
    return int(row[0]) if row else 0


def test_a_rolled_back_key_is_evicted_so_later_values_use_a_stored_key(
    migrated_db: ProvisionedDatabase, org: uuid.UUID, kms_key: str
) -> None:
    crypto = crypto_for(kms_key)
    context = EncryptionContext(org, "usage_records", "prompt_text", uuid.uuid4())

    # Given a transaction that created the scope's first key, then failed
    with pytest.raises(RuntimeError), crypto.tenant(migrated_db.app, org) as (_conn, encryptor):
        encryptor.encrypt("lost with the rollback", context)
        raise RuntimeError("the write after it failed")

    # Then the key is neither stored nor cached
    assert keys_stored(migrated_db) == 0
    assert len(crypto.cache) == 0

    # When the same process encrypts for that scope again and commits
    with crypto.tenant(migrated_db.app, org) as (_conn, encryptor):
        sealed = encryptor.encrypt("kept", context)

    # Then another process (its own cache) can decrypt it: the key it names was stored
    assert keys_stored(migrated_db) == 1
    with crypto_for(kms_key).tenant(migrated_db.app, org) as (_conn, reader):
        assert reader.decrypt(sealed, context) == "kept"


def test_a_database_error_after_the_key_evicts_it_too(
    migrated_db: ProvisionedDatabase, org: uuid.UUID, kms_key: str
) -> None:
    crypto = crypto_for(kms_key)
    context = EncryptionContext(org, "usage_records", "prompt_text", uuid.uuid4())
    # Given a transaction in which the database fails after the key was created
    with pytest.raises(DataAccessError), crypto.tenant(migrated_db.app, org) as (conn, encryptor):
        encryptor.encrypt("lost with the transaction", context)
        conn.execute("SELECT 1/0")
    # Then nothing of the key remains
    assert keys_stored(migrated_db) == 0 and len(crypto.cache) == 0


def test_reads_never_create_keys(
    migrated_db: ProvisionedDatabase, org: uuid.UUID, kms_key: str, aws: Any
) -> None:
    # Given a ciphertext of a scope, read in a transaction without audit sink
    crypto = crypto_for(kms_key)
    context = EncryptionContext(org, "usage_records", "prompt_text", uuid.uuid4())
    with crypto.tenant(migrated_db.app, org) as (_conn, encryptor):
        sealed = encryptor.encrypt("value", context)
    before = keys_stored(migrated_db)
    with crypto_for(kms_key).tenant(migrated_db.app, org) as (_conn, reader):
        assert reader.decrypt(sealed, context) == "value"
    assert keys_stored(migrated_db) == before == 1
