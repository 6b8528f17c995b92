"""Request: what a caller says about any money movement besides its own fields, the same for every
money method of WalletService, passed once. The use cases receive it checked, as `Common`."""

from __future__ import annotations

from dataclasses import dataclass

from .limits import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_OWNER_ID_LENGTH, MAX_REFERENCE_ID_LENGTH, MAX_REFERENCE_TYPE_LENGTH
from .postings import Details
from .validation import Checks


@dataclass(frozen=True, slots=True)
class Request:
    """`idempotency_key` makes a retry safe: a call with a key already answered gets the same answer
    (its figures, or its refusal), never a second movement. `reference_type`, `reference_id` and
    `metadata` are kept on the movement's entries and events. `owner_id` confines the call to that
    owner's wallets and holds (another owner's is reported as not found); None acts as an
    administrator, on any of them."""

    idempotency_key: str | None = None
    reference_type: str | None = None
    reference_id: str | None = None
    metadata: dict | None = None
    owner_id: str | None = None


ADMINISTRATOR = Request()  # no key, no reference, any owner's wallet


@dataclass(frozen=True, slots=True)
class Common:
    """A Request, checked: what every money-moving command carries besides its own fields."""

    key: str | None
    details: Details
    owner_filter: dict


def common(checks: Checks, request: object) -> Common:
    if not isinstance(request, Request):
        checks.fail("request", "must be a wallet_service.Request")
        request = ADMINISTRATOR
    return Common(
        checks.optional_token("idempotencyKey", request.idempotency_key, max_length=MAX_IDEMPOTENCY_KEY_LENGTH),
        Details(
            checks.optional_token("referenceType", request.reference_type, max_length=MAX_REFERENCE_TYPE_LENGTH),
            checks.optional_token("referenceId", request.reference_id, max_length=MAX_REFERENCE_ID_LENGTH),
            checks.metadata("metadata", request.metadata),
        ),
        owner_filter(checks, request.owner_id),
    )


def owner_filter(checks: Checks, owner_id: object) -> dict:
    if owner_id is None:
        return {}
    return {"ownerId": checks.token("ownerId", owner_id, max_length=MAX_OWNER_ID_LENGTH)}
