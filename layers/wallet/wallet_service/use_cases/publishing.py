"""Publishing the outbox (outbox.py): unsent events go to a sink (EventBridge when deployed, a file
locally), each wallet's in order, and are marked sent once the sink took them.

At least once, never dropped: an event is marked sent only after the sink accepted it, so a
publisher that dies in between sends it again later, with the same id (consumers deduplicate by
`id`). In order per wallet: each round sends at most one event of each wallet (the next one by
version and index), and a wallet whose event the sink refused sends nothing more in this run, so
no event of a wallet is ever sent before an earlier one of the same wallet. A refused event is
tried again in the next round, up to ATTEMPTS times, then left for the next run.

Who publishes: the function that committed a movement, once it has answered, the unsent events of
the wallets its transactions wrote events for (outbox.committed_events: no query to find them;
older ones first, which a function that died before publishing left); and the scheduled publisher,
every minute, the wallets whose oldest unsent event is a few seconds old.

Two commands for a run that fits MARK_BATCH: one read of the wallets' unsent events and one update
marking the sent ones, after the sink took them (a run marks as it goes only past MARK_BATCH). On a
sharded cluster, two per zone of the wallets' buckets (routing.zones), each naming its buckets so
it reaches one shard; the scheduled publisher's search for due wallets reads every shard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from bson import ObjectId

from ..ledger.models import WalletModel
from ..storage import documents
from ..storage.outbox import CommittedEvents
from ..storage.queries import Database
from ..storage.routing import scatter, zone_of

logger = logging.getLogger("wallet_service")

ATTEMPTS = 3  # tries of one event in one run
RETRY_PAUSE = 0.1  # seconds after a round in which the sink refused something
MAX_ENTRIES = 10  # events per call to the sink (PutEvents takes at most 10)
MAX_WALLETS = 500  # wallets the scheduled publisher takes in one go
MARK_BATCH = 500  # sent events marked in one update; fewer wait for the end of the run


class EventSink(Protocol):
    def put(self, events: Sequence[dict]) -> list[bool]:
        """Send the events (at most MAX_ENTRIES); whether the sink accepted each one, in order."""


class PublishReport(WalletModel):
    sent: int
    failed: int  # events the sink refused ATTEMPTS times in this run: still unsent
    pending: int  # events not tried in this run (time ran out, or an earlier one of their wallet failed)


def event_detail(event: dict) -> dict:
    """What a consumer receives of an event (EventBridge's `detail`): see schemas/wallet-event.schema.json."""
    return {
        "id": event["_id"],
        "type": event["type"],
        "walletId": str(event["walletId"]),
        "ownerId": event["ownerId"],
        "currency": event["currency"],
        "version": event["version"],
        "index": event["index"],
        "sequence": event["sequence"],
        "operationId": event["operationId"],
        "occurredAt": event["occurredAt"].isoformat().replace("+00:00", "Z"),
        "data": event["data"],
    }


def publish_committed(db: Database, sink: EventSink, committed: CommittedEvents, time_limit: float) -> PublishReport:
    """Right after a call: the unsent events of every wallet its transactions wrote events for (its
    own, and older ones a publisher that died left), in one read, marked sent in one update."""
    wallets = {wallet_id: db.where.wallet_bucket(wallet_id) for wallet_id in committed.wallet_ids}
    return publish_wallets(db, sink, wallets, time_limit)


def publish_due(db: Database, sink: EventSink, older_than: timedelta, time_limit: float) -> PublishReport:
    """The scheduled publisher: wallets whose oldest unsent event is older than `older_than`."""
    cutoff = db.clock() - older_than
    query = {"kind": documents.EVENT, "sent": False, "createdAt": {"$lte": cutoff}}
    found = db.read(
        lambda: list(
            db.ledger.find(query, {"walletId": 1, "bucket": 1}, comment=scatter("unsent events"))
            .sort("createdAt", 1)
            .limit(MAX_WALLETS)
        )
    )
    return publish_wallets(db, sink, {event["walletId"]: event.get("bucket") for event in found}, time_limit)


def publish_wallets(
    db: Database, sink: EventSink, wallets: Mapping[ObjectId, int | None], time_limit: float
) -> PublishReport:
    """Send every unsent event of these wallets (with their buckets), each wallet's in order, within
    `time_limit` seconds: one zone's wallets after another."""
    stop_at = time.monotonic() + time_limit
    zones: dict[int, dict[ObjectId, int | None]] = {}
    for wallet_id, bucket in wallets.items():
        zones.setdefault(zone_of(bucket, db.zones), {})[wallet_id] = bucket
    sent = failed = pending = 0
    for zone in zones.values():
        report = _publish_zone(db, sink, zone, stop_at)
        sent, failed, pending = sent + report.sent, failed + report.failed, pending + report.pending
    return PublishReport(sent=sent, failed=failed, pending=pending)


def _publish_zone(
    db: Database, sink: EventSink, wallets: Mapping[ObjectId, int | None], stop_at: float
) -> PublishReport:
    where = db.where.among(wallets.values())
    query = {"kind": documents.EVENT, **where, "sent": False, "walletId": {"$in": list(wallets)}}
    events = db.read(lambda: list(db.ledger.find(query).sort([("walletId", 1), ("version", 1), ("index", 1)])))
    queues: dict[ObjectId, list[dict]] = {}
    for event in events:
        queues.setdefault(event["walletId"], []).append(event)
    run = _Run(db, sink, where)
    try:
        _send_in_order(run, queues, stop_at)
    finally:
        run.mark_sent()  # what the sink took, also when the database failed on the way (best effort)
    failed = len(run.given_up())
    return PublishReport(sent=len(run.sent), failed=failed, pending=len(events) - len(run.sent) - failed)


def _send_in_order(run: _Run, queues: dict[ObjectId, list[dict]], stop_at: float) -> None:
    """Rounds of each wallet's next event until every queue is empty or the time is up."""
    while queues and time.monotonic() < stop_at:
        heads = [queue[0] for queue in queues.values()]
        for start in range(0, len(heads), MAX_ENTRIES):
            run.send(heads[start : start + MAX_ENTRIES])
        if any(head["_id"] not in run.sent for head in heads):
            time.sleep(RETRY_PAUSE)  # a refusal is mostly throttling: give the sink a moment
        for wallet_id in list(queues):
            queue = queues[wallet_id]
            if queue[0]["_id"] in run.sent:
                queue.pop(0)
            elif run.attempts[queue[0]["_id"]] >= ATTEMPTS:
                del queues[wallet_id]  # its later events wait for the next run, in order
                continue
            if not queue:
                del queues[wallet_id]


@dataclass
class _Run:
    db: Database
    sink: EventSink
    where: dict  # the buckets of its wallets' events (Targets)

    def __post_init__(self) -> None:
        self.sent: set[str] = set()
        self.attempts: dict[str, int] = {}
        self.unmarked: list[str] = []  # taken by the sink, not yet marked sent

    def send(self, events: list[dict]) -> None:
        try:
            accepted = self.sink.put(events)
        except Exception:  # the sink is down: each event counts as refused
            logger.exception("publishing %d events failed", len(events))
            accepted = [False] * len(events)
        for event, ok in zip(events, accepted, strict=True):
            self.attempts[event["_id"]] = self.attempts.get(event["_id"], 0) + 1
            if ok:
                self.sent.add(event["_id"])
        self.unmarked.extend(event["_id"] for event, ok in zip(events, accepted, strict=True) if ok)
        if len(self.unmarked) >= MARK_BATCH:
            self.mark_sent()

    def mark_sent(self) -> None:
        done, self.unmarked = self.unmarked, []
        if done:
            now: datetime = self.db.clock()
            self.db.read(
                lambda: self.db.ledger.update_many(
                    {"_id": {"$in": done}, **self.where, "kind": documents.EVENT},
                    {"$set": {"sent": True, "sentAt": now}},
                )
            )

    def given_up(self) -> list[str]:
        return [
            event_id for event_id, count in self.attempts.items() if count >= ATTEMPTS and event_id not in self.sent
        ]
