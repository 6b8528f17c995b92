"""Validated commands of holds: place one, raise it, capture or release it, refund what it captured.
Checked as commands.py checks the other movements: every bad field at once, before any database call."""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId

from .limits import MAX_REASON_LENGTH, MAX_SPLITS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from .models import OnExpiry
from .request import Common, Request, common
from .validation import Checks, is_int


@dataclass(frozen=True, slots=True)
class Place:
    """A wallet (`wallet_oid`) or a platform account (`account`)."""

    wallet_id: str | None
    wallet_oid: ObjectId | None
    account: str | None

    def place_document(self) -> dict:
        return {"walletId": self.wallet_oid} if self.wallet_oid is not None else {"account": self.account}


@dataclass(frozen=True, slots=True)
class Destination(Place):
    """Where part of a capture goes (or a refund comes back from), and how much."""

    amount: int

    def as_document(self) -> dict:
        return {**self.place_document(), "amount": self.amount}

    def as_parameter(self) -> dict:
        return {"walletId": self.wallet_id, "account": self.account, "amount": self.amount}


@dataclass(frozen=True, slots=True)
class Hold:
    """A hold to place: an amount on one wallet for `ttl_seconds`, and what its expiry does."""

    wallet_id: str
    wallet_oid: ObjectId
    amount: int
    ttl_seconds: int
    on_expiry: OnExpiry
    capture_to: Place | None  # onExpiry capture only; None: @revenue
    common: Common


def hold(wallet_id, amount, ttl_seconds, on_expiry, capture_to, request: Request) -> Hold:
    checks = Checks()
    wallet_oid = checks.object_id("walletId", wallet_id)
    checks.amount("amount", amount)
    checks.integer("ttlSeconds", ttl_seconds, low=MIN_TTL_SECONDS, high=MAX_TTL_SECONDS)
    if on_expiry not in tuple(OnExpiry):
        checks.fail("onExpiry", f"must be one of {', '.join(OnExpiry)}")
    place = None
    if capture_to is not None:
        if on_expiry != OnExpiry.CAPTURE:
            checks.fail("captureTo", "is only for a hold with onExpiry capture")
        place = _place(checks, "captureTo", capture_to, set())
    checked = common(checks, request)
    checks.done()
    return Hold(wallet_id, wallet_oid, amount, ttl_seconds, OnExpiry(on_expiry), place, checked)


@dataclass(frozen=True, slots=True)
class Increment:
    """More money on an open hold, and perhaps a later expiry (`ttl_seconds` from now)."""

    reservation_id: str
    reservation_oid: ObjectId
    amount: int
    ttl_seconds: int | None
    common: Common


def increment(reservation_id, amount, ttl_seconds, request: Request) -> Increment:
    checks = Checks()
    reservation_oid = checks.object_id("reservationId", reservation_id)
    checks.amount("amount", amount)
    if ttl_seconds is not None:
        checks.integer("ttlSeconds", ttl_seconds, low=MIN_TTL_SECONDS, high=MAX_TTL_SECONDS)
    checked = common(checks, request)
    checks.done()
    return Increment(reservation_id, reservation_oid, amount, ttl_seconds, checked)


@dataclass(frozen=True, slots=True)
class CloseHold:
    """A capture (of `amount`, or all it holds, to `splits` or to @revenue) or a release of one
    hold. A final capture releases what is left; one that is not leaves it held."""

    reservation_id: str
    reservation_oid: ObjectId
    amount: int | None
    common: Common
    splits: tuple[Destination, ...] = ()
    final: bool = True


def close_hold(reservation_id, amount, splits, final, request: Request) -> CloseHold:
    checks = Checks()
    reservation_oid = checks.object_id("reservationId", reservation_id)
    checks.optional_amount("amount", amount)
    if not isinstance(final, bool):
        checks.fail("final", "must be true or false")
    elif not final and amount is None:
        checks.fail("amount", "is required when final is false (a capture in parts names each part)")
    destinations = _destinations(checks, "splits", splits)
    if destinations and is_int(amount) and sum(split.amount for split in destinations) != amount:
        checks.fail("splits", f"must add up to the captured amount {amount}")
    checked = common(checks, request)
    checks.done()
    return CloseHold(reservation_id, reservation_oid, amount, checked, destinations, final is not False)


@dataclass(frozen=True, slots=True)
class Refund:
    """Give back `amount` of what a hold captured, from `sources` (default: in proportion to the capture)."""

    reservation_id: str
    reservation_oid: ObjectId
    amount: int
    reason: str | None
    sources: tuple[Destination, ...]
    common: Common


def refund(reservation_id, amount, reason, sources, request: Request) -> Refund:
    checks = Checks()
    reservation_oid = checks.object_id("reservationId", reservation_id)
    checks.amount("amount", amount)
    reason = checks.optional_text("reason", reason, max_length=MAX_REASON_LENGTH)
    named = _destinations(checks, "from", sources)
    if named and is_int(amount) and sum(source.amount for source in named) != amount:
        checks.fail("from", f"must add up to the refunded amount {amount}")
    checked = common(checks, request)
    if checked.owner_filter:
        checks.fail("ownerId", "a refund is the platform's to make, for any owner: leave the owner out")
    checks.done()
    return Refund(reservation_id, reservation_oid, amount, reason, named, checked)


def _place(checks: Checks, where: str, value: object, extra: set[str]) -> Place | None:
    """`{"walletId"}` or `{"account"}` (plus the `extra` fields the caller reads)."""
    if not isinstance(value, dict) or set(value) - {"walletId", "account", *extra}:
        checks.fail(where, "must be an object with walletId or account" + "".join(f", and {name}" for name in extra))
        return None
    if ("walletId" in value) == ("account" in value):
        checks.fail(where, "must name exactly one of walletId and account")
        return None
    if "walletId" in value:
        return Place(value["walletId"], checks.object_id(f"{where}.walletId", value["walletId"]), None)
    return Place(None, None, checks.account_name(f"{where}.account", value["account"]))


def _destinations(checks: Checks, field: str, splits: object) -> tuple[Destination, ...]:
    """`[{"walletId" or "account", "amount"}, ...]`: each names one place, no place twice."""
    if splits is None:
        return ()
    if not isinstance(splits, list | tuple) or not 1 <= len(splits) <= MAX_SPLITS:
        checks.fail(field, f"must be a list of 1 to {MAX_SPLITS} destinations")
        return ()
    destinations = []
    for number, split in enumerate(splits):
        where = f"{field}[{number}]"
        place = _place(checks, where, split, {"amount"})
        if place is None:
            continue
        amount = checks.amount(f"{where}.amount", split.get("amount"))
        destinations.append(Destination(place.wallet_id, place.wallet_oid, place.account, amount))
    places = [(split.wallet_id, split.account) for split in destinations]
    if len(set(places)) != len(places):
        checks.fail(field, "must name each destination once")
    return tuple(destinations)
