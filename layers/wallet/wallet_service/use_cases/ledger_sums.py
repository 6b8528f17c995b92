"""The audit's proof over the whole ledger: per currency, every entry sums to zero; each platform
account's checkpoint and tail are exactly its postings.

It reads the whole ledger without a transaction of that size (every transaction must end well
inside the database's lifetime, limits.TRANSACTION_LIFETIME_SECONDS, whatever the ledger's size). An
entry whose `createdAt` is older than `cutoff` (limits.SETTLED_SECONDS before now) belongs to a
transaction that has committed or aborted, so the settled entries are a set that never changes again,
apart from a posting's `tail` (true, then false once rolled; missing, then true, when an account
from before checkpoints is rolled first). Hence two reads:

1. one short snapshot transaction: the recent entries (`createdAt >= cutoff`, on `entries_by_time`:
   as many as were written in SETTLED_SECONDS) and everything with `tail: true` (`account_tails`:
   the checkpoints, and the postings not rolled yet, which the schedule keeps short);
2. then, outside any transaction, one aggregation over the settled entries (immutable: any moment
   reads them alike; entries with no `createdAt`, from before dates, are settled).

Settled plus recent is every entry committed at the transaction's snapshot. Per checkpointed account
and currency, checkpoint + tail = its postings with a `tail` (true or false: a roll moving one
from tail to checkpoint meanwhile changes neither side). The transaction comes first because the
settled read may see a posting rolled after it: an account's first roll, which makes its
checkpoint, after the postings from before checkpoints joined the tail. Seen the other way round,
that roll would look like postings outside checkpoint and tail; seen this way, a rolled posting of
an account with no checkpoint at the snapshot is a finding only if the account still has none.
(The one-off migration dates old entries and adds back-dated postings, outside transactions: an
audit beside it may report what it is fixing; run it after.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo.client_session import ClientSession

from ..ledger.limits import SETTLED_SECONDS
from ..ledger.reports import Discrepancy
from ..storage import documents
from ..storage.queries import Database
from ..storage.routing import scatter
from . import checkpoints

EVERY_SHARD = scatter("audit")  # the sums of every entry and posting

Pair = tuple[str, str | None]  # (platform account, currency)
Sum = tuple[int, int]  # (sum of balanceDelta, postings)

GROUP = {"currency": "$currency", "account": "$account", "tail": "$tail"}


def _add(left: Sum, right: Sum) -> Sum:
    return left[0] + right[0], left[1] + right[1]


@dataclass
class Sums:
    """balanceDelta per currency, and per platform account and currency its postings: with a
    `tail` (true or false), rolled (false), and without one (from before checkpoints)."""

    totals: dict[str | None, int] = field(default_factory=dict)
    tracked: dict[Pair, Sum] = field(default_factory=dict)
    rolled: dict[Pair, Sum] = field(default_factory=dict)
    untracked: dict[Pair, int] = field(default_factory=dict)

    def add(self, rows: list[dict]) -> None:
        """Rows of `grouped`: one per currency, account and tail."""
        for row in rows:
            currency, account, tail = (row["_id"].get(name) for name in GROUP)
            self.totals[currency] = self.totals.get(currency, 0) + row["total"]
            pair, postings = (account, currency), (row["total"], row["postings"])
            if account is None:
                continue
            if tail is None:
                self.untracked[pair] = self.untracked.get(pair, 0) + row["postings"]
                continue
            self.tracked[pair] = _add(self.tracked.get(pair, (0, 0)), postings)
            if tail is False:
                self.rolled[pair] = _add(self.rolled.get(pair, (0, 0)), postings)


def grouped(match: dict) -> list[dict]:
    return [
        {"$match": match},
        {"$group": {"_id": GROUP, "total": {"$sum": "$balanceDelta"}, "postings": {"$sum": 1}}},
    ]


@dataclass(frozen=True)
class Snapshot:
    """What the short transaction read."""

    recent: list[dict]  # rows of `grouped` over the recent entries
    checkpoints: dict[Pair, Sum]  # each checkpoint's sum and postings
    tails: dict[Pair, Sum]  # the postings not rolled yet, per account and currency


def read_snapshot(db: Database, session: ClientSession, cutoff: datetime) -> Snapshot:
    recent = db.ledger.aggregate(
        grouped({"kind": documents.ENTRY, "createdAt": {"$gte": cutoff}}),
        session=session,
        hint="entries_by_time",
        comment=EVERY_SHARD,
    )
    key = {"account": "$account", "currency": "$currency", "kind": "$kind"}
    tails = db.ledger.aggregate(
        [
            {"$match": {"tail": True}},  # a checkpoint heads its account's tail
            {
                "$group": {
                    "_id": key,
                    "total": {"$sum": "$balanceDelta"},
                    "documents": {"$sum": 1},
                    "rolled": {"$sum": "$postings"},  # a checkpoint's count; postings have none
                }
            },
        ],
        session=session,
        hint="account_tails",
        comment=EVERY_SHARD,
    )
    heads: dict[Pair, Sum] = {}
    tail: dict[Pair, Sum] = {}
    for row in tails:
        pair = (row["_id"]["account"], row["_id"].get("currency"))
        if row["_id"]["kind"] == documents.CHECKPOINT:
            heads[pair] = (row["total"], row["rolled"])
        else:
            tail[pair] = (row["total"], row["documents"])
    return Snapshot(list(recent), heads, tail)


def settled_rows(db: Database, cutoff: datetime) -> list[dict]:
    """The settled entries, grouped: the whole ledger but the last SETTLED_SECONDS, outside any transaction."""
    settled = grouped({"kind": documents.ENTRY, "createdAt": {"$not": {"$gte": cutoff}}})
    return list(db.records.aggregate(settled, comment=EVERY_SHARD))


def ledger_sums(db: Database) -> tuple[Sums, list[Discrepancy], int]:
    """(the sums, the checkpoints' discrepancies, the checkpoints checked)."""
    cutoff = db.clock() - timedelta(seconds=SETTLED_SECONDS)
    snapshot = db.runner.run(lambda session: read_snapshot(db, session, cutoff))
    sums = Sums()
    sums.add(snapshot.recent)
    sums.add(settled_rows(db, cutoff))
    found = []
    for pair in sorted(snapshot.checkpoints.keys() | sums.rolled.keys(), key=lambda pair: (pair[0], pair[1] or "")):
        subject = " ".join(part or "?" for part in pair)
        if pair not in snapshot.checkpoints:
            if _has_checkpoint_now(db, pair):  # rolled first after the snapshot
                continue
            total, count = sums.rolled[pair]
            found.append(_found(subject, f"{count} postings rolled (summing to {total}) with no checkpoint"))
            continue
        head, tail, postings = snapshot.checkpoints[pair], snapshot.tails.get(pair, (0, 0)), sums.tracked.get(pair)
        if _add(head, tail) != (postings or (0, 0)):
            detail = "checkpoint {} of {} postings, tail {} of {}; ".format(*head, *tail)
            detail += "its postings {} of {}".format(*(postings or (0, 0)))
            found.append(_found(subject, detail))
        if sums.untracked.get(pair):
            found.append(_found(subject, f"{sums.untracked[pair]} postings outside its checkpoint and its tail"))
    return sums, found, len(snapshot.checkpoints)


def _has_checkpoint_now(db: Database, pair: Pair) -> bool:
    account, currency = pair
    if currency is None:
        return False
    return checkpoints.has_checkpoint(db.records, account, currency)


def _found(subject: str, detail: str) -> Discrepancy:
    return Discrepancy(kind="checkpoint_mismatch", subject=subject, detail=detail)
