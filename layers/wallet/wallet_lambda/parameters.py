"""The path and query parameters of the routes, checked (a 422 otherwise) and documented as what
they are, so that no schema-valid value is refused and no other one accepted."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from wallet_service import FieldError, ValidationFailed
from wallet_service.ledger.limits import ACCOUNT_NAME_PATTERN, DEFAULT_PAGE_SIZE, MAX_CURSOR_LENGTH, MAX_PAGE_SIZE

from .schemas import OBJECT_ID, CurrencyCode

# Path ids, checked (422) and documented as what they are, so no schema-valid id is refused.
WalletId = Annotated[str, Path(pattern=OBJECT_ID, description="the wallet's id: 24 lower-case hex digits")]
ReservationId = Annotated[str, Path(pattern=OBJECT_ID, description="the reservation's id: 24 lower-case hex digits")]
AccountName = Annotated[
    str, Path(pattern=f"^{ACCOUNT_NAME_PATTERN}$", description="a platform account: @ and a name, e.g. @revenue")
]
AccountCurrency = Annotated[CurrencyCode, Query(description="the account's currency, an active ISO 4217 code")]
# A moment as RFC 3339 writes it (a date-time with its offset); a bare number is not one. Optional:
# none means now.
Moment = Annotated[
    str | None,
    Query(
        description="an RFC 3339 time with its offset, e.g. 2026-11-30T12:00:00Z (URL-encode a + offset "
        "as %2B); none: now",
        json_schema_extra={"format": "date-time"},
    ),
]


def moment(field: str, text: str | None) -> datetime | None:
    """An RFC 3339 date-time, as a timezone-aware datetime (None for none); anything else is a 422."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.upper()) if "T" in text.upper() else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        hint = " (a + in a query string arrives as a space: write it %2B)" if " " in text else ""
        raise ValidationFailed([FieldError(field, f"must be an RFC 3339 time with its offset{hint}")])
    return parsed


# A listing's query: `limit` (default DEFAULT_PAGE_SIZE) and the `cursor` its previous page gave.
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)]
DEFAULT_LIMIT = DEFAULT_PAGE_SIZE
