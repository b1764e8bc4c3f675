"""An in-memory :class:`~compliance.aws.exports.ExportStore` for tests (no AWS)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import IO
from urllib.parse import quote

from compliance.aws.exports import ExportStoreUnavailableError, check_prefix, check_presign


@dataclass
class StoredObject:
    body: bytes
    content_type: str
    sha256: str


@dataclass
class MemoryExportStore:
    """Objects in a dict; ``fail`` makes every call raise the store's 503 error (an outage)."""

    objects: dict[str, StoredObject] = field(default_factory=dict)
    links: list[tuple[str, int]] = field(default_factory=list)
    fail: bool = False

    def put(self, key: str, body: IO[bytes], *, content_type: str, size: int, sha256_hex: str) -> None:
        self._maybe_fail()
        data = body.read()
        # As S3 does with ChecksumSHA256 and Content-Length: a wrong size or digest is refused.
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256_hex:
            raise ExportStoreUnavailableError("S3 could not upload the export (BadDigest)")
        self.objects[key] = StoredObject(data, content_type, sha256_hex)

    def presign(self, key: str, expires_in_s: int) -> str:
        self._maybe_fail()
        check_presign(expires_in_s)
        self.links.append((key, expires_in_s))
        return f"https://exports.example.test/{quote(key)}?X-Amz-Expires={expires_in_s}"

    def delete_prefix(self, prefix: str) -> int:
        self._maybe_fail()
        check_prefix(prefix)
        doomed = [key for key in self.objects if key.startswith(prefix)]
        for key in doomed:
            del self.objects[key]
        return len(doomed)

    def keys(self, prefix: str) -> list[str]:
        self._maybe_fail()
        return sorted(key for key in self.objects if key.startswith(prefix))

    def _maybe_fail(self) -> None:
        if self.fail:
            raise ExportStoreUnavailableError("S3 could not reach the bucket (ServiceUnavailable)")
