"""Field encryption inside a tenant transaction: one process-wide key cache and KMS provider,
one key store per transaction, and the cache kept honest when the transaction does not commit.

``FieldEncryptor`` caches a data key it creates as soon as the store has it, before the
transaction commits. If the transaction then rolls back (or its commit fails), that key was never
stored: :meth:`FieldCrypto.tenant` evicts it from the cache, so no later value is sealed under a
key nobody can unwrap.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from compliance.crypto.data_keys import DataKeyProvider
from compliance.crypto.fields import FieldEncryptor
from compliance.crypto.key_cache import DataKeyCache
from compliance.db.data_keys import DEFAULT_ACTOR, PgWrappedKeyStore

if TYPE_CHECKING:
    import psycopg

    from compliance.audit.emit import RequestOrigin
    from compliance.audit.sink import AuditSink
    from compliance.config import FieldEncryptionSettings
    from compliance.db.connection import Database


class EncryptingTransaction(NamedTuple):
    conn: psycopg.Connection[Any]
    encryptor: FieldEncryptor


class FieldCrypto:
    """What a process needs for field encryption: the KMS provider, the wrapping key's id and the
    shared cache of unwrapped data keys. Build one per process (``functools.cache``)."""

    def __init__(self, provider: DataKeyProvider, *, kms_key_id: str, cache: DataKeyCache) -> None:
        self.provider = provider
        self.kms_key_id = kms_key_id
        self.cache = cache

    def __repr__(self) -> str:
        return f"FieldCrypto(kms_key_id={self.kms_key_id!r}, cache={self.cache!r})"

    @contextmanager
    def tenant(
        self,
        db: Database,
        org_id: UUID,
        *,
        sink: AuditSink | None = None,
        actor: str = DEFAULT_ACTOR,
        origin: RequestOrigin | None = None,
        snapshot: bool = False,
    ) -> Iterator[EncryptingTransaction]:
        """``db.tenant(org_id)`` with a :class:`FieldEncryptor` whose new keys are stored (and,
        with a ``sink``, audited as ``key.created``) in the same transaction. ``snapshot``: a
        read-only transaction on one snapshot (``Database.tenant``); it can read keys, not create them."""
        store: PgWrappedKeyStore | None = None
        try:
            with db.tenant(org_id, snapshot=snapshot) as conn:
                store = PgWrappedKeyStore(
                    conn, kms_key_id=self.kms_key_id, sink=sink, actor=actor, origin=origin
                )
                yield EncryptingTransaction(conn, FieldEncryptor(self.provider, store, self.cache))
        except BaseException:
            if store is not None:
                for scope, _key_id in store.created:
                    self.cache.evict_scope(scope)
            raise


def kms_field_crypto(kms_key_id: str, *, max_age_s: float, max_entries: int) -> FieldCrypto:
    """The production wiring: KMS through boto3 (imported here, on first use)."""
    from compliance.aws.clients import client
    from compliance.crypto.data_keys import KmsDataKeys

    return FieldCrypto(
        KmsDataKeys(client("kms"), kms_key_id),
        kms_key_id=kms_key_id,
        cache=DataKeyCache(max_entries=max_entries, max_age_seconds=max_age_s),
    )


def field_crypto_from_settings(settings: FieldEncryptionSettings) -> FieldCrypto:
    """:func:`kms_field_crypto` as a function's settings configure it."""
    return kms_field_crypto(
        settings.field_key_id,
        max_age_s=settings.field_key_cache_max_age_s,
        max_entries=settings.field_key_cache_max_entries,
    )
