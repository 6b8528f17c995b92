"""Whole-ledger invariants, read straight from the database.

Used after every step of the stateful test, after concurrency tests, and by the workload suites.
"""

from __future__ import annotations

from pymongo.database import Database

from wallet_service import EntryType
from wallet_service.ledger.postings import EFFECTS
from wallet_service.storage.documents import (
    CHECKPOINT,
    CODEC_OPTIONS,
    ENTRY,
    LEDGER,
    RESERVATION,
    WALLET_CLAIM,
    WALLETS,
)
from wallet_service.storage.routing import BUCKETS


def assert_ledger_consistent(database: Database) -> None:
    """Every wallet's balance is the signed sum of its entries, its held what its open holds still
    hold, its sequence numbers run 1..n without gaps, money is stored as Int64, each hold's money
    moved exactly once (its entries explain its figures: assert_hold_explained), and each wallet is
    its owner's one wallet in its currency (its claim names it, and no claim names nothing)."""
    database = database.with_options(codec_options=CODEC_OPTIONS)
    ledger = database[LEDGER]
    claims = {claim["walletId"]: claim["_id"] for claim in ledger.find({"kind": WALLET_CLAIM})}
    wallets = list(database[WALLETS].find())
    assert set(claims) == {wallet["_id"] for wallet in wallets}, "a wallet without its claim, or a claim without it"
    for wallet in wallets:
        wallet_id = wallet["_id"]
        assert claims[wallet_id] == {"ownerId": wallet["ownerId"], "currency": wallet["currency"]}, wallet
        entries = list(ledger.find({"kind": ENTRY, "walletId": wallet_id}).sort("sequence", 1))
        assert [entry["sequence"] for entry in entries] == list(range(1, len(entries) + 1)), wallet_id
        assert wallet["sequence"] == len(entries), wallet_id
        balance = held = 0
        for entry in entries:
            assert entry["amount"] > 0, entry
            effect = EFFECTS[EntryType(entry["type"])]  # the rules themselves: tests/unit/test_postings.py pins them
            assert entry["balanceDelta"] == effect.balance * entry["amount"], entry
            assert entry["heldDelta"] == effect.held * entry["amount"], entry
            balance += entry["balanceDelta"]
            held += entry["heldDelta"]
            assert (entry["balanceAfter"], entry["heldAfter"]) == (balance, held), entry
            assert 0 <= held <= balance, entry
        assert (wallet["balance"], wallet["held"]) == (balance, held), wallet
        for field in ("balance", "held", "sequence"):
            assert type(wallet[field]).__name__ == "Int64", (field, wallet)
        holds = list(ledger.find({"kind": RESERVATION, "walletId": wallet_id}))
        assert wallet["held"] == sum(still_held(hold) for hold in holds if hold["status"] in OPEN), wallet_id
        for hold in holds:
            assert_hold_explained(hold, entries)
    assert_postings_balanced(ledger, {wallet["_id"]: wallet["currency"] for wallet in wallets})
    assert_checkpoints_explained(ledger)


def assert_checkpoints_explained(ledger) -> None:
    """Each platform account's checkpoint is the sum and the count of the postings rolled into it
    (`tail: false`): one per zone of buckets (one zone on a replica set: the checkpoint of every
    bucket), each with the postings of its zone's buckets; every posting is rolled or in its
    account's tail, and only an account with a checkpoint has rolled ones."""
    rolled: dict[tuple[str, str], list[dict]] = {}
    for posting in ledger.find({"kind": ENTRY, "account": {"$exists": True}}):
        assert posting.get("tail") in (True, False), posting
        if posting["tail"] is False:
            rolled.setdefault((posting["account"], posting["currency"]), []).append(posting)
    checkpoints: dict[tuple[str, str], list[dict]] = {}
    for point in ledger.find({"kind": CHECKPOINT}):
        checkpoints.setdefault((point["account"], point["currency"]), []).append(point)
    assert set(rolled) <= set(checkpoints), "postings rolled into no checkpoint"
    for pair, points in checkpoints.items():
        covered = [bucket for point in points for bucket in checkpoint_zone(point)]
        assert len(covered) == len(set(covered)), f"{pair}: checkpoints of overlapping zones"
        for point, zone in ((point, checkpoint_zone(point)) for point in points):
            assert point["tail"] is True, point
            assert point.get("bucket", 0) == zone.start, point  # on its zone's shard
            amounts = [posting["balanceDelta"] for posting in rolled.get(pair, []) if posting["bucket"] in zone]
            assert (point["balanceDelta"], point["postings"]) == (sum(amounts), len(amounts)), point


def checkpoint_zone(point: dict) -> range:
    """The buckets a checkpoint holds the postings of: its id's range (none: every bucket)."""
    suffix = point["_id"].removeprefix(f"checkpoint:{point['account']}:{point['currency']}")
    if not suffix:
        return range(BUCKETS)
    first, last = suffix.removeprefix(":").split("-")
    return range(int(first), int(last) + 1)


OPEN = ("HELD", "PARTIALLY_CAPTURED")
# The entry types a hold's wallet may have for it, by the hold's status (besides its HOLD entries).
HOLD_ENTRY_TYPES = {
    "HELD": set(),
    "PARTIALLY_CAPTURED": {"CAPTURE", "REFUND_IN"},
    "CAPTURED": {"CAPTURE", "RELEASE", "REFUND_IN"},
    "RELEASED": {"CAPTURE", "RELEASE", "REFUND_IN"},
    "EXPIRED": {"CAPTURE", "EXPIRE", "REFUND_IN"},
}


def still_held(hold: dict) -> int:
    return hold["amount"] - hold["capturedAmount"] - hold["releasedAmount"]


def assert_hold_explained(hold: dict, wallet_entries: list[dict]) -> None:
    """A hold's figures add up and its wallet's entries for it explain them: amount = its first
    amount + its increments (one HOLD entry each), captured + released + still held = amount,
    money released only once it ended, refunded <= captured. `wallet_entries`: all of its wallet's
    (read once per wallet, not once per hold)."""
    moved = [entry for entry in wallet_entries if entry.get("reservationId") == hold["_id"]]

    def total(*types: str) -> int:
        return sum(entry["amount"] for entry in moved if entry["type"] in types)

    increments = hold.get("increments", [])
    assert [entry["type"] for entry in moved].count("HOLD") == 1 + len(increments), hold
    assert total("HOLD") == hold["amount"], hold
    assert total("HOLD") - sum(increment["amount"] for increment in increments) > 0, hold
    assert total("CAPTURE") == hold["capturedAmount"] == sum(capture["amount"] for capture in hold["captures"]), hold
    assert total("RELEASE", "EXPIRE") == hold["releasedAmount"], hold
    assert still_held(hold) > 0 if hold["status"] in OPEN else still_held(hold) == 0, hold
    if hold["status"] in OPEN:
        assert hold["releasedAmount"] == 0, hold
    assert total("REFUND_IN") == hold.get("refundedAmount", 0) <= hold["capturedAmount"], hold
    assert {entry["type"] for entry in moved} - {"HOLD"} <= HOLD_ENTRY_TYPES[hold["status"]], hold


def assert_postings_balanced(ledger, currencies: dict) -> None:
    """Double entry: every movement's entries sum to zero per currency, so all of them do; each
    entry is a wallet's (in its wallet's currency) or a platform account's (named with `@`)."""
    by_movement: dict[tuple[str, str], int] = {}
    for entry in ledger.find({"kind": ENTRY}):
        if "account" in entry:
            assert entry["account"].startswith("@"), entry
            assert "walletId" not in entry, entry
            assert "sequence" not in entry, entry
            effect = EFFECTS[EntryType(entry["type"])]
            assert entry["balanceDelta"] == effect.balance * entry["amount"], entry
            assert effect.held == 0, entry
        else:
            assert entry["currency"] == currencies[entry["walletId"]], entry
        key = (entry["operationId"], entry["currency"])
        by_movement[key] = by_movement.get(key, 0) + entry["balanceDelta"]
    unbalanced = {key: total for key, total in by_movement.items() if total}
    assert not unbalanced, f"movements whose postings do not sum to zero: {unbalanced}"


def platform_balances(database: Database) -> dict[tuple[str, str], int]:
    """Each platform account's balance per currency: the sum of its postings."""
    totals: dict[tuple[str, str], int] = {}
    for entry in database[LEDGER].find({"kind": ENTRY, "account": {"$exists": True}}):
        key = (entry["account"], entry["currency"])
        totals[key] = totals.get(key, 0) + entry["balanceDelta"]
    return totals


def total_money(database: Database) -> int:
    return sum(wallet["balance"] for wallet in database[WALLETS].find({}, {"balance": 1}))


# What the migration reports on a ledger the service wrote itself: nothing to do (as the jobs answer, camelCase).
NOTHING_TO_MIGRATE = {
    "entriesDated": 0,
    "postingsAdded": 0,
    "holdsUpdated": 0,
    "accountsMoved": 0,
    "documentsRouted": 0,
}


def snapshot(database: Database) -> dict[str, list[dict]]:
    """Every document of the wallet collections, to prove that a refused call changed nothing. Not
    what the roll job (scheduled every minute under make run) may write at any time, moving no
    money: the checkpoints and a posting's `tail` flag (true until rolled into its checkpoint);
    assert_ledger_consistent checks them against the postings."""
    return {
        WALLETS: list(database[WALLETS].find().sort("_id", 1)),
        LEDGER: list(database[LEDGER].find({"kind": {"$ne": CHECKPOINT}}, {"tail": 0}).sort("_id", 1)),
    }
