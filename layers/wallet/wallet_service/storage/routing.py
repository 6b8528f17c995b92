"""The routing key: where a document lives in a sharded cluster (docs/sharding.md).

Every document of `wallets` and `ledger` that belongs to an owner carries `bucket`, a small integer
computed from the owner's id, so that all of an owner's wallets, entries, holds, events and
operation records would share a shard under the shard key {bucket, _id}, and an `_id` always goes
with the same bucket (uniqueness within a shard is then uniqueness everywhere). A platform posting
goes with the owner side of its movement, so `@revenue`'s postings spread over every bucket.
What belongs to no owner (a platform account's checkpoint) carries none. The registry of opened
accounts is a collection of its own that is never sharded (documents.ACCOUNTS). Which bucket each
command names, so that it reaches one shard, is targets.py's business.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping

from bson import ObjectId

# 1,024 buckets: zones of whole bucket ranges spread them over up to hundreds of shards, and an
# owner's bucket never changes (it is a hash of the owner's id, not a counter).
BUCKETS = 1024
SHARD_KEYS = {"wallets": {"bucket": 1, "_id": 1}, "ledger": {"bucket": 1, "_id": 1}}


# The commands that reach every shard by design, each carrying its reason as its `comment` (so it
# shows in the server's logs and profiler): the only ones whose filter names no bucket (sharding.md).
SCATTER = {
    "due holds": "the expiry job's search for holds due, whoever owns them",
    "unsent events": "the scheduled publisher's search for wallets with events waiting",
    "audit": "the hourly audit, which reads the whole ledger",
    "migration": "make migrate, which reads and routes the whole ledger",
    "platform balances": "a platform account's postings and checkpoints, which span every owner",
    "id minted before": "the one lookup of the bucket of an id that carries none",
}


def scatter(reason: str) -> str:
    """The `comment` of a command that reaches every shard by design: one of SCATTER's reasons."""
    if reason not in SCATTER:
        raise ValueError(f"not a documented reason to reach every shard: {reason!r}")
    return f"every shard: {reason}"


def zones(count: int) -> list[range]:
    """The buckets of each of `count` zones (one per shard): whole, contiguous, about equal ranges
    of 0..BUCKETS-1. The jobs batch by zone (SHARD_ZONES), `make shard-plan` prints them."""
    if not 1 <= count <= BUCKETS:
        raise ValueError(f"zones must be 1 to {BUCKETS}")
    bounds = [number * BUCKETS // count for number in range(count + 1)]
    return [range(low, high) for low, high in itertools.pairwise(bounds)]


def zone_of(bucket: object, count: int) -> int:
    """The zone a bucket falls in; a document without one (MinKey, null) sorts into the first."""
    if not isinstance(bucket, int) or isinstance(bucket, bool):
        return 0
    return -(-(bucket + 1) * count // BUCKETS) - 1  # the last zone whose first bucket is at most `bucket`


def bucket_of(owner_id: str) -> int:
    """The owner's bucket: the first 4 bytes of the SHA-256 of its id, modulo BUCKETS."""
    return int.from_bytes(hashlib.sha256(owner_id.encode()).digest()[:4], "big") % BUCKETS


# Wallet and hold ids carry their owner's bucket (`new_id`), so a command on an id a route names
# alone (`/v1/reservations/{id}`) can be targeted without a read first. Byte 4 of such an ObjectId
# is ID_TAG and bytes 5-6 the bucket; a random ObjectId (one minted before) has the tag by chance
# 1 time in 256 and a bucket under BUCKETS besides 1 time in 64: `make migrate` lists those, and
# targets.py looks them up rather than trust them.
ID_TAG = 0xB5


def new_id(bucket: int) -> ObjectId:
    """A fresh ObjectId carrying `bucket`: its time, ID_TAG, the bucket, then the last two of the
    process's random bytes and its counter (unique and ordered in time within a process, as any)."""
    raw = ObjectId().binary
    return ObjectId(raw[:4] + bytes([ID_TAG]) + bucket.to_bytes(2, "big") + raw[7:])


def bucket_in(oid: ObjectId) -> int | None:
    """The bucket an id minted by `new_id` carries; None for an id that carries none."""
    raw = oid.binary
    bucket = int.from_bytes(raw[5:7], "big")
    return bucket if raw[4] == ID_TAG and bucket < BUCKETS else None


def owner_of(document: dict, owners: Mapping[ObjectId, str]) -> str | None:
    """The owner a document goes with: its own `ownerId` (a wallet, a hold, an event, an operation
    record), a claim's owner, else the owner of its wallet (a wallet's entry) or of the wallet on
    the other side (a platform posting). `owners`: the wallets a movement touched, by id."""
    if "ownerId" in document:
        return document["ownerId"]
    if isinstance(document["_id"], dict) and "ownerId" in document["_id"]:
        return document["_id"]["ownerId"]
    wallet_id = document.get("walletId", document.get("counterpartyWalletId"))
    return owners.get(wallet_id)


def route(
    documents: Iterable[dict], owners: Mapping[ObjectId, str] | None = None, *, fallback: int | None = None
) -> None:
    """Give each document its `bucket`, from its owner (owner_of), else `fallback` (an expiry
    batch's record: its zone's first hold's). A document with neither is a bug, never written."""
    for document in documents:
        owner = owner_of(document, owners or {})
        if owner is None and fallback is None:
            raise AssertionError(f"no owner to route {document['_id']!r} by")
        document["bucket"] = bucket_of(owner) if owner is not None else fallback
