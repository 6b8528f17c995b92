"""Platform accounts' checkpoints: a balance that costs the same to read however many postings an
account has.

No movement updates a platform account (its postings are inserted, so no movement waits on another
there: accounts.py), which makes its balance a sum, and `@revenue` gets a posting on every ride.
So each account has, per currency, a checkpoint: the sum and the count of the postings rolled into
it. The postings not rolled in yet are its tail (`tail: true`, set when a posting is written), and
the checkpoint heads the tail (`tail: true`, its `balanceDelta` the sum it stands for): the balance
is the sum of `balanceDelta` over the tail, one aggregation on the `account_tails` index (partial on
`tail: true`, so it holds tails only), read at one snapshot.

On a sharded cluster an account's postings are on every shard (each goes with the owner on its
other side), so it has a checkpoint per zone (routing.zones, Database.zones), on that zone's shard,
for the postings of that zone's buckets: each roll is a transaction on one shard, and the balance
reads every shard (one of the documented reads that do: routing.SCATTER). On a replica set (one
zone) that is one checkpoint, as before.

A roll is one transaction: it reads the checkpoint and up to ROLL_BATCH postings of the tail, adds
their sum and count to the checkpoint, and marks them rolled (`tail: false`). Snapshot isolation
makes it exact: a posting that commits meanwhile is not among those read, so it stays in the tail,
and two rolls collide on the checkpoint, so one retries. A checkpoint is therefore always the sum
of the postings marked rolled, which the audit checks. Rolls run on a schedule (RollCheckpoints,
every minute) and in a read that finds a tail longer than LONG_TAIL, one batch each. An account's
first roll in a currency makes its checkpoint, after bringing into its tail the postings written
before checkpoints existed (without `tail`); until then a read sums all its postings.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern

from ..ledger.errors import Conflict, DatabaseUnavailable
from ..ledger.limits import LONG_TAIL, ROLL_BATCH
from ..ledger.reports import CheckpointReport
from ..storage import documents
from ..storage.queries import Database
from ..storage.routing import BUCKETS, scatter, zones
from ..storage.transactions import RetryTransaction, database_errors

logger = logging.getLogger(__name__)
# A platform account's postings go with the owners on their other side, so over every shard.
EVERY_SHARD = scatter("platform balances")

# Postings' ids are ObjectIds, a checkpoint's a string: a range of ObjectIds is an account's
# postings alone, read from the `account_entries` index on every server.
LAST_OBJECT_ID = ObjectId("f" * 24)


def checkpoint_id(name: str, currency: str, zone: range | None = None) -> str:
    """The id of the account's checkpoint in a currency: of the postings of `zone`'s buckets (None:
    of all of them, one zone)."""
    whole = zone is None or every_bucket(zone)
    return f"checkpoint:{name}:{currency}" + ("" if whole else f":{zone.start}-{zone.stop - 1}")


def new_checkpoint(name: str, currency: str, zone: range, now: datetime) -> dict:
    """A checkpoint with nothing rolled into it yet; it heads the account's tail (in its zone)."""
    return {
        "_id": checkpoint_id(name, currency, zone),
        **({} if every_bucket(zone) else {"bucket": zone.start}),  # on its zone's shard
        "kind": documents.CHECKPOINT,
        "account": name,
        "currency": currency,
        "tail": True,
        "balanceDelta": Int64(0),  # what the postings rolled into it add to the balance
        "postings": Int64(0),  # how many were rolled into it
        "rolls": Int64(0),
        "createdAt": now,
        "updatedAt": now,
    }


def every_bucket(zone: range) -> bool:
    """Whether the zone is a replica set's one: every bucket, a checkpoint with no bucket of its own."""
    return len(zone) == BUCKETS


def in_zone(zone: range) -> dict:
    """A zone's part of a filter: nothing for the one zone of a replica set."""
    return {} if every_bucket(zone) else {"bucket": {"$in": list(zone)}}


def postings_query(name: str, currency: str, before: ObjectId | None = None) -> dict:
    """The account's postings in a currency (those before `before`, a posting's id)."""
    bound = {"$lte": LAST_OBJECT_ID} if before is None else {"$lt": before}
    return {"account": name, "currency": currency, "_id": bound}


def balance(db: Database, name: str, currency: str) -> int:
    """The account's balance: its checkpoint plus its tail, read at one snapshot (an account never
    rolled: all its postings). A read that finds no checkpoint, or a long tail, rolls a batch."""
    sums = _sums(db, {"account": name, "currency": currency, "tail": True}, group="$kind")
    if documents.CHECKPOINT in sums:
        total = sum(amount for amount, _ in sums.values())
        roll_now = sums.get(documents.ENTRY, (0, 0))[1] > LONG_TAIL
    else:  # never rolled: every posting counts, those from before checkpoints too
        total = _sums(db, postings_query(name, currency), group=None).get(None, (0, 0))[0]
        roll_now = True
    if roll_now:
        try:
            roll(db, name, currency)
        except (PyMongoError, Conflict, DatabaseUnavailable):
            # The balance is read; the roll is upkeep, which RollCheckpoints does every minute anyway.
            logger.warning("rolling %s %s after a balance read failed", name, currency, exc_info=True)
    return total


def _sums(db: Database, match: dict, *, group: str | None) -> dict:
    """{group: (sum of balanceDelta, documents)} over `match`, at one snapshot."""
    pipeline = [
        {"$match": match},
        {"$group": {"_id": group, "total": {"$sum": "$balanceDelta"}, "documents": {"$sum": 1}}},
    ]
    snapshot = db.ledger.with_options(read_concern=ReadConcern("snapshot"))
    rows = db.read(lambda: list(snapshot.aggregate(pipeline, comment=EVERY_SHARD)))
    return {row["_id"]: (row["total"], row["documents"]) for row in rows}


def roll(db: Database, name: str, currency: str) -> int:
    """Roll up to ROLL_BATCH postings of each zone's tail of the account into the zone's checkpoint
    (making it first if it has none), a transaction per zone; how many were rolled."""
    with database_errors():
        if not has_checkpoint(db.ledger, name, currency):
            # Before the first checkpoint, the postings from before checkpoints join the tail (idempotent).
            untracked = {**postings_query(name, currency), "tail": {"$exists": False}}
            db.ledger.update_many(untracked, {"$set": {"tail": True}}, comment=EVERY_SHARD)
        rolled = 0
        for zone in zones(db.zones):
            try:
                rolled += db.runner.run(lambda session, zone=zone: _roll(db, session, name, currency, zone))
            except DuplicateKeyError:  # another roll made the checkpoint first: roll onto it
                rolled += db.runner.run(lambda session, zone=zone: _roll(db, session, name, currency, zone))
        return rolled


def has_checkpoint(ledger: Collection, name: str, currency: str) -> bool:
    """Whether the account has a checkpoint in the currency (in any zone)."""
    query = {"account": name, "currency": currency, "kind": documents.CHECKPOINT}
    return ledger.find_one(query, {"_id": 1}, comment=EVERY_SHARD) is not None


def _roll(db: Database, session: ClientSession, name: str, currency: str, zone: range) -> int:
    """One zone's roll: a transaction on its shard alone (every filter names its buckets), or, for
    the one zone of a replica set, on all there is."""
    now = db.clock()
    identity, where = checkpoint_id(name, currency, zone), in_zone(zone)
    comment = None if where else EVERY_SHARD
    found = db.ledger.find_one({"_id": identity, **where}, session=session, comment=comment)
    tail_query = {"account": name, "currency": currency, "tail": True, **where}
    tail = db.ledger.find(tail_query, {"balanceDelta": 1, "kind": 1}, session=session, comment=comment)
    tail = tail.limit(ROLL_BATCH + 1)
    postings = [document for document in tail if document["kind"] == documents.ENTRY][:ROLL_BATCH]
    if found is not None and not postings:
        return 0
    total = sum(posting["balanceDelta"] for posting in postings)
    if found is None:
        made = new_checkpoint(name, currency, zone, now)
        made.update(balanceDelta=Int64(total), postings=Int64(len(postings)), rolls=Int64(1))
        db.ledger.insert_one(made, session=session, comment=comment)
    else:
        added = {"balanceDelta": total, "postings": len(postings), "rolls": 1}
        fields = {field: {"$toLong": {"$add": [f"${field}", Int64(amount)]}} for field, amount in added.items()}
        changed = db.ledger.update_one(
            {"_id": identity, **where, "rolls": found["rolls"]},
            [{"$set": {**fields, "updatedAt": now}}],
            session=session,
            comment=comment,
        )
        if changed.matched_count != 1:
            raise RetryTransaction
    if postings:
        ids = [posting["_id"] for posting in postings]
        marked = db.ledger.update_many(
            {"_id": {"$in": ids}, **where, "tail": True}, {"$set": {"tail": False}}, session=session, comment=comment
        )
        if marked.modified_count != len(ids):
            raise RetryTransaction
    return len(postings)


def roll_checkpoints(db: Database, time_limit: float) -> CheckpointReport:
    """Roll every account's tail into its checkpoint, a batch per transaction; no batch starts after
    `time_limit` seconds."""
    deadline = time.monotonic() + time_limit
    is_posting = {"$cond": [{"$eq": ["$kind", documents.ENTRY]}, 1, 0]}
    pipeline = [
        {"$match": {"tail": True}},
        {"$group": {"_id": {"account": "$account", "currency": "$currency"}, "postings": {"$sum": is_posting}}},
        {"$match": {"postings": {"$gt": 0}}},
        {"$sort": {"_id.account": 1, "_id.currency": 1}},
    ]
    with database_errors():
        tails = list(db.ledger.aggregate(pipeline, hint="account_tails", comment=EVERY_SHARD))
    accounts = postings = 0
    for tail in tails:
        while True:
            if time.monotonic() >= deadline:
                return CheckpointReport(accounts=accounts, postings=postings, finished=False)
            rolled = roll(db, tail["_id"]["account"], tail["_id"]["currency"])
            postings += rolled
            if rolled < ROLL_BATCH:
                break
        accounts += 1
    return CheckpointReport(accounts=accounts, postings=postings, finished=True)
