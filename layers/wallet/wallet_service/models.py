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


class ReservationStatus(StrEnum):
    HELD = "HELD"
    CAPTURED = "CAPTURED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


class WalletModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Wallet(WalletModel):
    id: str
    owner_id: str
    currency: str
    balance: int
    held: int
    status: WalletStatus
    # Number of journal entries so far; the sequence number of the newest entry.
    sequence: int
    created_at: datetime
    updated_at: datetime

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


class Reservation(WalletModel):
    id: str
    wallet_id: str
    owner_id: str
    currency: str
    amount: int
    captured_amount: int
    released_amount: int
    status: ReservationStatus
    expires_at: datetime
    reference_type: str | None = None
    reference_id: str | None = None
    metadata: dict[str, str | int | bool | None] = {}
    created_at: datetime
    updated_at: datetime


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


class ExpiryReport(WalletModel):
    expired: int
    skipped: int
    failed: int
    skipped_reservation_ids: tuple[str, ...] = ()
    failed_reservation_ids: tuple[str, ...] = ()
