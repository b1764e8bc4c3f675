"""Organisation settings: the PII handling of ingested text (read by every processor slice).

A change publishes ``org.settings_changed`` (before and after) inside the transaction that makes
it: if the audit trail refuses the event, nothing changes.
"""

from __future__ import annotations

from datetime import datetime

from compliance.audit import emit
from compliance.audit.emit import RequestOrigin
from compliance.audit.sink import AuditSink
from compliance.db import organisations as org_repo
from compliance.db.connection import Database, data_access_error
from compliance.errors import NotFoundError, ValidationFailedError
from compliance.models.auth import Principal
from compliance.models.settings import PII_SETTINGS_KEY, PiiSettings


def read_pii_settings(db: Database, principal: Principal) -> PiiSettings:
    """The org's PII settings (the defaults when it never set them)."""
    import psycopg

    with db.tenant(principal.org_id) as conn:
        try:
            stored = org_repo.get_setting(conn, principal.org_id, PII_SETTINGS_KEY)
        except psycopg.Error as exc:
            raise data_access_error(exc) from exc
    return PiiSettings.model_validate(stored or {})


def update_pii_settings(
    db: Database,
    principal: Principal,
    settings: PiiSettings,
    *,
    now: datetime,
    sink: AuditSink,
    origin: RequestOrigin,
) -> PiiSettings:
    """Replace the org's PII settings; audited with the values before and after."""
    import psycopg

    from compliance.pii.detectors import SUPPORTED_REGIONS  # phonenumbers: only this call needs it

    unknown = sorted(set(settings.regions) - SUPPORTED_REGIONS)
    if unknown:
        raise ValidationFailedError(f"regions not supported for phone numbers: {', '.join(unknown)}")
    after = settings.model_dump(mode="json")
    with db.tenant(principal.org_id) as conn:
        try:
            before = org_repo.set_setting(conn, principal.org_id, PII_SETTINGS_KEY, after)
        except LookupError as exc:
            raise NotFoundError("organisation not found") from exc
        except psycopg.Error as exc:
            raise data_access_error(exc) from exc
        previous = PiiSettings.model_validate(before or {}).model_dump(mode="json")
        event = emit.org_settings_changed(
            principal=principal,
            setting=PII_SETTINGS_KEY,
            before=previous,
            after=after,
            occurred_at=now,
            origin=origin,
        )
        emit.publish(sink, [event])
    return settings
