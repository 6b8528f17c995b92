"""Which shard a command goes to: the bucket its filter names (docs/sharding.md).

A sharded cluster sends a command whose filter fixes the shard key's first field, `bucket` (by
equality or `$in`), to the shards holding those buckets only, and any other to every shard. So
every command the service sends for an owner names that owner's bucket, known without a read: from
the owner's id (routing.bucket_of), from a wallet's or a hold's id (routing.bucket_in), or from a
document read before. An id that carries no bucket (minted before routing.new_id) is looked up
once, outside any transaction, and remembered, since a document's bucket never changes; so is an
id minted before whose bytes look as if they carried one (about 1 in 16,000), which `make migrate`
lists in the marker. Such an id found nowhere never will be (every id minted since carries its
bucket), so a command for it goes to any one shard, which answers that it is not there: the bucket
of the id's own hash.

Targeting starts once no document is left without its bucket, which the marker in `routing` (a
collection never sharded) says: `make migrate` writes it once it has routed every document, and a
new database gets it when its indexes are first made. Until then no filter names a bucket (a
document without one would be missed), and a process without the marker reads it again every
RECHECK_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from bson import ObjectId
from pymongo.collection import Collection

from .routing import bucket_in, bucket_of, scatter
from .transactions import database_errors

MARKER = "targeting"  # the marker's _id in the `routing` collection
RECHECK_SECONDS = 60.0
REMEMBERED = 100_000  # looked-up ids a process keeps before it starts afresh


class Targets:
    """The part of a filter that names a bucket: `{"bucket": b}`, `{"bucket": {"$in": [...]}}`, or
    `{}` (every shard) while targeting is off, or for documents of which one has no bucket."""

    def __init__(
        self,
        wallets: Collection,
        ledger: Collection,
        routing: Collection,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wallets, self._ledger, self._routing, self._monotonic = wallets, ledger, routing, monotonic
        self._on = False
        self._read_at: float | None = None
        self._misleading: frozenset[ObjectId] = frozenset()
        self._found: dict[ObjectId, int] = {}

    # ---------------------------------------------------------------- the marker

    def load(self) -> bool:
        """Read the marker now; whether targeting is on."""
        with database_errors():
            marker = self._routing.find_one({"_id": MARKER})
        self._read_at = self._monotonic()
        if marker is not None:
            self._misleading = frozenset(marker.get("misleadingIds", ()))
            self._on = True
        return self._on

    def on(self) -> bool:
        if not self._on and (self._read_at is None or self._monotonic() - self._read_at >= RECHECK_SECONDS):
            self.load()
        return self._on

    def start_if_new(self, now: datetime) -> None:
        """Write the marker on a database with no wallet and no ledger document yet: everything it
        will hold is written with its bucket. (Idempotent; an existing marker is left as it is.)"""
        if self.load():
            return
        with database_errors():
            new = self._wallets.find_one({}, {"_id": 1}) is None and self._ledger.find_one({}, {"_id": 1}) is None
        if new:
            self.mark_routed([], now)

    def mark_routed(self, misleading_ids: list[ObjectId], now: datetime) -> None:
        """Say that every document has its bucket, listing the ids that carry another bucket than
        their document's (minted before, tagged only by chance): those are looked up, never trusted."""
        with database_errors():
            self._routing.update_one(
                {"_id": MARKER},
                {"$set": {"misleadingIds": misleading_ids}, "$setOnInsert": {"since": now}},
                upsert=True,
            )
        self.load()

    # ---------------------------------------------------------------- filters

    def owner(self, owner_id: str) -> dict:
        """For a document of this owner (an operation record, a wallet claim)."""
        return {"bucket": bucket_of(owner_id)} if self.on() else {}

    def wallet(self, wallet_id: ObjectId) -> dict:
        """For the wallet, or its entries, holds and events."""
        return self.bucket(self.wallet_bucket(wallet_id))

    def hold(self, reservation_id: ObjectId) -> dict:
        return self.bucket(self.hold_bucket(reservation_id))

    def of(self, document: dict) -> dict:
        """For a document read before (or one of its owner's)."""
        return self.bucket(document.get("bucket"))

    def bucket(self, bucket: int | None) -> dict:
        return {"bucket": bucket} if bucket is not None and self.on() else {}

    def among(self, buckets: Iterable[int | None]) -> dict:
        """For documents of several buckets (`$in`); none unknown, else every shard."""
        found = set(buckets)
        if not self.on() or None in found or not found:
            return {}
        return {"bucket": {"$in": sorted(bucket for bucket in found if bucket is not None)}}

    # ---------------------------------------------------------------- buckets

    def wallet_bucket(self, wallet_id: ObjectId) -> int | None:
        return self._bucket(self._wallets, {}, wallet_id)

    def hold_bucket(self, reservation_id: ObjectId) -> int | None:
        return self._bucket(self._ledger, {"kind": "reservation"}, reservation_id)

    def _bucket(self, collection: Collection, kind: dict, oid: ObjectId) -> int | None:
        """The id's bucket: the one it carries, else (an id minted before) the one its document has,
        read outside any transaction, or for an id found nowhere its hash's; None while targeting
        is off."""
        if not self.on():
            return None
        carried = bucket_in(oid)
        if carried is not None and oid not in self._misleading:
            return carried
        if oid in self._found:
            return self._found[oid]
        with database_errors():
            document = collection.find_one({"_id": oid, **kind}, {"bucket": 1}, comment=scatter("id minted before"))
        if document is not None and "bucket" not in document:
            return None  # not routed after all: every shard, until it is
        bucket = bucket_of(str(oid)) if document is None else document["bucket"]
        if len(self._found) >= REMEMBERED:
            self._found.clear()
        self._found[oid] = bucket
        return bucket
