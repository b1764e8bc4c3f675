"""The e-mails a data subject receives about their request: plain text, ids and counts, no data of theirs
(an export is reached through its link only)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def verification(request_id: UUID, code: str, expires_at: datetime) -> tuple[str, str]:
    subject = "Confirm your data request"
    body = (
        "We received a request about the personal data we hold about you.\n\n"
        f"To confirm that you made it, give this code: {code}\n"
        f"It is valid until {_when(expires_at)}. If you did not make this request, ignore this message:\n"
        "nothing happens without the code.\n\n"
        f"Request reference: {request_id}\n"
    )
    return subject, body


def export_ready(request_id: UUID, links: Mapping[str, str], expires_at: datetime) -> tuple[str, str]:
    subject = "Your data is ready to download"
    lines = "\n".join(f"- {fmt.upper()}: {url}" for fmt, url in sorted(links.items()))
    body = (
        "The copy of your personal data you asked for is ready. Download it here:\n\n"
        f"{lines}\n\n"
        f"The links work until {_when(expires_at)}. Each file holds a manifest with a SHA-256 checksum.\n\n"
        f"Request reference: {request_id}\n"
    )
    return subject, body


def erased(request_id: UUID, receipt: Mapping[str, Any]) -> tuple[str, str]:
    subject = "Your personal data was erased"
    body = (
        "As you asked, we erased the personal data we held about you.\n\n"
        f"Records erased or cleared: {receipt.get('rows_total', 0)}. Encryption keys destroyed: "
        f"{len(receipt.get('shredded_key_ids') or receipt.get('keys_shredded') or [])}.\n"
        "Records we must keep by law (billing figures without your identity) are listed in our receipt.\n\n"
        f"Request reference: {request_id}\n"
    )
    return subject, body


def rectified(request_id: UUID) -> tuple[str, str]:
    subject = "Your personal data was corrected"
    body = (
        "As you asked, we corrected the personal data we hold about you. This message goes to the address\n"
        "we now hold for you.\n\n"
        f"Request reference: {request_id}\n"
    )
    return subject, body


def restricted(request_id: UUID) -> tuple[str, str]:
    subject = "Processing of your personal data is restricted"
    body = (
        "As you asked, we restricted the processing of your personal data: from now on we keep only what\n"
        "billing requires, and nothing of the content of your requests, until the restriction is lifted.\n"
        "We will tell you before it is.\n\n"
        f"Request reference: {request_id}\n"
    )
    return subject, body
