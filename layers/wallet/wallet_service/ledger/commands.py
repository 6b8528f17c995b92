"""Validated commands: the arguments of each operation that moves money (hold_commands.py has the
holds', reads.py the reads), checked all at once before any database call (every bad field is
reported, not only the first) and turned into what the use cases work with. What every movement
carries besides its own fields (its key, reference, metadata and owner) arrives as one Request
(request.py) and is checked into its `Common`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import Int64, ObjectId

from .limits import MAX_EXPIRY_BATCH, MAX_OWNER_ID_LENGTH
from .request import Common, Request, common, owner_filter
from .validation import Checks, is_int


@dataclass(frozen=True, slots=True)
class OpenWallet:
    owner_id: str
    currency: str
    opening_balance: int
    alerts: dict | None  # the wallet's `alerts` document
    common: Common


def open_wallet(owner_id, currency, opening_balance, alerts, request: Request) -> OpenWallet:
    checks = Checks()
    owner_id = checks.token("ownerId", owner_id, max_length=MAX_OWNER_ID_LENGTH)
    currency = checks.currency("currency", currency)
    opening_balance = checks.opening_balance("openingBalance", opening_balance)
    document = _alerts(checks, alerts)
    checked = common(checks, request)
    if checked.details.reference_type is not None or checked.details.reference_id is not None:
        checks.fail("reference", "opening a wallet takes no reference: its opening deposit has the wallet's metadata")
    if checked.owner_filter.get("ownerId", owner_id) != owner_id:
        checks.fail("ownerId", "a caller confined to one owner opens only that owner's wallets")
    checks.done()
    return OpenWallet(owner_id, currency, opening_balance, document, checked)


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


def wallet_amount(wallet_id, amount, request: Request) -> WalletAmount:
    checks = Checks()
    wallet_oid = checks.object_id("walletId", wallet_id)
    checks.amount("amount", amount)
    checked = common(checks, request)
    checks.done()
    return WalletAmount(wallet_id, wallet_oid, amount, checked)


@dataclass(frozen=True, slots=True)
class Transfer:
    from_wallet_id: str
    from_oid: ObjectId
    to_wallet_id: str
    to_oid: ObjectId
    amount: int
    common: Common


def transfer(from_wallet_id, to_wallet_id, amount, request: Request) -> Transfer:
    checks = Checks()
    from_oid = checks.object_id("fromWalletId", from_wallet_id)
    to_oid = checks.object_id("toWalletId", to_wallet_id)
    if isinstance(from_wallet_id, str) and from_wallet_id == to_wallet_id:
        checks.fail("toWalletId", "must differ from fromWalletId")
    checks.amount("amount", amount)
    checked = common(checks, request)
    checks.done()
    return Transfer(from_wallet_id, from_oid, to_wallet_id, to_oid, amount, checked)


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
