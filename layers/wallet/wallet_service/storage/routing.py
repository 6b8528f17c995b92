"""The routing key: where a document would live in a sharded cluster (issue 27, in progress).

Every document of `wallets` and `ledger` that belongs to an owner carries `bucket`, a small integer
computed from the owner's id, so that all of an owner's wallets, entries, holds, events and
operation records would share a shard under the shard key {bucket, _id}, and an `_id` always goes
with the same bucket (uniqueness within a shard is then uniqueness everywhere). A platform posting
goes with the owner side of its movement, so `@revenue`'s postings spread over every bucket.
Not routed yet: the platform's checkpoints, and an expiry batch's record beyond its first hold's
owner; the commands do not target by bucket yet. The registry of opened accounts is a collection of
its own that is never sharded (documents.ACCOUNTS).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from bson import ObjectId

# 1,024 buckets: zones of whole bucket ranges spread them over up to hundreds of shards, and an
# owner's bucket never changes (it is a hash of the owner's id, not a counter).
BUCKETS = 1024
SHARD_KEYS = {"wallets": {"bucket": 1, "_id": 1}, "ledger": {"bucket": 1, "_id": 1}}


def bucket_of(owner_id: str) -> int:
    """The owner's bucket: the first 4 bytes of the SHA-256 of its id, modulo BUCKETS."""
    return int.from_bytes(hashlib.sha256(owner_id.encode()).digest()[:4], "big") % BUCKETS


# Wallet and hold ids carry their owner's bucket (`new_id`), so a command on an id a route names
# alone (`/v1/reservations/{id}`) can be targeted without a read first. Byte 4 of such an ObjectId
# is ID_TAG and bytes 5-6 the bucket; a random ObjectId (one minted before) has the tag by chance
# 1 time in 256 and a bucket under BUCKETS besides 1 time in 64, so a reader confirms a miss.
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


def route(documents: Iterable[dict], owners: Mapping[ObjectId, str] | None = None, *, fallback: str = "") -> None:
    """Give each document its `bucket`, from its owner (owner_of), else `fallback`'s (an expiry
    batch's record: its first hold's owner). A document with neither is a bug, never written."""
    for document in documents:
        owner = owner_of(document, owners or {}) or fallback
        if not owner:
            raise AssertionError(f"no owner to route {document['_id']!r} by")
        document["bucket"] = bucket_of(owner)
