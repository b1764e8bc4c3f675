"""The export step of access and portability requests: collect, write each format, upload, link.

:func:`export_subject` reads the subject's data once, in one read-only tenant transaction, spooling
the rows to temporary files (:func:`~compliance.dsr.collect.spool_subject_data`); the transaction
ends before anything is written or uploaded, so no database connection waits on S3. Each format is
then written once from the spools to a temporary file (in memory while small), uploaded under
:func:`~compliance.aws.exports.export_key` with its size and SHA-256, and linked with a presigned
GET URL. Memory stays bounded whatever the subject holds; ``/tmp`` holds at most the spools plus
one format's file at a time.

A subject nobody holds (``subject_id`` None, or not in the org) still gets an export: empty, with
``no_data_held: true`` in its manifest, so the person receives an answer.

Nothing here logs a value; the outcome holds keys, sizes and checksums only (and the links, which
are credentials for the file: the caller stores them as it stores other secrets of the request).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypedDict
from uuid import UUID

from compliance.aws.exports import MAX_PRESIGN_S, ExportStore, export_key, subject_prefix
from compliance.db.dsr_collect import DEFAULT_BATCH_SIZE
from compliance.dsr.collect import spool_subject_data
from compliance.dsr.export_format import FORMATS, LARGE_EXPORT_BYTES, ExportFormat
from compliance.errors import ValidationFailedError

if TYPE_CHECKING:
    from compliance.catalog.model import Catalog, CatalogEntry
    from compliance.crypto.session import FieldCrypto
    from compliance.db.connection import Database

__all__ = [
    "DEFAULT_LINK_TTL_S",
    "ExportObject",
    "ExportOutcome",
    "delete_subject_exports",
    "export_subject",
]

#: 7 days: the longest a SigV4 link can last (see compliance.aws.exports on signing credentials).
DEFAULT_LINK_TTL_S: Final = MAX_PRESIGN_S
#: A written format stays in memory up to this size, then moves to a file in /tmp.
_OUTPUT_SPOOL_BYTES: Final = 1024 * 1024


class ExportObject(TypedDict):
    format: str
    key: str
    bytes: int
    sha256: str
    large: bool  # above LARGE_EXPORT_BYTES: the request record warns


@dataclass(frozen=True)
class ExportOutcome:
    objects: list[ExportObject]
    rows: int
    no_data_held: bool
    links: dict[str, str]
    expires_at: datetime
    subject_ref: str
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def large(self) -> bool:
        return any(obj["large"] for obj in self.objects)

    def record(self) -> dict[str, Any]:
        """What the request record keeps (no links: they are credentials)."""
        return {
            "objects": [dict(obj) for obj in self.objects],
            "rows": self.rows,
            "no_data_held": self.no_data_held,
            "expires_at": self.expires_at.isoformat(),
            "large": self.large,
        }


def export_subject(
    db: Database,
    crypto: FieldCrypto,
    store: ExportStore,
    org_id: UUID,
    subject_id: UUID | None,
    *,
    request_id: UUID,
    regulation: str,
    formats: Sequence[str],
    now: datetime,
    link_ttl_s: int = DEFAULT_LINK_TTL_S,
    catalog: Catalog | Sequence[CatalogEntry] | None = None,
    spool_dir: str | None = None,
    large_threshold: int = LARGE_EXPORT_BYTES,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ExportOutcome:
    """Export everything held of ``subject_id`` in ``org_id`` in each of ``formats`` (``json``,
    ``csv``, ``xml``; duplicates ignored), upload each file and link it for ``link_ttl_s`` seconds.

    ``now`` is the export's ``generated_at`` and the start of the links' validity (``expires_at``).
    :class:`ValidationFailedError` for an unknown format or a link lifetime SigV4 cannot sign;
    ``ExportStoreUnavailableError`` (503) when S3 fails: retrying is safe (same keys, overwritten).
    """
    chosen = _formats(formats)
    if not 0 < link_ttl_s <= MAX_PRESIGN_S:
        raise ValidationFailedError(f"export links last between 1 s and {MAX_PRESIGN_S} s")
    objects: list[ExportObject] = []
    links: dict[str, str] = {}
    manifests: dict[str, dict[str, Any]] = {}
    with spool_subject_data(
        db,
        crypto,
        org_id,
        subject_id,
        request_id=request_id,
        regulation=regulation,
        generated_at=now,
        catalog=catalog,
        spool_dir=spool_dir,
        batch_size=batch_size,
    ) as spooled:
        for fmt in chosen:
            with tempfile.SpooledTemporaryFile(
                max_size=_OUTPUT_SPOOL_BYTES, mode="w+b", dir=spool_dir
            ) as out:
                result = spooled.write(fmt, out, large_threshold=large_threshold)
                out.seek(0)
                key = export_key(org_id, spooled.subject_ref, request_id, result.extension)
                store.put(
                    key,
                    out,
                    content_type=result.content_type,
                    size=result.bytes_written,
                    sha256_hex=result.sha256,
                )
            objects.append(
                ExportObject(
                    format=fmt,
                    key=key,
                    bytes=result.bytes_written,
                    sha256=result.sha256,
                    large=result.large,
                )
            )
            manifests[fmt] = result.manifest
            links[fmt] = store.presign(key, link_ttl_s)
        rows, subject_ref = spooled.rows_total, spooled.subject_ref
    return ExportOutcome(
        objects=objects,
        rows=rows,
        no_data_held=rows == 0,
        links=links,
        expires_at=now + timedelta(seconds=link_ttl_s),
        subject_ref=subject_ref,
        manifests=manifests,
    )


def delete_subject_exports(store: ExportStore, org_id: UUID, subject_ref: str) -> int:
    """Delete every export of the subject (every version): the erasure's S3 step. Idempotent."""
    return store.delete_prefix(subject_prefix(org_id, subject_ref))


def _formats(formats: Sequence[str]) -> list[ExportFormat]:
    chosen: list[ExportFormat] = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValidationFailedError("unknown export format", allowed=list(FORMATS))
        if fmt not in chosen:
            chosen.append(fmt)
    if not chosen:
        raise ValidationFailedError("at least one export format is needed", allowed=list(FORMATS))
    return chosen
