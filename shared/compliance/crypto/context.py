"""Where an encrypted value lives (its encryption context) and which data key scope it uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple
from uuid import UUID

MAX_NAME_BYTES = 63  # PostgreSQL identifiers: table and column names are never longer


class KeyScope(NamedTuple):
    """One data key per (org, subject) for personal data; per org (``subject_id=None``) for
    org-level secrets. Subjects are named by their pseudonymous uuid, never an external id.
    (A NamedTuple: built and compared on every field operation, in C.)"""

    org_id: UUID
    subject_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class EncryptionContext:
    """The row and column a value belongs to, bound into its ciphertext as associated data."""

    org_id: UUID
    table: str
    column: str
    subject_id: UUID | None = None

    def __post_init__(self) -> None:
        for name in (self.table, self.column):
            if not name or len(name.encode("utf-8")) > MAX_NAME_BYTES:
                raise ValueError(f"table and column names take 1 to {MAX_NAME_BYTES} bytes")

    @property
    def scope(self) -> KeyScope:
        return KeyScope(self.org_id, self.subject_id)

    def encode(self) -> bytes:
        """The canonical, unambiguous byte form (docs/crypto-format.md, "Associated data").

        Fixed-size uuids, length-prefixed names and a presence flag for the subject: no two
        different contexts share an encoding, which a plain join of strings would not give.
        """
        table = self.table.encode("utf-8")
        column = self.column.encode("utf-8")
        subject = b"\x00" if self.subject_id is None else b"\x01" + self.subject_id.bytes
        return b"%b%c%b%c%b%b" % (self.org_id.bytes, len(table), table, len(column), column, subject)
