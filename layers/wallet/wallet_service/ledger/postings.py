"""The posting rules: what each kind of journal entry does to an account, as data, and the one
function that turns a wallet's state and a movement's postings into journal entries.

A movement is a list of postings, and its postings sum to zero: money never appears or vanishes,
it moves between accounts. An account is a wallet, or a platform account named with a leading `@`
(`@funding`, where deposits come from; `@payouts`, where withdrawals go; `@revenue`, where a
capture goes when it names no destination). Each posting is one entry on one account. Its type
says what it does to the account's two counters, `balance` and `held` (the part of a wallet's
balance reserved by open holds); on a wallet, `available = balance - held` may never go below
zero, nor `held`. A platform account's balance is only the sum of its entries (no document is
updated, so no movement waits on another there), and it may go negative: `@funding` is.

| entry type   | balance | held | made by                                        |
|--------------|--------:|-----:|------------------------------------------------|
| DEPOSIT      |      +a |    0 | a deposit, a wallet's opening balance          |
| WITHDRAWAL   |      -a |    0 | a withdrawal                                   |
| TRANSFER_OUT |      -a |    0 | a transfer, on the paying wallet               |
| TRANSFER_IN  |      +a |    0 | a transfer, on the paid wallet                 |
| HOLD         |       0 |   +a | a hold placed                                  |
| CAPTURE      |      -a |   -a | a hold captured (the captured part)            |
| RELEASE      |       0 |   -a | a hold released, or the rest of a capture      |
| EXPIRE       |       0 |   -a | a hold that expired (the expiry job)           |
| FUNDING      |      -a |    0 | a deposit or opening balance, on `@funding`    |
| PAYOUT       |      +a |    0 | a withdrawal, on `@payouts`                    |
| CAPTURE_IN   |      +a |    0 | a capture, on its destination (`@revenue`)     |
| REFUND_OUT   |      -a |    0 | a refund, on a destination of the capture      |
| REFUND_IN    |      +a |    0 | a refund, on the hold's (payer's) wallet       |

Entries of one wallet are numbered by its `sequence`, 1..n without gaps, and each carries the
wallet's balance and held right after it. Nothing here reads or writes the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from bson import ObjectId

from .errors import InsufficientFunds
from .models import EntryType


class Effect(NamedTuple):
    """The sign of an entry's amount on the wallet's balance and on its held amount."""

    balance: int
    held: int


EFFECTS: dict[EntryType, Effect] = {
    EntryType.DEPOSIT: Effect(+1, 0),
    EntryType.WITHDRAWAL: Effect(-1, 0),
    EntryType.TRANSFER_OUT: Effect(-1, 0),
    EntryType.TRANSFER_IN: Effect(+1, 0),
    EntryType.HOLD: Effect(0, +1),
    EntryType.CAPTURE: Effect(-1, -1),
    EntryType.RELEASE: Effect(0, -1),
    EntryType.EXPIRE: Effect(0, -1),
    EntryType.FUNDING: Effect(-1, 0),
    EntryType.PAYOUT: Effect(+1, 0),
    EntryType.CAPTURE_IN: Effect(+1, 0),
    EntryType.REFUND_OUT: Effect(-1, 0),
    EntryType.REFUND_IN: Effect(+1, 0),
}

FUNDING = "@funding"  # where deposits and opening balances come from
PAYOUTS = "@payouts"  # where withdrawals go
REVENUE = "@revenue"  # where a capture goes when it names no destination
BUILT_IN_ACCOUNTS = (FUNDING, PAYOUTS, REVENUE)


@dataclass(frozen=True, slots=True)
class Details:
    """What the caller says about a movement, kept on its entries: a reference and metadata."""

    reference_type: str | None = None
    reference_id: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Posting:
    """One entry of a movement on one wallet, before it has a place in the wallet's journal."""

    type: EntryType
    amount: int
    details: Details = Details()
    reservation_id: ObjectId | None = None
    counterparty_wallet_id: ObjectId | None = None
    account: str | None = None  # a platform account; None: the wallet the movement updates

    @property
    def balance_delta(self) -> int:
        return EFFECTS[self.type].balance * self.amount

    @property
    def held_delta(self) -> int:
        return EFFECTS[self.type].held * self.amount


@dataclass(frozen=True, slots=True)
class WalletState:
    """A wallet's counters at one point of its journal."""

    balance: int
    held: int
    sequence: int

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass(frozen=True, slots=True)
class Posted:
    """A posting in its place: its sequence number and the wallet's counters right after it."""

    posting: Posting
    sequence: int
    balance_after: int
    held_after: int


def change(postings: Sequence[Posting]) -> dict[str, int]:
    """What the postings add to a wallet's counters together: the update the database applies."""
    return {
        "balance": sum(posting.balance_delta for posting in postings),
        "held": sum(posting.held_delta for posting in postings),
        "sequence": len(postings),
    }


def post(before: WalletState, postings: Sequence[Posting]) -> list[Posted]:
    """The postings in order after `before`, each numbered and with the counters after it.

    Raises InsufficientFunds when one would leave less than nothing available or held."""
    balance, held, sequence = before.balance, before.held, before.sequence
    posted = []
    for posting in postings:
        if posting.amount <= 0:
            raise ValueError(f"a posting moves a positive amount, not {posting.amount}")
        balance += posting.balance_delta
        held += posting.held_delta
        sequence += 1
        if held < 0 or balance - held < 0:
            raise InsufficientFunds(
                f"{posting.type} of {posting.amount} leaves {balance - held} available and {held} held",
                available=before.available,
                requested=posting.amount,
            )
        posted.append(Posted(posting, sequence, balance, held))
    return posted


def largest_remainder(amount: int, weights: Sequence[int]) -> list[int]:
    """`amount` shared in proportion to `weights` (their sum at least `amount`), in whole units:
    each share rounded down, then the units left over to the largest remainders (the first on a
    tie). The shares add up to `amount`, and none passes its weight."""
    total = sum(weights)
    shares = [amount * weight // total for weight in weights]
    remainders = sorted(range(len(weights)), key=lambda index: (-(amount * weights[index] % total), index))
    for index in remainders[: amount - sum(shares)]:
        shares[index] += 1
    return shares


def balance_total(postings: Sequence[Posting]) -> int:
    """What the postings add to the balances of all their accounts: zero for a balanced movement."""
    return sum(posting.balance_delta for posting in postings)


def rewind(after: WalletState, postings: Sequence[Posting]) -> WalletState:
    """The wallet's state before the postings, from its state after them (what an update returns)."""
    total = change(postings)
    return WalletState(after.balance - total["balance"], after.held - total["held"], after.sequence - total["sequence"])
