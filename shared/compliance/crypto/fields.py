"""`FieldEncryptor`: encrypt and decrypt column values (the facade over format, keys and cache)."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from compliance.crypto.context import EncryptionContext, KeyScope
from compliance.crypto.data_keys import DataKeyProvider, StoredDataKey, WrappedKeyStore
from compliance.crypto.envelope import HEADER_BYTES, check_layout, from_text, seal, to_text, unseal
from compliance.crypto.errors import DecryptionError
from compliance.crypto.key_cache import CachedKey, DataKeyCache, zero


class FieldEncryptor:
    """Envelope encryption of single values under the data key of their context's scope.

    Encrypting for a scope without a key generates one (KMS ``GenerateDataKey``) and stores it
    wrapped before any value is sealed with it, so a KMS or store failure loses nothing: the
    call raises and nothing was written. Keys come from the cache first, then the store + KMS.
    """

    def __init__(
        self, provider: DataKeyProvider, store: WrappedKeyStore, cache: DataKeyCache | None = None
    ) -> None:
        self._provider = provider
        self._store = store
        self._cache = cache if cache is not None else DataKeyCache()

    def __repr__(self) -> str:
        return f"FieldEncryptor(provider={self._provider!r}, cache={self._cache!r})"

    def encrypt(self, value: str, context: EncryptionContext) -> str:
        """The text form (``enc:v1:...``) of ``value``, bound to ``context``."""
        return to_text(self.encrypt_bytes(value.encode("utf-8"), context))

    def decrypt(self, text: str, context: EncryptionContext) -> str:
        """The value of a text ciphertext, or a typed error: DecryptionError (wrong context,
        tampered, truncated), UnsupportedCiphertextError, KeyShreddedError,
        KeyServiceUnavailableError."""
        plaintext = self.decrypt_bytes(from_text(text), context)
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:  # authenticated but not from encrypt(): refuse, never guess
            raise DecryptionError("the decrypted value is not UTF-8 text") from None

    def encrypt_bytes(self, plaintext: bytes, context: EncryptionContext) -> bytes:
        scope = context.scope
        key = self._cache.for_encryption(scope) or self._current_key(scope)
        return seal(key.cipher, key.key_id, plaintext, context)

    def decrypt_bytes(self, ciphertext: bytes, context: EncryptionContext) -> bytes:
        check_layout(ciphertext)
        scope = context.scope
        key = self._cache.for_decryption(ciphertext[1:HEADER_BYTES])
        if key is None:
            key_id = UUID(bytes=ciphertext[1:HEADER_BYTES])
            wrapped = self._store.get(scope, key_id)  # KeyShreddedError once the scope is destroyed
            if wrapped is None:
                raise DecryptionError("the value was encrypted for another org or subject")
            plaintext_key = self._provider.unwrap(key_id, wrapped, scope)
            key = self._cache.insert(scope, key_id, plaintext_key, for_encryption=False)
        elif key.scope != scope:
            raise DecryptionError("the value was encrypted for another org or subject")
        return unseal(key.cipher, ciphertext, context)

    def prepare(self, scopes: Iterable[KeyScope]) -> None:
        """Make sure each scope has a current key before values are sealed, creating the missing
        ones in one global order (org key first, then by subject uuid). Creating a key locks its
        scope until the transaction ends: writers that create keys of overlapping scopes in record
        order would deadlock; in this order one waits for the other instead."""
        for scope in sorted(set(scopes), key=_scope_order):
            if self._cache.for_encryption(scope) is None:
                self._current_key(scope)

    def destroy_keys(self, scope: KeyScope) -> None:
        """Crypto-shredding primitive: destroy the scope's wrapped keys and drop them from this
        process's cache (other processes stop within their cache's ``max_age_seconds``).
        Audit events and the API around it belong to the caller."""
        self._store.destroy(scope)
        self._cache.evict_scope(scope)

    def _current_key(self, scope: KeyScope) -> CachedKey:
        stored = self._store.current(scope)
        if stored is None:
            generated = self._provider.new_key(scope)
            try:
                stored = self._store.put(scope, StoredDataKey(generated.key_id, generated.wrapped))
            except BaseException:
                zero(generated.plaintext)
                raise
            if stored.key_id == generated.key_id:
                return self._cache.insert(scope, stored.key_id, generated.plaintext, for_encryption=True)
            zero(generated.plaintext)  # a concurrent writer stored its key first: use that one
        key = self._provider.unwrap(stored.key_id, stored.wrapped, scope)
        return self._cache.insert(scope, stored.key_id, key, for_encryption=True)


def _scope_order(scope: KeyScope) -> tuple[bytes, bool, bytes]:
    subject = b"" if scope.subject_id is None else scope.subject_id.bytes
    return (scope.org_id.bytes, scope.subject_id is not None, subject)
