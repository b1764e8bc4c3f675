"""Verifying the stored audit trail of the caller's organisation over a ``seq`` range.

The chain of the range is walked with :func:`compliance.audit.chain.verify_chain`, starting from
the stored event just before the range, a page at a time (never the whole log in memory). When
the range reaches the latest checkpoint (``from_seq - 1 <= tree_size <= to_seq``) the checkpoint
is checked too: its signature with the signing key's public key, the Merkle root recomputed over
the first ``tree_size`` leaves, and its ``last_event_hash`` at ``seq = tree_size``. A log that ends
before the latest checkpoint's ``tree_size`` is reported as ``truncated`` when the range is open
(``to_seq`` not given), since newest events were dropped.

The verdict is valid, or names the first bad ``seq`` and the reason (the chain's
:class:`~compliance.audit.chain.FailureReason` values, plus ``checkpoint_signature`` and
``checkpoint_root_mismatch`` here).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from compliance.audit import merkle
from compliance.audit.chain import GENESIS_HASH, ChainVerdict, FailureReason, verify_chain
from compliance.audit.checkpoint import (
    CheckpointSignatureError,
    SignedCheckpoint,
    load_public_key,
    verify_signature,
)
from compliance.db import audit_checkpoints, audit_query
from compliance.db.connection import Database
from compliance.errors import ConfigurationError, DomainError, ValidationFailedError
from compliance.models.audit import VerifiedCheckpoint, VerifyVerdict
from compliance.models.auth import Principal

if TYPE_CHECKING:
    import psycopg
    from mypy_boto3_kms import KMSClient

PAGE_SIZE = 1000
CHECKPOINT_SIGNATURE = "checkpoint_signature"
CHECKPOINT_ROOT_MISMATCH = "checkpoint_root_mismatch"
CHECKPOINT_ORG_MISMATCH = "checkpoint_org_mismatch"
_KEY_SPEC = "ECC_NIST_P256"


class PublicKeyUnavailableError(DomainError):
    status = 503
    title = "Signing key unavailable"


class PublicKeySource(Protocol):
    def public_key_der(self) -> bytes:
        """The checkpoint signing key's DER SubjectPublicKeyInfo."""
        ...


class KmsPublicKeySource:
    """``kms:GetPublicKey`` of the signing key, fetched once per process (the key never changes
    under one key id: rotating means a new key and a new id)."""

    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._client = client
        self._key_id = key_id
        self._der: bytes | None = None
        self._lock = threading.Lock()

    def public_key_der(self) -> bytes:
        with self._lock:
            if self._der is None:
                try:
                    response = self._client.get_public_key(KeyId=self._key_id)
                except Exception as exc:  # botocore errors alike
                    raise PublicKeyUnavailableError("could not read the signing key's public key") from exc
                # CustomerMasterKeySpec: the deprecated name, all that some emulators (moto) return.
                spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec")
                if spec != _KEY_SPEC or response.get("KeyUsage") != "SIGN_VERIFY":
                    raise ConfigurationError("the audit signing key is not an ECC_NIST_P256 SIGN_VERIFY key")
                self._der = response["PublicKey"]
            return self._der


def public_key_pem(keys: PublicKeySource) -> str:
    """The signing key as PEM SubjectPublicKeyInfo (what ``compliance audit verify`` takes)."""
    from cryptography.hazmat.primitives import serialization

    key = load_public_key(keys.public_key_der())
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def verify_range(
    db: Database,
    principal: Principal,
    keys: PublicKeySource,
    *,
    from_seq: int | None = None,
    to_seq: int | None = None,
    page_size: int = PAGE_SIZE,
) -> VerifyVerdict:
    """Verify events ``from_seq..to_seq`` (default: the whole log). 400 for a range outside the log."""
    with db.tenant(principal.org_id) as conn:
        current = audit_query.head(conn)
        last = 0 if current is None else current.seq
        start = from_seq or 1
        end = last if to_seq is None else to_seq
        if to_seq is not None and to_seq > last:
            raise ValidationFailedError(f"to_seq is beyond the last event ({last})")
        if from_seq is not None and from_seq > last:
            raise ValidationFailedError(f"from_seq is beyond the last event ({last})")
        if start > end and last > 0:
            raise ValidationFailedError("from_seq must not exceed to_seq")

        checkpoint = audit_checkpoints.latest(conn)
        if checkpoint is not None and checkpoint.head.org_id != principal.org_id:
            return _failed(
                start, end, CHECKPOINT_ORG_MISMATCH, "checkpoint of another organisation", checkpoint
            )
        size = None if checkpoint is None else checkpoint.head.tree_size
        if checkpoint is not None and size is not None and to_seq is None and size > last:
            return VerifyVerdict(
                valid=False,
                from_seq=start,
                to_seq=end,
                checked=0,
                first_bad_seq=last + 1,
                reason=FailureReason.TRUNCATED.value,
                detail=f"the log ends at seq {last}, the latest checkpoint covers {size}",
                checkpoint=_summary(checkpoint, signature_valid=None, root_matches=None),
            )
        reaches = checkpoint is not None and size is not None and start - 1 <= size <= end
        anchor: tuple[int, str] | None = None
        summary: VerifiedCheckpoint | None = None
        if reaches and checkpoint is not None:
            if not _signature_valid(checkpoint, keys):
                return _failed(
                    start, end, CHECKPOINT_SIGNATURE, "the checkpoint signature does not verify", checkpoint
                )
            anchor = (checkpoint.head.tree_size, checkpoint.head.last_event_hash)
            summary = _summary(checkpoint, signature_valid=True, root_matches=None)

        verdict = _verify_chain(conn, principal, start, end, anchor, page_size)
        if verdict.valid and reaches and checkpoint is not None:
            # The chain reached the checkpoint's last hash; the root is the second, independent check.
            root = merkle.root_from_leaf_hashes(
                audit_query.event_leaf_hashes(conn, checkpoint.head.tree_size)
            )
            matches = merkle.to_hex(root) == checkpoint.head.root_hash
            summary = _summary(checkpoint, signature_valid=True, root_matches=matches)
            if not matches:
                verdict = ChainVerdict(
                    False,
                    verdict.checked,
                    verdict.head,
                    checkpoint.head.tree_size,
                    None,
                    None,
                    "the Merkle root of the stored events differs from the signed checkpoint",
                )
                return _verdict(start, end, verdict, summary, reason=CHECKPOINT_ROOT_MISMATCH)
    return _verdict(start, end, verdict, summary)


def _verify_chain(
    conn: psycopg.Connection[Any],
    principal: Principal,
    start: int,
    end: int,
    anchor: tuple[int, str] | None,
    page_size: int,
) -> ChainVerdict:
    if end < start:  # empty log
        return ChainVerdict(True, 0, None)
    prev_hash = GENESIS_HASH if start == 1 else audit_query.event_hash_at(conn, start - 1)
    if prev_hash is None:  # the event before the range is missing: the log has a gap there
        return ChainVerdict(
            False, 0, None, start - 1, None, FailureReason.SEQ_GAP, "the event before the range is missing"
        )
    verdict = verify_chain(
        audit_query.read_range(conn, from_seq=start, to_seq=end, page_size=page_size),
        start_seq=start,
        start_prev_hash=prev_hash,
        org_id=principal.org_id,
        checkpoint=anchor,
    )
    if verdict.valid and verdict.checked < end - start + 1:
        # The stored chain stops early (e.g. missing tail events while the head row says more).
        last = start + verdict.checked - 1
        return ChainVerdict(
            False,
            verdict.checked,
            verdict.head,
            last + 1,
            None,
            FailureReason.TRUNCATED,
            f"the log ends at seq {last}",
        )
    return verdict


def _verdict(
    start: int,
    end: int,
    verdict: ChainVerdict,
    summary: VerifiedCheckpoint | None,
    *,
    reason: str | None = None,
) -> VerifyVerdict:
    return VerifyVerdict(
        valid=verdict.valid,
        from_seq=start,
        to_seq=end,
        checked=verdict.checked,
        first_bad_seq=verdict.first_bad_seq,
        reason=reason or (None if verdict.reason is None else verdict.reason.value),
        detail=verdict.detail,
        checkpoint=summary,
    )


def _signature_valid(checkpoint: SignedCheckpoint, keys: PublicKeySource) -> bool:
    try:
        verify_signature(checkpoint, load_public_key(keys.public_key_der()))
    except CheckpointSignatureError:
        return False
    except ValueError as exc:  # the configured key is not an EC P-256 key
        raise ConfigurationError("the audit signing key is not an EC P-256 public key") from exc
    return True


def _summary(
    checkpoint: SignedCheckpoint, *, signature_valid: bool | None, root_matches: bool | None
) -> VerifiedCheckpoint:
    return VerifiedCheckpoint(
        number=checkpoint.head.number,
        tree_size=checkpoint.head.tree_size,
        signature_valid=signature_valid,
        root_matches=root_matches,
    )


def _failed(start: int, end: int, reason: str, detail: str, checkpoint: SignedCheckpoint) -> VerifyVerdict:
    return VerifyVerdict(
        valid=False,
        from_seq=start,
        to_seq=end,
        checked=0,
        reason=reason,
        detail=detail,
        checkpoint=_summary(
            checkpoint, signature_valid=False if reason == CHECKPOINT_SIGNATURE else None, root_matches=None
        ),
    )
