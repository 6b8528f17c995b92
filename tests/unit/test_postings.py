"""The posting rules, without a database: each entry type's effect, the sequence and after-values
of a movement's entries, rewinding from a wallet's state after them, and the refusals."""

from __future__ import annotations

import pytest
from bson import ObjectId

from wallet_service import EntryType, InsufficientFunds
from wallet_service.ledger.postings import (
    EFFECTS,
    FUNDING,
    REVENUE,
    Posting,
    WalletState,
    balance_total,
    change,
    largest_remainder,
    post,
    rewind,
)
from wallet_service.storage.documents import account_entries, assert_balanced, journal_entries

# The table, restated here from docs/posting-rules.md so that a change to the rules is a change to this test.
EXPECTED = {
    "DEPOSIT": (1, 0),
    "WITHDRAWAL": (-1, 0),
    "TRANSFER_OUT": (-1, 0),
    "TRANSFER_IN": (1, 0),
    "HOLD": (0, 1),
    "CAPTURE": (-1, -1),
    "RELEASE": (0, -1),
    "EXPIRE": (0, -1),
    "FUNDING": (-1, 0),
    "PAYOUT": (1, 0),
    "CAPTURE_IN": (1, 0),
    "REFUND_OUT": (-1, 0),
    "REFUND_IN": (1, 0),
}
RICH = WalletState(balance=1_000, held=300, sequence=7)


def test_every_entry_type_has_its_effect():
    assert {entry_type.value: tuple(effect) for entry_type, effect in EFFECTS.items()} == EXPECTED
    assert set(EFFECTS) == set(EntryType)


@pytest.mark.parametrize("entry_type", list(EntryType))
def test_one_posting_moves_its_amount_as_its_effect_says(entry_type):
    (posted,) = post(RICH, [Posting(entry_type, 50)])
    balance_sign, held_sign = EXPECTED[entry_type.value]
    assert posted.sequence == 8
    assert (posted.balance_after, posted.held_after) == (1_000 + 50 * balance_sign, 300 + 50 * held_sign)
    assert (posted.posting.balance_delta, posted.posting.held_delta) == (50 * balance_sign, 50 * held_sign)


def test_a_partial_capture_is_a_capture_then_a_release_numbered_in_order():
    hold = ObjectId()
    postings = [
        Posting(EntryType.CAPTURE, 120, reservation_id=hold),
        Posting(EntryType.RELEASE, 180, reservation_id=hold),
    ]
    first, second = post(RICH, postings)
    assert (first.sequence, first.balance_after, first.held_after) == (8, 880, 180)
    assert (second.sequence, second.balance_after, second.held_after) == (9, 880, 0)
    assert change(postings) == {"balance": -120, "held": -300, "sequence": 2}


def test_rewinding_a_wallet_after_the_postings_gives_the_state_before_them():
    postings = [Posting(EntryType.EXPIRE, 100), Posting(EntryType.EXPIRE, 200)]
    after = WalletState(balance=1_000, held=0, sequence=9)
    assert rewind(after, postings) == RICH
    assert [(item.sequence, item.held_after) for item in post(rewind(after, postings), postings)] == [(8, 200), (9, 0)]


@pytest.mark.parametrize(
    "postings",
    [
        [Posting(EntryType.WITHDRAWAL, 701)],  # 700 available
        [Posting(EntryType.HOLD, 701)],
        [Posting(EntryType.TRANSFER_OUT, 700), Posting(EntryType.WITHDRAWAL, 1)],
        [Posting(EntryType.RELEASE, 301)],  # releases more than is held
        [Posting(EntryType.CAPTURE, 301)],
    ],
    ids=["withdraw_more", "hold_more", "second_posting_overdraws", "release_more", "capture_more"],
)
def test_a_posting_that_would_leave_less_than_nothing_available_or_held_is_refused(postings):
    with pytest.raises(InsufficientFunds) as refused:
        post(RICH, postings)
    assert refused.value.available == 700


def test_exactly_everything_available_may_leave():
    (posted,) = post(RICH, [Posting(EntryType.WITHDRAWAL, 700)])
    assert (posted.balance_after - posted.held_after, posted.held_after) == (0, 300)


@pytest.mark.parametrize("amount", [0, -5])
def test_a_posting_moves_a_positive_amount(amount):
    with pytest.raises(ValueError, match="positive amount"):
        post(RICH, [Posting(EntryType.DEPOSIT, amount)])


def test_no_postings_change_nothing():
    assert post(RICH, []) == []
    assert change([]) == {"balance": 0, "held": 0, "sequence": 0}
    assert rewind(RICH, []) == RICH


def test_a_deposit_and_its_funding_sum_to_zero_and_their_entries_are_balanced():
    deposit = Posting(EntryType.DEPOSIT, 250)
    funding = Posting(EntryType.FUNDING, 250, account=FUNDING)
    assert balance_total([deposit, funding]) == 0
    wallet = ObjectId()
    entries = [
        *journal_entries(wallet, "USD", post(RICH, [deposit]), "op", None),
        *account_entries("USD", [funding], "op", None),
    ]
    assert_balanced(entries)  # no error
    assert [entry.get("account") for entry in entries] == [None, FUNDING]
    assert {entry["currency"] for entry in entries} == {"USD"}


def test_an_unbalanced_movement_is_never_written():
    wallet = ObjectId()
    capture = post(RICH, [Posting(EntryType.CAPTURE, 100)])
    short = account_entries("USD", [Posting(EntryType.CAPTURE_IN, 99, account=REVENUE)], "op", None)
    with pytest.raises(AssertionError, match="unbalanced movement"):
        assert_balanced([*journal_entries(wallet, "USD", capture, "op", None), *short])
    # Balanced per currency, not across currencies.
    euros = account_entries("EUR", [Posting(EntryType.CAPTURE_IN, 100, account=REVENUE)], "op", None)
    with pytest.raises(AssertionError, match="unbalanced movement"):
        assert_balanced([*journal_entries(wallet, "USD", capture, "op", None), *euros])


@pytest.mark.parametrize(
    ("amount", "weights", "shares"),
    [
        (333, [700, 300], [233, 100]),
        (1, [1, 1], [1, 0]),  # a tie goes to the first
        (3, [1, 1, 1], [1, 1, 1]),
        (10, [3, 3, 4], [3, 3, 4]),
        (7, [5, 5], [4, 3]),
        (1_000, [1_000], [1_000]),
    ],
)
def test_largest_remainder_adds_up_and_never_passes_a_weight(amount, weights, shares):
    assert largest_remainder(amount, weights) == shares
    assert sum(shares) == amount
    assert all(share <= weight for share, weight in zip(shares, weights, strict=True))
