"""Reading a stored usage record: its encrypted fields decrypted for roles that may read content.

Prompt, completion and client IP are content (catalog: restricted/confidential, crypto-shredded):
``cost_admin`` (investigates what calls cost and why) and ``dpo`` (answers access requests) read
them; ``cost_viewer`` sees the figures only. The ``api.request`` event of the call records who read
which record. Decryption failures never leak into the body: a shredded subject reads "erased", a
value that fails authentication reads "unreadable" (and is logged and counted: it is an integrity
incident, never returned as garbage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compliance.crypto.context import EncryptionContext
from compliance.crypto.envelope import TEXT_PREFIX
from compliance.crypto.errors import DecryptionError, KeyShreddedError, UnsupportedCiphertextError
from compliance.errors import NotFoundError
from compliance.models.auth import Principal, Role
from compliance.models.usage import ContentStatus, UsageRecordDetailOut
from compliance.observability import logger, metrics

if TYPE_CHECKING:
    from compliance.crypto.session import FieldCrypto
    from compliance.db.connection import Database

READ_ROLES = frozenset({Role.COST_ADMIN, Role.COST_VIEWER, Role.DPO})
CONTENT_ROLES = frozenset({Role.COST_ADMIN, Role.DPO})


class UsageRecordNotFoundError(NotFoundError):
    """The organisation has no usage record with this request id."""


def read_usage_record(
    db: Database, crypto: FieldCrypto, principal: Principal, request_id: str
) -> UsageRecordDetailOut:
    # psycopg behind these: imported on first use (the admin handler imports this module at cold start)
    from compliance.db import usage as usage_repo
    from compliance.ingest.protect import USAGE_TABLE
    from compliance.ingest.store import encrypted_columns

    # No audit sink: a read never creates a data key (FieldEncryptor.decrypt only unwraps).
    with crypto.tenant(db, principal.org_id) as (conn, encryptor):
        stored = usage_repo.get_usage_record(conn, request_id)
        if stored is None:
            raise UsageRecordNotFoundError("no usage record with this request id")
        present = {column: value for column, value in stored.stored_values.items() if value is not None}
        status: ContentStatus
        values: dict[str, str | None] = {}
        if not present:
            status = "none"
        elif not CONTENT_ROLES & set(principal.roles):
            status = "withheld"
        else:
            sealed = encrypted_columns(conn).get(USAGE_TABLE, frozenset())
            subject = stored.record.subject_id
            status = "decrypted"
            try:
                for column, value in present.items():
                    if column in sealed and value.startswith(TEXT_PREFIX[:4]):
                        context = EncryptionContext(principal.org_id, USAGE_TABLE, column, subject)
                        values[column] = encryptor.decrypt(value, context)
                    else:  # written before the column was encrypted (until `compliance keys rekey`)
                        values[column] = value
            except KeyShreddedError:
                status, values = "erased", {}
            except (DecryptionError, UnsupportedCiphertextError) as exc:
                logger.warning(
                    "usage record field failed to decrypt",
                    extra={"request_id": request_id, "error": type(exc).__name__},
                )
                metrics.add_metric(name="FieldDecryptionFailed", unit="Count", value=1)
                status, values = "unreadable", {}
    return UsageRecordDetailOut.model_validate(
        {**stored.record.model_dump(), **values, "content_status": status}
    )
