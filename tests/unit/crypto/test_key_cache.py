"""DataKeyCache: entry, age and use limits; key bytes zeroed on insert; no key in reprs."""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter

import pytest

from compliance.crypto.context import KeyScope
from compliance.crypto.key_cache import DataKeyCache
from tests.unit.crypto.fakes import FakeClock

SCOPE = KeyScope(uuid.uuid4(), uuid.uuid4())


def fresh_key() -> bytearray:
    return bytearray(os.urandom(32))


def test_a_cached_key_encrypts_like_its_plaintext_and_the_plaintext_is_zeroed() -> None:
    # Given a key inserted in the cache
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    cache = DataKeyCache()
    key_id = uuid.uuid4()
    key = fresh_key()
    original = bytes(key)
    cached = cache.insert(SCOPE, key_id, key, for_encryption=True)

    # Then the caller's plaintext bytes were zeroed, and the cached cipher is that key
    assert key == bytearray(32)
    nonce = os.urandom(12)
    assert AESGCM(original).decrypt(nonce, cached.cipher.encrypt(nonce, b"v", None), None) == b"v"
    assert cache.for_decryption(key_id.bytes) == cached


def test_max_uses_counts_encryptions_and_then_misses() -> None:
    # Given a cache allowing 3 encryptions per key, with a key inserted for encryption (use 1)
    cache = DataKeyCache(max_uses=3)
    key_id = uuid.uuid4()
    cache.insert(SCOPE, key_id, fresh_key(), for_encryption=True)

    # When it is asked for encryption twice more, Then both hit
    for _ in range(2):
        assert cache.for_encryption(SCOPE) is not None
    # And the fourth encryption misses, and the key is evicted (for decryption too)
    assert cache.for_encryption(SCOPE) is None
    assert cache.for_decryption(key_id.bytes) is None
    assert len(cache) == 0


def test_decryptions_do_not_count_as_uses() -> None:
    cache = DataKeyCache(max_uses=1)
    key_id = uuid.uuid4()
    cache.insert(SCOPE, key_id, fresh_key(), for_encryption=False)
    for _ in range(5):
        assert cache.for_decryption(key_id.bytes) is not None


def test_max_age_expires_entries() -> None:
    # Given a key cached at t=1000 with a 60 s maximum age
    clock = FakeClock()
    cache = DataKeyCache(max_age_seconds=60, clock=clock)
    key_id = uuid.uuid4()
    cache.insert(SCOPE, key_id, fresh_key(), for_encryption=True)

    # When 59.9 s have passed, Then it still hits
    clock.now += 59.9
    assert cache.for_decryption(key_id.bytes) is not None
    # When 60 s have passed, Then both lookups miss
    clock.now += 0.1
    assert cache.for_encryption(SCOPE) is None
    assert cache.for_decryption(key_id.bytes) is None


def test_max_entries_evicts_the_least_recently_used() -> None:
    # Given a cache of 2 entries holding keys a and b, with a used last
    cache = DataKeyCache(max_entries=2)
    ids = [uuid.uuid4() for _ in range(3)]
    cache.insert(SCOPE, ids[0], fresh_key(), for_encryption=False)
    cache.insert(SCOPE, ids[1], fresh_key(), for_encryption=False)
    assert cache.for_decryption(ids[0].bytes) is not None

    # When a third key is inserted
    cache.insert(SCOPE, ids[2], fresh_key(), for_encryption=False)

    # Then b (least recently used) was evicted, a and c remain
    assert len(cache) == 2
    assert cache.for_decryption(ids[1].bytes) is None
    assert cache.for_decryption(ids[0].bytes) is not None
    assert cache.for_decryption(ids[2].bytes) is not None


def test_evict_scope_drops_only_that_scope() -> None:
    cache = DataKeyCache()
    other = KeyScope(SCOPE.org_id, uuid.uuid4())
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    cache.insert(SCOPE, mine, fresh_key(), for_encryption=True)
    cache.insert(other, theirs, fresh_key(), for_encryption=True)

    cache.evict_scope(SCOPE)

    assert cache.for_encryption(SCOPE) is None
    assert cache.for_decryption(mine.bytes) is None
    assert cache.for_encryption(other) is not None


def test_a_concurrently_inserted_duplicate_keeps_the_first_entry() -> None:
    cache = DataKeyCache()
    key_id = uuid.uuid4()
    first = cache.insert(SCOPE, key_id, fresh_key(), for_encryption=False)
    duplicate = fresh_key()
    assert cache.insert(SCOPE, key_id, duplicate, for_encryption=False) is first
    assert duplicate == bytearray(32)


def test_keys_are_not_in_reprs() -> None:
    cache = DataKeyCache()
    key = fresh_key()
    original = bytes(key)
    cached = cache.insert(SCOPE, uuid.uuid4(), key, for_encryption=True)
    for text in (repr(cache), repr(cached), str(cached), repr(cache._entries)):
        assert original.hex() not in text
        assert repr(original) not in text


def test_concurrent_use_honours_max_uses() -> None:
    # Given 8 threads encrypting 1,000 times each against a cache of at most 100 uses per key
    cache = DataKeyCache(max_uses=100)
    uses: Counter[uuid.UUID] = Counter()
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(1_000):
            key = cache.for_encryption(SCOPE)
            if key is None:
                key = cache.insert(SCOPE, uuid.uuid4(), fresh_key(), for_encryption=True)
            with lock:
                uses[key.key_id] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then no key served more than 100 encryptions
    assert sum(uses.values()) == 8_000
    assert max(uses.values()) <= 100


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        DataKeyCache(max_uses=0)
