"""What the service returns: immutable pydantic models with camelCase aliases for the HTTP layer.

Amounts are integer minor units (cents). Timestamps are UTC with millisecond precision,
the precision MongoDB stores, so a result read back from the database equals the original.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, computed_field
from pydantic.alias_generators import to_camel


class WalletStatus(StrEnum):
    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"


class EntryType(StrEnum):
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"
    TRANSFER_IN = "TRANSFER_IN"
    TRANSFER_OUT = "TRANSFER_OUT"
    HOLD = "HOLD"
    CAPTURE = "CAPTURE"
    RELEASE = "RELEASE"
    EXPIRE = "EXPIRE"
    # The other side of a movement, on a platform account or on the wallet a capture pays.
    FUNDING = "FUNDING"
    PAYOUT = "PAYOUT"
    CAPTURE_IN = "CAPTURE_IN"
    REFUND_OUT = "REFUND_OUT"
    REFUND_IN = "REFUND_IN"


class ReservationStatus(StrEnum):
    """HELD -> (PARTIALLY_CAPTURED) -> CAPTURED | RELEASED | EXPIRED: a hold is open in the first
    two; a capture that is not final leaves it PARTIALLY_CAPTURED, anything else ends it."""

    HELD = "HELD"
    PARTIALLY_CAPTURED = "PARTIALLY_CAPTURED"
    CAPTURED = "CAPTURED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


# The statuses of a hold that still holds money: it may be raised, captured, released or expire.
OPEN_HOLD_STATUSES = (ReservationStatus.HELD.value, ReservationStatus.PARTIALLY_CAPTURED.value)


class OnExpiry(StrEnum):
    """What the expiry job does with what a hold still holds when its time comes."""

    RELEASE = "release"  # give it back to the wallet's available money
    CAPTURE = "capture"  # capture it, to the hold's `captureTo` (a no-show fee, a pre-agreed fare)


class WalletModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class WalletAlerts(WalletModel):
    """When the wallet's events say its available money ran low: below `availableBelow`."""

    available_below: int


class Wallet(WalletModel):
    id: str
    owner_id: str
    currency: str
    balance: int
    held: int
    status: WalletStatus
    # Number of journal entries so far; the sequence number of the newest entry.
    sequence: int
    alerts: WalletAlerts | None = None
    created_at: datetime
    updated_at: datetime

    @computed_field
    @property
    def available(self) -> int:
        return self.balance - self.held


class WalletBalance(WalletModel):
    """A wallet's counters as they were at `at`, after its entry number `sequence` (0: none yet)."""

    wallet_id: str
    at: datetime
    balance: int
    held: int
    sequence: int

    @computed_field
    @property
    def available(self) -> int:
        return self.balance - self.held


class LedgerEntry(WalletModel):
    id: str
    wallet_id: str
    type: EntryType
    amount: int
    # Signed effects: a wallet's balance is the sum of its balance deltas, its held the sum of its held deltas.
    balance_delta: int
    held_delta: int
    balance_after: int
    held_after: int
    sequence: int
    reservation_id: str | None = None
    counterparty_wallet_id: str | None = None
    reference_type: str | None = None
    reference_id: str | None = None
    metadata: dict[str, str | int | bool | None] = {}
    operation_id: str
    created_at: datetime


class AccountEntry(WalletModel):
    """A posting on a platform account (`@funding`, `@revenue`, ...): its balance is the sum of its
    balance deltas; it has no document of its own to update, so no sequence and no after-values."""

    id: str
    account: str
    currency: str
    type: EntryType
    amount: int
    balance_delta: int
    wallet_id: str | None = None  # the wallet on the other side of the movement
    reservation_id: str | None = None
    reference_type: str | None = None
    reference_id: str | None = None
    metadata: dict[str, str | int | bool | None] = {}
    operation_id: str
    created_at: datetime


class Place(WalletModel):
    """A wallet or a platform account."""

    wallet_id: str | None = None
    account: str | None = None


class Split(Place):
    """One destination of a capture: a wallet or a platform account, and what it received."""

    amount: int


class RefundSource(Split):
    """What a refund took back from one destination of one capture."""

    capture_id: str | None = None


class Capture(WalletModel):
    """One capture of a hold, and where its money went; `final` when it ended the hold."""

    id: str
    amount: int
    splits: tuple[Split, ...]
    final: bool = True
    created_at: datetime


class Increment(WalletModel):
    """More money held on an open hold, and the hold's expiry after it."""

    id: str
    amount: int
    expires_at: datetime
    created_at: datetime


class Refund(WalletModel):
    """Money a hold's captures gave back to its payer, and where it came back from (newest capture first)."""

    id: str
    amount: int
    reason: str | None = None
    sources: tuple[RefundSource, ...]
    created_at: datetime


class PlatformAccount(WalletModel):
    """A platform account in one currency: its balance is the sum of its postings (negative for a source)."""

    name: str
    currency: str
    balance: int
    built_in: bool


class AccountEntryPage(WalletModel):
    items: tuple[AccountEntry, ...]
    next_cursor: str | None


class Reservation(WalletModel):
    """A hold. `amount` is all it has held over its life (the first amount and its increments);
    `captured + released + held = amount` at every moment, `held` being what it still holds."""

    id: str
    wallet_id: str
    owner_id: str
    currency: str
    amount: int
    captured_amount: int
    released_amount: int
    increments: tuple[Increment, ...] = ()
    captures: tuple[Capture, ...] = ()
    refunded_amount: int = 0
    refunds: tuple[Refund, ...] = ()
    status: ReservationStatus
    expires_at: datetime
    on_expiry: OnExpiry = OnExpiry.RELEASE
    capture_to: Place | None = None  # where an expiry's capture goes (onExpiry capture)
    reference_type: str | None = None
    reference_id: str | None = None
    metadata: dict[str, str | int | bool | None] = {}
    created_at: datetime
    updated_at: datetime

    @computed_field
    @property
    def held_amount(self) -> int:
        """What the hold still holds: what is left to capture, release or expire."""
        return self.amount - self.captured_amount - self.released_amount


class Movement(WalletModel):
    """The outcome of one money-moving operation, exactly as first committed.

    `replayed` says how this call got it: true when from the stored result of an earlier call
    with the same idempotency key rather than from this call's own commit. It is never serialised
    (the stored result and the HTTP body are the same for every call; HTTP says it in a header)."""

    operation_id: str
    entries: tuple[LedgerEntry, ...]
    # The movement's postings on platform accounts: with `entries`, they sum to zero.
    account_entries: tuple[AccountEntry, ...] = ()
    wallet: Wallet
    counterparty_wallet: Wallet | None = None
    reservation: Reservation | None = None
    replayed: bool = Field(default=False, exclude=True)


class EntryPage(WalletModel):
    items: tuple[LedgerEntry, ...]
    next_cursor: str | None


class ReservationPage(WalletModel):
    items: tuple[Reservation, ...]
    next_cursor: str | None
