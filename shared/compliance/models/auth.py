"""Principals and API keys."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints


class Role(StrEnum):
    SYSTEM_ADMIN = "system_admin"
    COST_ADMIN = "cost_admin"
    COST_VIEWER = "cost_viewer"
    DPO = "dpo"
    AUDITOR = "auditor"
    INGEST = "ingest"


class Principal(BaseModel):
    """Who is calling: resolved by the authorizer, handed to handlers in the request context."""

    model_config = ConfigDict(frozen=True)

    org_id: UUID
    key_id: UUID
    roles: frozenset[Role]


# The key-management models are built on first use: every API handler imports this module for
# Principal and Role, only the admin function validates keys.
class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    expires_at: AwareDatetime | None = None


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(defer_build=True)
    id: UUID
    name: str
    prefix: str
    roles: list[Role]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """Returned once, at creation: the only time the secret is shown."""

    key: str
