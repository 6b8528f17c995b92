"""Validated commands: the arguments of each operation that moves money (reads.py has the reads),
checked all at once before any database call (every bad field is reported, not only the first)
and turned into what the use cases work with. `owner_filter` confines a call to one owner's
wallets and holds: another owner's is reported as not found; it is empty for an administrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import Int64, ObjectId

from .limits import (
    MAX_EXPIRY_BATCH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_OWNER_ID_LENGTH,
    MAX_REASON_LENGTH,
    MAX_REFERENCE_ID_LENGTH,
    MAX_REFERENCE_TYPE_LENGTH,
    MAX_SPLITS,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
)
from .models import OnExpiry
from .postings import Details
from .validation import Checks, is_int


@dataclass(frozen=True, slots=True)
class Common:
    """What every money-moving command carries besides its own fields."""

    key: str | None
    details: Details
    owner_filter: dict


def _common(checks: Checks, key, reference_type, reference_id, metadata, owner_id) -> Common:
    return Common(
        checks.optional_token("idempotencyKey", key, max_length=MAX_IDEMPOTENCY_KEY_LENGTH),
        Details(
            checks.optional_token("referenceType", reference_type, max_length=MAX_REFERENCE_TYPE_LENGTH),
            checks.optional_token("referenceId", reference_id, max_length=MAX_REFERENCE_ID_LENGTH),
            checks.metadata("metadata", metadata),
        ),
        owner_filter(checks, owner_id),
    )


def owner_filter(checks: Checks, owner_id: object) -> dict:
    if owner_id is None:
        return {}
    return {"ownerId": checks.token("ownerId", owner_id, max_length=MAX_OWNER_ID_LENGTH)}


@dataclass(frozen=True, slots=True)
class OpenWallet:
    owner_id: str
    currency: str
    opening_balance: int
    key: str | None
    details: Details
    alerts: dict | None = None  # the wallet's `alerts` document


def open_wallet(owner_id, currency, opening_balance, key, metadata, alerts=None) -> OpenWallet:
    checks = Checks()
    command = OpenWallet(
        checks.token("ownerId", owner_id, max_length=MAX_OWNER_ID_LENGTH),
        checks.currency("currency", currency),
        checks.opening_balance("openingBalance", opening_balance),
        checks.optional_token("idempotencyKey", key, max_length=MAX_IDEMPOTENCY_KEY_LENGTH),
        Details(metadata=checks.metadata("metadata", metadata)),
        _alerts(checks, alerts),
    )
    checks.done()
    return command


@dataclass(frozen=True, slots=True)
class SetAlerts:
    wallet_id: str
    wallet_oid: ObjectId
    alerts: dict | None  # None: no alerts
    owner_filter: dict


def set_alerts(wallet_id, alerts, owner_id) -> SetAlerts:
    checks = Checks()
    wallet_oid = checks.object_id("walletId", wallet_id)
    document = _alerts(checks, alerts)
    scope = owner_filter(checks, owner_id)
    checks.done()
    return SetAlerts(wallet_id, wallet_oid, document, scope)


def _alerts(checks: Checks, alerts: object) -> dict | None:
    """`{"availableBelow": amount}`, or None for no alerts."""
    if alerts is None:
        return None
    if not isinstance(alerts, dict) or set(alerts) != {"availableBelow"}:
        checks.fail("alerts", "must be an object with availableBelow, an amount")
        return None
    below = checks.amount("alerts.availableBelow", alerts["availableBelow"])
    return {"availableBelow": Int64(below)} if is_int(below) else None


@dataclass(frozen=True, slots=True)
class WalletAmount:
    """A deposit or a withdrawal: an amount on one wallet."""

    wallet_id: str
    wallet_oid: ObjectId
    amount: int
    common: Common


def wallet_amount(wallet_id, amount, key, reference_type, reference_id, metadata, owner_id) -> WalletAmount:
    checks = Checks()
    wallet_oid = checks.object_id("walletId", wallet_id)
    checks.amount("amount", amount)
    common = _common(checks, key, reference_type, reference_id, metadata, owner_id)
    checks.done()
    return WalletAmount(wallet_id, wallet_oid, amount, common)


@dataclass(frozen=True, slots=True)
class Transfer:
    from_wallet_id: str
    from_oid: ObjectId
    to_wallet_id: str
    to_oid: ObjectId
    amount: int
    common: Common


def transfer(from_wallet_id, to_wallet_id, amount, key, reference_type, reference_id, metadata, owner_id) -> Transfer:
    checks = Checks()
    from_oid = checks.object_id("fromWalletId", from_wallet_id)
    to_oid = checks.object_id("toWalletId", to_wallet_id)
    if isinstance(from_wallet_id, str) and from_wallet_id == to_wallet_id:
        checks.fail("toWalletId", "must differ from fromWalletId")
    checks.amount("amount", amount)
    common = _common(checks, key, reference_type, reference_id, metadata, owner_id)
    checks.done()
    return Transfer(from_wallet_id, from_oid, to_wallet_id, to_oid, amount, common)


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


def hold(
    wallet_id, amount, ttl_seconds, on_expiry, capture_to, key, reference_type, reference_id, metadata, owner_id
) -> Hold:
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
    common = _common(checks, key, reference_type, reference_id, metadata, owner_id)
    checks.done()
    return Hold(wallet_id, wallet_oid, amount, ttl_seconds, OnExpiry(on_expiry), place, common)


@dataclass(frozen=True, slots=True)
class Increment:
    """More money on an open hold, and perhaps a later expiry (`ttl_seconds` from now)."""

    reservation_id: str
    reservation_oid: ObjectId
    amount: int
    ttl_seconds: int | None
    common: Common


def increment(reservation_id, amount, ttl_seconds, key, reference_type, reference_id, metadata, owner_id) -> Increment:
    checks = Checks()
    reservation_oid = checks.object_id("reservationId", reservation_id)
    checks.amount("amount", amount)
    if ttl_seconds is not None:
        checks.integer("ttlSeconds", ttl_seconds, low=MIN_TTL_SECONDS, high=MAX_TTL_SECONDS)
    common = _common(checks, key, reference_type, reference_id, metadata, owner_id)
    checks.done()
    return Increment(reservation_id, reservation_oid, amount, ttl_seconds, common)


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


def close_hold(
    reservation_id, amount, key, reference_type, reference_id, metadata, owner_id, splits=None, final=True
) -> CloseHold:
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
    common = _common(checks, key, reference_type, reference_id, metadata, owner_id)
    checks.done()
    return CloseHold(reservation_id, reservation_oid, amount, common, destinations, final is not False)


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


@dataclass(frozen=True, slots=True)
class Refund:
    """Give back `amount` of what a hold captured, from `sources` (default: in proportion to the capture)."""

    reservation_id: str
    reservation_oid: ObjectId
    amount: int
    reason: str | None
    sources: tuple[Destination, ...]
    common: Common


def refund(reservation_id, amount, reason, sources, key, reference_type, reference_id, metadata) -> Refund:
    checks = Checks()
    reservation_oid = checks.object_id("reservationId", reservation_id)
    checks.amount("amount", amount)
    reason = checks.optional_text("reason", reason, max_length=MAX_REASON_LENGTH)
    named = _destinations(checks, "from", sources)
    if named and is_int(amount) and sum(source.amount for source in named) != amount:
        checks.fail("from", f"must add up to the refunded amount {amount}")
    common = _common(checks, key, reference_type, reference_id, metadata, None)
    checks.done()
    return Refund(reservation_id, reservation_oid, amount, reason, named, common)


@dataclass(frozen=True, slots=True)
class Expiry:
    cutoff: datetime | None
    batch_size: int


def expiry(now, batch_size) -> Expiry:
    checks = Checks()
    cutoff = None if now is None else checks.aware_datetime("now", now)
    checks.integer("batchSize", batch_size, low=1, high=MAX_EXPIRY_BATCH)
    checks.done()
    return Expiry(cutoff, batch_size)
