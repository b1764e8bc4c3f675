"""FieldEncryptor over KmsDataKeys (fake KMS client), the in-memory key store and the cache."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, cast

import pytest

from compliance.crypto import (
    DataKeyCache,
    DecryptionError,
    EncryptionContext,
    FieldEncryptor,
    InMemoryWrappedKeyStore,
    KeyScope,
    KeyServiceUnavailableError,
    KeyShreddedError,
    KmsDataKeys,
)
from compliance.crypto.data_keys import StoredDataKey, kms_encryption_context
from compliance.errors import DomainError
from tests.unit.crypto.fakes import FakeClock, FakeKms, client_error, connection_error

ORG = uuid.UUID("6f1c0a52-0d0e-4d7b-9a43-1c1f5d3f0001")
ALICE = uuid.UUID("1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b")
BOB = uuid.UUID("2f3e4d5c-6b7a-4899-8b1c-2d3e4f5a6b7c")
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/test"


def prompt(subject: uuid.UUID | None = ALICE, org: uuid.UUID = ORG) -> EncryptionContext:
    return EncryptionContext(org, "usage_records", "prompt_text", subject)


class Setup:
    def __init__(self, cache: DataKeyCache | None = None) -> None:
        self.kms = FakeKms()
        self.store = InMemoryWrappedKeyStore()
        self.cache = cache if cache is not None else DataKeyCache()  # an empty cache is falsy
        self.provider = KmsDataKeys(cast(Any, self.kms), KMS_KEY)
        self.encryptor = FieldEncryptor(self.provider, self.store, self.cache)

    def other_process(self, cache: DataKeyCache | None = None) -> FieldEncryptor:
        """Another Lambda: same store and KMS, its own cache."""
        return FieldEncryptor(self.provider, self.store, cache if cache is not None else DataKeyCache())


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_a_value_round_trips(setup: Setup) -> None:
    # Given a value with non-ASCII text
    value = "Mon email: jöhn.doe@example.com ☎ +33 6 12 34 56 78"

    # When it is encrypted, Then the text form hides it and decrypts back, also in another process
    text = setup.encryptor.encrypt(value, prompt())
    assert text.startswith("enc:v1:")
    assert "example" not in text
    assert setup.encryptor.decrypt(text, prompt()) == value
    assert setup.other_process().decrypt(text, prompt()) == value


def test_one_data_key_per_subject_and_one_per_org(setup: Setup) -> None:
    # When values of two subjects and an org-level secret are encrypted, several each
    for _ in range(3):
        for subject in (ALICE, BOB, None):
            setup.encryptor.encrypt("v", prompt(subject))

    # Then three data keys exist: (org, alice), (org, bob), (org, -)
    assert setup.store.key_count() == 3
    assert setup.kms.calls["GenerateDataKey"] == 3
    # And KMS bound each wrapped key to its org and subject
    alice_key = setup.store.current(KeyScope(ORG, ALICE))
    assert alice_key is not None
    assert kms_encryption_context(KeyScope(ORG, ALICE), alice_key.key_id)["subject_id"] == str(ALICE)
    assert "subject_id" not in kms_encryption_context(KeyScope(ORG), alice_key.key_id)


def test_kms_calls_grow_with_distinct_keys_not_fields(setup: Setup) -> None:
    # Given 10 subjects with 100 fields each
    subjects = [uuid.uuid4() for _ in range(10)]
    texts = [(s, setup.encryptor.encrypt(f"value {i}", prompt(s))) for s in subjects for i in range(100)]

    # Then encrypting 1,000 fields took one GenerateDataKey per subject and no Decrypt
    assert setup.kms.calls == {"GenerateDataKey": 10}

    # When another process decrypts all 1,000, Then it makes one Decrypt per subject
    reader = setup.other_process()
    setup.kms.calls.clear()
    for subject, text in texts:
        reader.decrypt(text, prompt(subject))
    assert setup.kms.calls == {"Decrypt": 10}


def test_the_cache_limits_bound_key_reuse() -> None:
    # Given a cache allowing 10 encryptions per key and 60 s of age
    clock = FakeClock()
    setup = Setup(DataKeyCache(max_uses=10, max_age_seconds=60, clock=clock))

    # When 25 values of one subject are encrypted
    texts = [setup.encryptor.encrypt("v", prompt()) for _ in range(25)]

    # Then the key was generated once and unwrapped again after each 10 uses (same data key)
    assert setup.kms.calls == {"GenerateDataKey": 1, "Decrypt": 2}
    assert len({setup.encryptor.decrypt(t, prompt()) for t in texts}) == 1
    # When the age limit passes, Then the next decryption asks KMS again
    setup.kms.calls.clear()
    clock.now += 60
    setup.encryptor.decrypt(texts[0], prompt())
    assert setup.kms.calls == {"Decrypt": 1}


@pytest.mark.parametrize(
    "other",
    [
        prompt(BOB),
        prompt(None),
        prompt(org=uuid.uuid4()),
        EncryptionContext(ORG, "usage_records", "completion_text", ALICE),
        EncryptionContext(ORG, "subjects", "prompt_text", ALICE),
    ],
    ids=["other-subject", "org-level", "other-org", "other-column", "other-table"],
)
def test_a_value_moved_to_another_context_fails(setup: Setup, other: EncryptionContext) -> None:
    # Given Alice's prompt, and keys existing for every other scope too
    text = setup.encryptor.encrypt("secret", prompt(ALICE))
    setup.encryptor.encrypt("x", other)

    # When it is read as another row's value, Then it fails, from a warm or a cold cache
    with pytest.raises(DecryptionError):
        setup.encryptor.decrypt(text, other)
    with pytest.raises(DecryptionError):
        setup.other_process().decrypt(text, other)


def test_every_byte_flip_of_a_stored_value_fails(setup: Setup) -> None:
    # Given a stored ciphertext (bytes form), decrypting through the facade
    ciphertext = setup.encryptor.encrypt_bytes(b"secret", prompt())
    for position in range(len(ciphertext)):
        mutated = bytearray(ciphertext)
        mutated[position] ^= 0x01
        # Then every single-bit change raises a typed error and never returns a value
        with pytest.raises(DomainError):
            setup.encryptor.decrypt_bytes(bytes(mutated), prompt())


def test_truncated_text_fails(setup: Setup) -> None:
    text = setup.encryptor.encrypt("secret", prompt())
    for length in range(len(text)):
        with pytest.raises(DomainError):
            setup.encryptor.decrypt(text[:length], prompt())


def test_a_shredded_subject_cannot_be_read_even_from_a_copy(setup: Setup) -> None:
    # Given Alice's and Bob's values, and a copy of Alice's taken before the shred (a backup)
    alice = setup.encryptor.encrypt("alice's prompt", prompt(ALICE))
    bob = setup.encryptor.encrypt("bob's prompt", prompt(BOB))
    backup = str(alice)
    reader = setup.other_process()
    assert reader.decrypt(backup, prompt(ALICE)) == "alice's prompt"

    # When Alice's keys are destroyed
    setup.encryptor.destroy_keys(KeyScope(ORG, ALICE))

    # Then her values (and the backup) raise KeyShreddedError, here and in a cold process
    for encryptor in (setup.encryptor, setup.other_process()):
        with pytest.raises(KeyShreddedError):
            encryptor.decrypt(backup, prompt(ALICE))
    # And new values for Alice cannot be written under a destroyed scope
    with pytest.raises(KeyShreddedError):
        setup.encryptor.encrypt("new", prompt(ALICE))
    # And Bob is unaffected
    assert setup.encryptor.decrypt(bob, prompt(BOB)) == "bob's prompt"


def test_a_process_with_the_key_cached_stops_reading_after_max_age() -> None:
    # Given a second process that read Alice's value (key cached) before the shred
    clock = FakeClock()
    setup = Setup()
    text = setup.encryptor.encrypt("alice's prompt", prompt())
    warm = setup.other_process(DataKeyCache(max_age_seconds=300, clock=clock))
    assert warm.decrypt(text, prompt()) == "alice's prompt"

    # When Alice is shredded by the first process
    setup.encryptor.destroy_keys(KeyScope(ORG, ALICE))

    # Then the warm process fails at the latest once its cached key is max_age old
    clock.now += 300
    with pytest.raises(KeyShreddedError):
        warm.decrypt(text, prompt())


@pytest.mark.parametrize(
    "failure",
    [
        client_error("ThrottlingException", "GenerateDataKey"),
        client_error("DisabledException", "x"),
        client_error("AccessDeniedException", "x"),
        connection_error(),
    ],
    ids=["throttled", "disabled", "denied", "network"],
)
def test_a_kms_outage_raises_a_503_and_writes_nothing(setup: Setup, failure: Exception) -> None:
    # Given KMS failing
    setup.kms.fail_with = failure

    # When a value is encrypted for a new subject
    with pytest.raises(KeyServiceUnavailableError) as raised:
        setup.encryptor.encrypt("v", prompt())

    # Then the error is typed (503), chained to the botocore error, and no key was stored
    assert raised.value.status == 503
    assert raised.value.__cause__ is failure
    assert setup.store.key_count() == 0
    # And once KMS is back the same call succeeds
    setup.kms.fail_with = None
    assert setup.encryptor.decrypt(setup.encryptor.encrypt("v", prompt()), prompt()) == "v"


def test_a_kms_outage_on_unwrap_is_a_503(setup: Setup) -> None:
    text = setup.encryptor.encrypt("v", prompt())
    setup.kms.fail_with = connection_error()
    with pytest.raises(KeyServiceUnavailableError):
        setup.other_process().decrypt(text, prompt())


def test_a_wrapped_key_kms_refuses_is_a_decryption_error(setup: Setup) -> None:
    # Given Alice's wrapped key swapped into Bob's scope (KMS context names Alice)
    text = setup.encryptor.encrypt("v", prompt(ALICE))
    alice_key = setup.store.current(KeyScope(ORG, ALICE))
    assert alice_key is not None
    setup.store.put(KeyScope(ORG, BOB), StoredDataKey(alice_key.key_id, alice_key.wrapped))

    # Then KMS refuses to unwrap it for Bob, as a typed integrity error (not an outage)
    with pytest.raises(DecryptionError):
        setup.other_process().decrypt(text, prompt(BOB))


def test_a_concurrent_first_writer_wins_and_its_key_is_used(setup: Setup) -> None:
    # Given another process stored a key for Alice between our lookup and our put
    class RacingStore(InMemoryWrappedKeyStore):
        def current(self, scope: KeyScope) -> StoredDataKey | None:
            if scope not in self._current:
                other = setup.provider.new_key(scope)
                super().put(scope, StoredDataKey(other.key_id, other.wrapped))
                return None
            return super().current(scope)

    store = RacingStore()
    encryptor = FieldEncryptor(setup.provider, store)

    # When we encrypt, Then the value is sealed under the winner's key
    text = encryptor.encrypt("v", prompt())
    winner = store.current(KeyScope(ORG, ALICE))
    assert winner is not None
    assert FieldEncryptor(setup.provider, store).decrypt(text, prompt()) == "v"
    assert store.key_count() == 1


def test_no_key_material_in_logs_or_reprs(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    setup.kms.fail_with = None
    text = setup.encryptor.encrypt("v", prompt())
    generated = setup.provider.new_key(KeyScope(ORG, BOB))
    keys = [bytes(generated.plaintext)]
    rendered = " ".join([repr(setup.encryptor), repr(generated), str(generated), caplog.text, text])
    for key in keys:
        assert key.hex() not in rendered
        assert repr(key) not in rendered
        assert repr(bytearray(key)) not in rendered


def test_prepare_creates_missing_keys_in_one_global_order(setup: Setup) -> None:
    # Given a store that records the order in which keys are stored, and BOB's key already cached
    order: list[KeyScope] = []
    put = setup.store.put

    def recording_put(scope: KeyScope, key: StoredDataKey) -> StoredDataKey:
        order.append(scope)
        return put(scope, key)

    setup.store.put = recording_put  # type: ignore[method-assign]
    setup.encryptor.encrypt("x", prompt(BOB))
    order.clear()

    # When keys are prepared for scopes named in record order (subjects first, the org key last)
    scopes = [KeyScope(ORG, BOB), KeyScope(ORG, ALICE), KeyScope(ORG, None), KeyScope(ORG, ALICE)]
    setup.encryptor.prepare(scopes)

    # Then the missing ones were created once each, org key first, then by subject uuid; none twice
    assert order == [KeyScope(ORG, None), KeyScope(ORG, ALICE)]
    kms_calls = setup.kms.total_calls
    setup.encryptor.encrypt("y", prompt(ALICE))
    assert setup.kms.total_calls == kms_calls  # sealing after prepare is served from the cache


def test_threads_share_an_encryptor(setup: Setup) -> None:
    # Given 8 threads encrypting and decrypting through one encryptor (shared cached ciphers)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(500):
                subject = (ALICE, BOB)[i % 2]
                value = f"thread {n} value {i}"
                assert (
                    setup.encryptor.decrypt(setup.encryptor.encrypt(value, prompt(subject)), prompt(subject))
                    == value
                )
        except BaseException as exc:  # reported below: an assert in a thread does not fail the test
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every round trip held and one data key per subject was kept (racing first
    # encryptions may generate more, but only the first stored key of a scope is used)
    assert failures == []
    assert setup.store.key_count() == 2
