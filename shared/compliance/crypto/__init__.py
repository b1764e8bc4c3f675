"""Field-level envelope encryption: AES-256-GCM values under per-(org, subject) data keys from KMS.

Format: docs/crypto-format.md. Heavy imports (cryptography, botocore) happen on first use.
"""

from __future__ import annotations

from compliance.crypto.context import EncryptionContext, KeyScope
from compliance.crypto.data_keys import (
    DataKeyProvider,
    GeneratedDataKey,
    InMemoryWrappedKeyStore,
    KmsDataKeys,
    StoredDataKey,
    WrappedKeyStore,
)
from compliance.crypto.envelope import OVERHEAD_BYTES, decrypt_value, encrypt_value, from_text, to_text
from compliance.crypto.errors import (
    DecryptionError,
    KeyServiceUnavailableError,
    KeyShreddedError,
    UnsupportedCiphertextError,
)
from compliance.crypto.fields import FieldEncryptor
from compliance.crypto.key_cache import CachedKey, DataKeyCache

__all__ = [
    "OVERHEAD_BYTES",
    "CachedKey",
    "DataKeyCache",
    "DataKeyProvider",
    "DecryptionError",
    "EncryptionContext",
    "FieldEncryptor",
    "GeneratedDataKey",
    "InMemoryWrappedKeyStore",
    "KeyScope",
    "KeyServiceUnavailableError",
    "KeyShreddedError",
    "KmsDataKeys",
    "StoredDataKey",
    "UnsupportedCiphertextError",
    "WrappedKeyStore",
    "decrypt_value",
    "encrypt_value",
    "from_text",
    "to_text",
]
