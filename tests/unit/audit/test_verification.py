"""Verification of a stored range against the chain and the latest signed checkpoint."""

from __future__ import annotations

from typing import Any

import pytest

from compliance.audit import verification
from compliance.audit.checkpoint import LocalSigner
from compliance.audit.events import StoredAuditEvent
from compliance.errors import ConfigurationError, ValidationFailedError
from tests.unit.audit.audit_log_fakes import (
    FakeLog,
    fake_db,
    make_events,
    principal,
    sign_checkpoints,
)

SIGNER = LocalSigner.generate()
EVENTS = make_events(20)
CHECKPOINTS = sign_checkpoints(EVENTS, [4, 16], SIGNER)


class Keys:
    def __init__(self, signer: LocalSigner = SIGNER) -> None:
        from cryptography.hazmat.primitives import serialization

        self.der = signer.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_key_der(self) -> bytes:
        return self.der


def verify(**kwargs: Any) -> Any:
    return verification.verify_range(fake_db(), principal(), Keys(), page_size=3, **kwargs)


def modified(events: list[StoredAuditEvent], seq: int, **changes: Any) -> list[StoredAuditEvent]:
    out = list(events)
    out[seq - 1] = StoredAuditEvent.model_validate({**events[seq - 1].model_dump(), **changes})
    return out


def test_whole_log_is_valid_and_checked_against_the_latest_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeLog(EVENTS, CHECKPOINTS).install(monkeypatch)
    verdict = verify()
    assert verdict.valid and verdict.checked == 20 and (verdict.from_seq, verdict.to_seq) == (1, 20)
    assert verdict.checkpoint is not None and verdict.checkpoint.number == 2
    assert verdict.checkpoint.signature_valid and verdict.checkpoint.root_matches


def test_a_range_before_the_checkpoint_skips_it(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLog(EVENTS, CHECKPOINTS).install(monkeypatch)
    verdict = verify(from_seq=3, to_seq=9)
    assert verdict.valid and verdict.checked == 7 and verdict.checkpoint is None


@pytest.mark.parametrize("seq", [1, 7, 16, 20])
def test_modified_event_names_its_seq(monkeypatch: pytest.MonkeyPatch, seq: int) -> None:
    # Given event `seq` whose actor was changed in the table
    FakeLog(modified(EVENTS, seq, actor="api_key:intruder"), CHECKPOINTS).install(monkeypatch)
    # When the whole log, and a range starting at it, are verified (roots skipped for the range)
    whole = verify()
    # Then the first bad seq is named
    assert not whole.valid and whole.reason == "hash_mismatch" and whole.first_bad_seq == seq
    ranged = verify(from_seq=seq, to_seq=seq)
    assert not ranged.valid and ranged.first_bad_seq == seq and ranged.reason == "hash_mismatch"


def test_rewritten_chain_is_caught_by_the_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a wholesale rewrite after seq 2 with every hash recomputed (the chain alone is valid)
    from compliance.audit.chain import link

    rewritten = EVENTS[:2] + link(
        [e.model_copy(update={"actor": "api_key:intruder"}) for e in EVENTS[2:]], (2, EVENTS[1].event_hash)
    )
    FakeLog(rewritten, CHECKPOINTS).install(monkeypatch)
    # Then verification fails at the checkpoint's seq
    verdict = verify()
    assert not verdict.valid and verdict.reason == "checkpoint_mismatch" and verdict.first_bad_seq == 16


def test_stored_hashes_that_disagree_with_the_signed_root_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a checkpoint whose signed root is not that of the stored events (re-signed over a forgery)
    forged = sign_checkpoints(make_events(16), [4, 16], SIGNER)[1]
    head = CHECKPOINTS[1].head.model_copy(update={"root_hash": forged.head.root_hash})
    from compliance.audit.checkpoint import sign_head

    FakeLog(EVENTS, [CHECKPOINTS[0], sign_head(head, SIGNER)]).install(monkeypatch)
    verdict = verify()
    assert not verdict.valid and verdict.reason == "checkpoint_root_mismatch" and verdict.first_bad_seq == 16
    assert verdict.checkpoint is not None and verdict.checkpoint.root_matches is False


def test_dropped_newest_events_are_truncation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the log cut back to seq 10 (head row too) while checkpoint 2 covers 16
    FakeLog(EVENTS[:10], CHECKPOINTS).install(monkeypatch)
    verdict = verify()
    assert not verdict.valid and verdict.reason == "truncated" and verdict.first_bad_seq == 11


def test_missing_tail_rows_behind_the_head_are_truncation(monkeypatch: pytest.MonkeyPatch) -> None:
    log = FakeLog(EVENTS[:18], CHECKPOINTS).install(monkeypatch)
    log.head_seq = 20
    verdict = verify()
    assert not verdict.valid and verdict.reason == "truncated" and verdict.first_bad_seq == 19


def test_deleted_event_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLog(EVENTS[:17] + EVENTS[18:], CHECKPOINTS).install(monkeypatch)
    verdict = verify(from_seq=17)
    assert not verdict.valid and verdict.first_bad_seq == 18 and verdict.reason == "seq_gap"


def test_signature_by_another_key_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLog(EVENTS, CHECKPOINTS).install(monkeypatch)
    verdict = verification.verify_range(fake_db(), principal(), Keys(LocalSigner.generate()))
    assert not verdict.valid and verdict.reason == "checkpoint_signature"
    assert verdict.checkpoint is not None and verdict.checkpoint.signature_valid is False


@pytest.mark.parametrize(("from_seq", "to_seq"), [(5, 4), (21, None), (None, 21), (30, 40)])
def test_bad_ranges_are_400(
    monkeypatch: pytest.MonkeyPatch, from_seq: int | None, to_seq: int | None
) -> None:
    FakeLog(EVENTS, CHECKPOINTS).install(monkeypatch)
    with pytest.raises(ValidationFailedError):
        verify(from_seq=from_seq, to_seq=to_seq)


def test_empty_log_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeLog([], []).install(monkeypatch)
    verdict = verify()
    assert verdict.valid and verdict.checked == 0 and verdict.to_seq == 0


class FakeKms:
    def __init__(self, spec: str = "ECC_NIST_P256") -> None:
        self.calls = 0
        self.spec = spec

    def get_public_key(self, KeyId: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.calls += 1
        return {"PublicKey": Keys().der, "KeySpec": self.spec, "KeyUsage": "SIGN_VERIFY"}


def test_kms_public_key_is_fetched_once_and_served_as_pem() -> None:
    kms = FakeKms()
    keys = verification.KmsPublicKeySource(kms, "arn:aws:kms:us-east-1:0:key/k")  # type: ignore[arg-type]
    pem = verification.public_key_pem(keys)
    verification.public_key_pem(keys)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and kms.calls == 1


def test_kms_key_of_another_spec_is_a_configuration_error() -> None:
    keys = verification.KmsPublicKeySource(FakeKms("RSA_2048"), "k")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        keys.public_key_der()
