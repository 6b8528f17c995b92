"""Validated arguments of the operations that read: one wallet or hold (as its owner may see it),
a moment of a wallet's past, a page of a listing, a platform account. Checked all at once before
any database call, as commands.py checks the movements'."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId

from .errors import InvalidCursor
from .limits import MAX_INT64, MAX_PAGE_SIZE
from .models import EntryType, ReservationStatus
from .request import owner_filter
from .validation import Checks, decode_cursor


@dataclass(frozen=True, slots=True)
class AccountName:
    name: str
    currency: str


def account_name(name, currency) -> AccountName:
    checks = Checks()
    command = AccountName(checks.account_name("name", name), checks.currency("currency", currency))
    checks.done()
    return command


@dataclass(frozen=True, slots=True)
class AccountPage:
    account: AccountName
    limit: int
    cursor_scope: str
    position: ObjectId | None


def account_page(name, currency, limit, cursor) -> AccountPage:
    checks = Checks()
    account = AccountName(checks.account_name("name", name), checks.currency("currency", currency))
    checks.integer("limit", limit, low=1, high=MAX_PAGE_SIZE)
    cursor_scope = f"account:{name}:{currency}"
    position = decode_cursor(checks, cursor, cursor_scope)
    if position is not None and not ObjectId.is_valid(position):
        checks.fail("cursor", "is not a cursor returned by this listing")
    checks.done()
    return AccountPage(account, limit, cursor_scope, None if position is None else ObjectId(position))


@dataclass(frozen=True, slots=True)
class One:
    """A wallet or a hold, by id, as its owner (or an administrator) may see it."""

    id: str
    oid: ObjectId
    owner_filter: dict


def one(field: str, value, owner_id) -> One:
    checks = Checks()
    oid = checks.object_id(field, value)
    scope = owner_filter(checks, owner_id)
    checks.done()
    return One(value, oid, scope)


def one_at(wallet_id, at, owner_id) -> tuple[One, datetime]:
    """A wallet and a moment (timezone-aware; a moment still to come answers the balance now)."""
    checks = Checks()
    oid = checks.object_id("walletId", wallet_id)
    scope = owner_filter(checks, owner_id)
    moment = checks.aware_datetime("at", at)
    checks.done()
    return One(wallet_id, oid, scope), moment


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a wallet's listing: the filter, the size and the position the cursor names."""

    wallet: One
    limit: int
    cursor_scope: str
    position: str | None
    kind: EntryType | ReservationStatus | None
    # A cursor this listing did not issue, the only thing wrong: refused once the wallet is known to
    # be the caller's (a wallet the caller cannot see is a 404 first, whatever the cursor).
    refused_cursor: InvalidCursor | None = None

    def refuse_a_bad_cursor(self) -> None:
        """Call once the wallet has been found for the caller."""
        if self.refused_cursor is not None:
            raise self.refused_cursor


def page(listing: str, wallet_id, limit, cursor, owner_id, field: str, kind: object, choices) -> Page:
    """A page of `listing` ("transactions" or "reservations"), filtered by `field` (type or status)."""
    checks = Checks()
    oid = checks.object_id("walletId", wallet_id)
    wanted = checks.choice(field, kind, choices)
    checks.integer("limit", limit, low=1, high=MAX_PAGE_SIZE)
    scope = owner_filter(checks, owner_id)
    cursor_scope = f"{listing}:{wallet_id}:{kind or ''}"
    position = decode_cursor(checks, cursor, cursor_scope)
    if position is not None and not _position_fits(listing, position):
        checks.fail("cursor", "is not a cursor returned by this listing")
    try:
        checks.done()
    except InvalidCursor as refused:
        return Page(One(wallet_id, oid, scope), limit, cursor_scope, None, wanted, refused)
    return Page(One(wallet_id, oid, scope), limit, cursor_scope, position, wanted)


def _position_fits(listing: str, position: str) -> bool:
    if listing == "reservations":
        return ObjectId.is_valid(position)
    # ASCII digits only ("²".isdigit() is true) and within Int64, or int() and Int64() fail later.
    return position.isascii() and position.isdigit() and int(position) <= MAX_INT64
