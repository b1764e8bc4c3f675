"""An in-memory :class:`~compliance.aws.email.EmailSender` for tests (no SES)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SentEmail:
    to: str
    subject: str
    body: str


@dataclass
class MemoryEmailSender:
    """Records every message; ``send`` answers a message id like SES does."""

    sent: list[SentEmail] = field(default_factory=list)

    def send(self, to: str, subject: str, body: str) -> str:
        self.sent.append(SentEmail(to, subject, body))
        return f"message-{len(self.sent)}"
