"""`compliance bench crypto`: field encryption throughput, KMS calls and size overhead, against
Powertools' data masking (AWS Encryption SDK) on the same values. KMS is moto's in-process
mock (``mock_aws``, no network), so KMS latency is not in the figures.

Workload: 10,000 values of 200 ASCII bytes in one org, 100 subjects x 100 values (one data key
per subject), columns ``usage_records.prompt_text``.

- ``encrypt_per_s`` / ``decrypt_per_s``: fields/s, one thread, keys already cached (steady
  state; goal >= 50,000). ``..._cold`` variants: one pass from an empty cache, KMS calls included.
- ``kms_calls_per_10k``: KMS API calls to encrypt the 10,000 values from an empty cache plus to
  decrypt them from another empty cache (a second process); split in ``kms_calls_detail``.
- ``overhead_bytes``: stored size minus value size, text form (``enc:v1:`` + base64url) as kept in
  ``text`` columns; ``overhead_bytes_binary`` for the bytes form (45 bytes).
- ``esdk``: the same figures for ``aws_lambda_powertools.utilities.data_masking`` with
  ``AWSEncryptionSDKProvider`` (its defaults: caching CMM, committing algorithm with ECDSA
  P-384 signatures), one encryption context per subject, cache capacity 1,000. Optional: the
  ``aws-encryption-sdk`` package is not a project dependency; without it ``esdk`` says why.
"""

from __future__ import annotations

import os
import random
import string
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

VALUE_BYTES = 200
SUBJECTS = 100
VALUES_PER_SUBJECT = 100
FIELDS = SUBJECTS * VALUES_PER_SUBJECT
REGION = "us-east-1"
TABLE, COLUMN = "usage_records", "prompt_text"
_AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's placeholders, no real account
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def bench_crypto() -> dict[str, Any]:
    from moto import mock_aws

    rng = random.Random(4)  # noqa: S311 - benchmark data, not secrets
    org = uuid.UUID(int=rng.getrandbits(128), version=4)
    subjects = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(SUBJECTS)]
    alphabet = string.ascii_letters + string.digits + " .,@"
    rows = [
        (subject, "".join(rng.choices(alphabet, k=VALUE_BYTES)))
        for subject in subjects
        for _ in range(VALUES_PER_SUBJECT)
    ]
    with mock.patch.dict(os.environ, _AWS_TEST_ENV), mock_aws(), _counting_aws_calls() as calls:
        import boto3

        kms = boto3.client("kms", region_name=REGION)
        arn = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
        calls.clear()
        figures = _bench_field_encryptor(kms, arn, org, rows, calls)
        figures["esdk"] = _bench_esdk(arn, org, rows, calls)
    figures["fields"] = FIELDS
    figures["value_bytes"] = VALUE_BYTES
    figures["distinct_data_keys"] = SUBJECTS
    return figures


def _bench_field_encryptor(
    kms: Any, arn: str, org: uuid.UUID, rows: list[tuple[uuid.UUID, str]], calls: Counter[str]
) -> dict[str, Any]:
    from compliance.crypto import (
        DataKeyCache,
        EncryptionContext,
        FieldEncryptor,
        InMemoryWrappedKeyStore,
        KmsDataKeys,
    )
    from compliance.crypto.envelope import OVERHEAD_BYTES

    provider = KmsDataKeys(kms, arn)
    store = InMemoryWrappedKeyStore()
    contexts = {s: EncryptionContext(org, TABLE, COLUMN, s) for s, _ in rows}
    writer = FieldEncryptor(provider, store, DataKeyCache())

    calls.clear()
    cold_encrypt_s, texts = _timed(lambda: [writer.encrypt(v, contexts[s]) for s, v in rows])
    encrypt_calls = _kms(calls)
    encrypt_s, _ = _timed(lambda: [writer.encrypt(v, contexts[s]) for s, v in rows])

    reader = FieldEncryptor(provider, store, DataKeyCache())  # another process: cold cache
    calls.clear()
    encrypted = list(zip(rows, texts, strict=True))
    cold_decrypt_s, values = _timed(lambda: [reader.decrypt(t, contexts[s]) for (s, _), t in encrypted])
    decrypt_calls = _kms(calls)
    decrypt_s, _ = _timed(lambda: [reader.decrypt(t, contexts[s]) for (s, _), t in encrypted])
    if values != [v for _, v in rows]:
        raise AssertionError("round trip failed")
    return {
        "encrypt_per_s": round(FIELDS / encrypt_s),
        "decrypt_per_s": round(FIELDS / decrypt_s),
        "encrypt_per_s_cold": round(FIELDS / cold_encrypt_s),
        "decrypt_per_s_cold": round(FIELDS / cold_decrypt_s),
        "kms_calls_per_10k": round(
            (sum(encrypt_calls.values()) + sum(decrypt_calls.values())) * 10_000 / FIELDS
        ),
        "kms_calls_detail": {"encrypt": dict(encrypt_calls), "decrypt": dict(decrypt_calls)},
        "overhead_bytes": len(texts[0]) - VALUE_BYTES,
        "overhead_bytes_binary": OVERHEAD_BYTES,
    }


def _bench_esdk(
    arn: str, org: uuid.UUID, rows: list[tuple[uuid.UUID, str]], calls: Counter[str]
) -> dict[str, Any]:
    try:
        import aws_encryption_sdk
        from aws_lambda_powertools.utilities.data_masking import DataMasking
        from aws_lambda_powertools.utilities.data_masking.provider.kms.aws_encryption_sdk import (
            AWSEncryptionSDKProvider,
        )
    except ImportError as exc:
        return {
            "available": False,
            "reason": f"{exc.name or exc} is not installed (aws-lambda-powertools[datamasking])",
        }

    def masking() -> Any:
        provider = AWSEncryptionSDKProvider(
            keys=[arn], local_cache_capacity=1_000, max_cache_age_seconds=300.0
        )
        return DataMasking(provider=provider)

    def context(subject: uuid.UUID) -> dict[str, str]:
        return {"org_id": str(org), "subject_id": str(subject), "table": TABLE, "column": COLUMN}

    contexts = {s: context(s) for s, _ in rows}
    writer = masking()
    calls.clear()
    cold_encrypt_s, texts = _timed(lambda: [writer.encrypt(v, **contexts[s]) for s, v in rows])
    encrypt_calls = _kms(calls)
    encrypt_s, _ = _timed(lambda: [writer.encrypt(v, **contexts[s]) for s, v in rows])

    reader = masking()
    calls.clear()
    encrypted = list(zip(rows, texts, strict=True))
    cold_decrypt_s, values = _timed(lambda: [reader.decrypt(t, **contexts[s]) for (s, _), t in encrypted])
    decrypt_calls = _kms(calls)
    decrypt_s, _ = _timed(lambda: [reader.decrypt(t, **contexts[s]) for (s, _), t in encrypted])
    if values != [v for _, v in rows]:
        raise AssertionError("ESDK round trip failed")
    return {
        "available": True,
        "version": aws_encryption_sdk.__version__,
        "encrypt_per_s": round(FIELDS / encrypt_s),
        "decrypt_per_s": round(FIELDS / decrypt_s),
        "encrypt_per_s_cold": round(FIELDS / cold_encrypt_s),
        "decrypt_per_s_cold": round(FIELDS / cold_decrypt_s),
        "kms_calls_per_10k": round(
            (sum(encrypt_calls.values()) + sum(decrypt_calls.values())) * 10_000 / FIELDS
        ),
        "kms_calls_detail": {"encrypt": dict(encrypt_calls), "decrypt": dict(decrypt_calls)},
        "overhead_bytes": round(sum(len(t) for t in texts) / len(texts)) - VALUE_BYTES,
    }


def _timed(work: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def _kms(calls: Counter[str]) -> Counter[str]:
    return Counter({op: n for op, n in calls.items() if op.startswith("kms.")})


@contextmanager
def _counting_aws_calls() -> Iterator[Counter[str]]:
    """Counts every botocore API call (``kms.GenerateDataKey``...), whoever made the client."""
    from botocore.client import BaseClient

    calls: Counter[str] = Counter()
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls[f"{self.meta.service_model.endpoint_prefix}.{operation_name}"] += 1
        return original(self, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", counting):
        yield calls
