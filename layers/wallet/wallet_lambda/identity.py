"""Who calls: the owner and scopes of the verified token (API Gateway's JWT authorizer checked it)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import problems


@dataclass(frozen=True, slots=True)
class Caller:
    owner_id: str
    scopes: frozenset[str]

    @property
    def admin(self) -> bool:
        return scope("admin") in self.scopes

    def may(self, needed: str) -> bool:
        """Whether the token grants `needed` (read, write, admin); wallet:admin grants every one."""
        return not needed or self.admin or scope(needed) in self.scopes

    @property
    def owner_filter(self) -> str | None:
        """The owner to confine the service's calls to (its `owner_id` argument); None for an
        administrator, who may act on any wallet."""
        return None if self.admin else self.owner_id


def caller_of(event: dict) -> Caller:
    context = event.get("requestContext") or {}
    jwt = (context.get("authorizer") or {}).get("jwt")
    claims = (jwt or {}).get("claims") or {}
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise problems.unauthorized("a valid bearer token is required")
    scopes = set((jwt or {}).get("scopes") or [])
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(str(item) for item in value)
    return Caller(owner_id=subject, scopes=frozenset(scopes))


def scope(name: str) -> str:
    """A scope as the issuer names it: wallet:read, wallet:write or wallet:admin, after SCOPE_PREFIX
    (the template's own Cognito pool sets wallet-api/: a resource server's scopes carry its id)."""
    return f"{os.environ.get('SCOPE_PREFIX', '')}wallet:{name}"
