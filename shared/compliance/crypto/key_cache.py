"""A bounded in-process cache of unwrapped data keys, like the AWS Encryption SDK's caching
materials manager: KMS calls grow with distinct data keys, not with encrypted fields.

Limits: ``max_entries`` (least recently used evicted first), ``max_age_seconds`` (since the key
was unwrapped; also how long another process may keep reading a scope after it is shredded
there), ``max_uses`` (encryptions per cached key before it is unwrapped again). Thread-safe.

What is cached is not the key bytes but the AES-256-GCM object built from them: the plaintext
``bytearray`` handed to :meth:`DataKeyCache.insert` is zeroed as soon as that object exists, so
the only copy left is OpenSSL's, inside the object, which OpenSSL cleanses when it is freed
(after eviction, once no operation in flight still holds it). Eviction therefore never changes
a key under a concurrent operation. (The immutable ``bytes`` a KMS response carries are beyond
reach: ``KmsDataKeys`` copies them into a ``bytearray`` and drops them at once.)
Nothing here logs or reprs key bytes.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple
from uuid import UUID

from compliance.crypto.context import KeyScope
from compliance.crypto.envelope import cipher_for

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def zero(buffer: bytearray) -> None:
    """Overwrite a key in place."""
    buffer[:] = bytes(len(buffer))


class CachedKey(NamedTuple):
    """A usable data key: its id, scope and AES-GCM cipher (whose repr shows no key)."""

    key_id: UUID
    scope: KeyScope
    cipher: AESGCM


class _Entry:
    __slots__ = ("created", "key", "uses")

    def __init__(self, key: CachedKey, created: float) -> None:
        self.key = key
        self.created = created
        self.uses = 0


class DataKeyCache:
    def __init__(
        self,
        *,
        max_entries: int = 1_000,
        max_age_seconds: float = 300.0,
        max_uses: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_age_seconds <= 0 or max_uses < 1:
            raise ValueError("cache limits must be positive")
        self.max_entries = max_entries
        self.max_age_seconds = max_age_seconds
        self.max_uses = max_uses
        self._clock = clock
        # Keyed by the 16 raw bytes of the key id, as ciphertexts carry it (no uuid per lookup).
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._current: dict[KeyScope, bytes] = {}  # the key each scope encrypts with
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"DataKeyCache(entries={len(self)}, max_entries={self.max_entries}, "
            f"max_age_seconds={self.max_age_seconds}, max_uses={self.max_uses})"
        )

    def for_encryption(self, scope: KeyScope) -> CachedKey | None:
        """The scope's cached current key, counting one use; ``None`` on a miss, including
        when the key reached its age or use limit (it is evicted then)."""
        with self._lock:
            raw_id = self._current.get(scope)
            entry = None if raw_id is None else self._live(raw_id)
            if entry is None:
                return None
            if entry.uses >= self.max_uses:
                self._evict(entry.key.key_id.bytes)
                return None
            entry.uses += 1
            return entry.key

    def for_decryption(self, raw_key_id: bytes) -> CachedKey | None:
        """The cached key whose id has these 16 bytes (decryptions are not counted as uses)."""
        with self._lock:
            entry = self._live(raw_key_id)
            return None if entry is None else entry.key

    def insert(self, scope: KeyScope, key_id: UUID, key: bytearray, *, for_encryption: bool) -> CachedKey:
        """Cache a freshly unwrapped key; ``key`` is zeroed before this returns.

        ``for_encryption`` makes it the scope's current key and counts one use. If another
        thread cached the same key meanwhile, that entry is kept.
        """
        try:
            with self._lock:
                raw_id = key_id.bytes
                entry = self._live(raw_id)
                if entry is None or entry.key.scope != scope:
                    if entry is not None:
                        self._evict(raw_id)
                    entry = _Entry(CachedKey(key_id, scope, cipher_for(key)), self._clock())
                    self._entries[raw_id] = entry
                if for_encryption:
                    self._current[scope] = raw_id
                    entry.uses += 1
                while len(self._entries) > self.max_entries:
                    self._evict(next(iter(self._entries)))
                return entry.key
        finally:
            zero(key)

    def evict_scope(self, scope: KeyScope) -> None:
        """Drop every key of ``scope`` (after its keys were destroyed)."""
        with self._lock:
            for raw_id in [k for k, e in self._entries.items() if e.key.scope == scope]:
                self._evict(raw_id)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._current.clear()

    # Helpers below run under self._lock.

    def _live(self, raw_id: bytes) -> _Entry | None:
        entry = self._entries.get(raw_id)
        if entry is None:
            return None
        if self._clock() - entry.created >= self.max_age_seconds:
            self._evict(raw_id)
            return None
        self._entries.move_to_end(raw_id)
        return entry

    def _evict(self, raw_id: bytes) -> None:
        entry = self._entries.pop(raw_id)
        if self._current.get(entry.key.scope) == raw_id:
            del self._current[entry.key.scope]
