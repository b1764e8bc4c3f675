"""Data keys: generated and unwrapped by KMS (envelope encryption), stored wrapped per scope.

A data key is named by a uuid (its *key id*, written into every ciphertext it seals) and
belongs to one :class:`~compliance.crypto.context.KeyScope`. KMS wraps it under the KMS key
with an EncryptionContext naming the org, the subject (pseudonymous uuid, when per-subject) and
the key id, so a wrapped key swapped to another scope or id does not unwrap either.

Destroying a scope's wrapped keys is crypto-shredding: every ciphertext of that scope, backups
and copies included, becomes unreadable (:class:`KeyShreddedError`).
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol
from uuid import UUID

from compliance.aws.clients import error_code
from compliance.crypto.context import KeyScope
from compliance.crypto.envelope import KEY_BYTES
from compliance.crypto.errors import DecryptionError, KeyServiceUnavailableError, KeyShreddedError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

# KMS refuses the wrapped key itself (wrong context, edited blob): not an outage, not retryable.
_KMS_INTEGRITY_ERRORS = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})


class GeneratedDataKey(NamedTuple):
    """A fresh data key: its id, its plaintext (zero it when done) and its KMS-wrapped form."""

    key_id: UUID
    plaintext: bytearray
    wrapped: bytes

    def __repr__(self) -> str:  # never the plaintext
        wrapped = f"<{len(self.wrapped)} bytes>"
        return f"GeneratedDataKey(key_id={self.key_id}, plaintext=<redacted>, wrapped={wrapped})"


class DataKeyProvider(Protocol):
    def new_key(self, scope: KeyScope) -> GeneratedDataKey:
        """A new 256-bit data key for ``scope``, with a new key id."""
        ...

    def unwrap(self, key_id: UUID, wrapped: bytes, scope: KeyScope) -> bytearray:
        """The plaintext of a wrapped data key (32 bytes)."""
        ...


class StoredDataKey(NamedTuple):
    key_id: UUID
    wrapped: bytes


class WrappedKeyStore(Protocol):
    """Wrapped data keys by scope: :class:`compliance.db.data_keys.PgWrappedKeyStore` (table
    ``data_keys``), :class:`InMemoryWrappedKeyStore` for tests and benchmarks."""

    def current(self, scope: KeyScope) -> StoredDataKey | None:
        """The key new values of ``scope`` are encrypted with; ``None`` if it has none yet.
        Raises :class:`KeyShreddedError` once the scope was destroyed."""
        ...

    def get(self, scope: KeyScope, key_id: UUID) -> bytes | None:
        """The wrapped key ``key_id`` of ``scope``; ``None`` if the scope has no such key.
        Raises :class:`KeyShreddedError` once the scope was destroyed."""
        ...

    def put(self, scope: KeyScope, key: StoredDataKey) -> StoredDataKey:
        """Make ``key`` the scope's current key unless it has one already (a concurrent
        writer won): returns the current key either way. Refuses a destroyed scope."""
        ...

    def destroy(self, scope: KeyScope) -> None:
        """Crypto-shredding: forget every key of ``scope``; later reads raise KeyShreddedError."""
        ...


@dataclass
class InMemoryWrappedKeyStore:
    """A :class:`WrappedKeyStore` in a dict, for tests and benchmarks. Thread-safe."""

    _keys: dict[KeyScope, dict[UUID, bytes]] = field(default_factory=dict)
    _current: dict[KeyScope, UUID] = field(default_factory=dict)
    _destroyed: set[KeyScope] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self, scope: KeyScope) -> StoredDataKey | None:
        with self._lock:
            self._check_live(scope)
            key_id = self._current.get(scope)
            return None if key_id is None else StoredDataKey(key_id, self._keys[scope][key_id])

    def get(self, scope: KeyScope, key_id: UUID) -> bytes | None:
        with self._lock:
            self._check_live(scope)
            return self._keys.get(scope, {}).get(key_id)

    def put(self, scope: KeyScope, key: StoredDataKey) -> StoredDataKey:
        with self._lock:
            self._check_live(scope)
            current = self._current.get(scope)
            if current is not None:
                return StoredDataKey(current, self._keys[scope][current])
            self._keys.setdefault(scope, {})[key.key_id] = key.wrapped
            self._current[scope] = key.key_id
            return key

    def destroy(self, scope: KeyScope) -> None:
        with self._lock:
            self._keys.pop(scope, None)
            self._current.pop(scope, None)
            self._destroyed.add(scope)

    def key_count(self) -> int:
        with self._lock:
            return sum(len(keys) for keys in self._keys.values())

    def _check_live(self, scope: KeyScope) -> None:
        if scope in self._destroyed:
            raise KeyShreddedError("the data key of this subject was destroyed: the value is erased")


def kms_encryption_context(scope: KeyScope, key_id: UUID) -> dict[str, str]:
    """What KMS binds to a wrapped data key (visible in CloudTrail: uuids only, no personal data)."""
    context = {"purpose": "field-data-key", "org_id": str(scope.org_id), "data_key_id": str(key_id)}
    if scope.subject_id is not None:
        context["subject_id"] = str(scope.subject_id)
    return context


class KmsDataKeys:
    """:class:`DataKeyProvider` on a symmetric KMS key (``GenerateDataKey`` AES_256, ``Decrypt``)."""

    def __init__(self, client: KMSClient, kms_key_id: str) -> None:
        self._client = client
        self._kms_key_id = kms_key_id

    def __repr__(self) -> str:
        return f"KmsDataKeys(kms_key_id={self._kms_key_id!r})"

    @property
    def kms_key_id(self) -> str:
        """The KMS key data keys are wrapped under (recorded with each stored key)."""
        return self._kms_key_id

    def new_key(self, scope: KeyScope) -> GeneratedDataKey:
        from botocore.exceptions import BotoCoreError, ClientError

        key_id = uuid.uuid4()
        try:
            response = self._client.generate_data_key(
                KeyId=self._kms_key_id,
                KeySpec="AES_256",
                EncryptionContext=kms_encryption_context(scope, key_id),
            )
        except (ClientError, BotoCoreError) as exc:
            raise KeyServiceUnavailableError(
                f"KMS could not generate a data key ({error_code(exc)})"
            ) from exc
        plaintext = bytearray(response["Plaintext"])
        if len(plaintext) != KEY_BYTES:
            raise KeyServiceUnavailableError("KMS returned a data key of the wrong size")
        return GeneratedDataKey(key_id, plaintext, response["CiphertextBlob"])

    def unwrap(self, key_id: UUID, wrapped: bytes, scope: KeyScope) -> bytearray:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.decrypt(
                CiphertextBlob=wrapped,
                KeyId=self._kms_key_id,  # only this KMS key may unwrap: no attacker-chosen key
                EncryptionContext=kms_encryption_context(scope, key_id),
            )
        except ClientError as exc:
            if error_code(exc) in _KMS_INTEGRITY_ERRORS:
                raise DecryptionError(f"KMS refused the wrapped data key ({error_code(exc)})") from exc
            raise KeyServiceUnavailableError(f"KMS could not unwrap a data key ({error_code(exc)})") from exc
        except BotoCoreError as exc:
            raise KeyServiceUnavailableError(f"KMS could not unwrap a data key ({error_code(exc)})") from exc
        plaintext = bytearray(response["Plaintext"])
        if len(plaintext) != KEY_BYTES:
            raise DecryptionError("KMS unwrapped a data key of the wrong size")
        return plaintext
