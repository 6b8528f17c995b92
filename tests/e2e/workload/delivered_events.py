"""What make run's bus delivered (its events file, one EventBridge-shaped JSON line each), checked
against the database at the end of a workload: nothing lost, nothing invented, copies only under
the same id, and each wallet's events replay to exactly its final balance and held amount."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bson import ObjectId
from pymongo.database import Database

from wallet_service.storage.documents import EVENT, LEDGER, WALLETS

PUBLISHED_WITHIN_SECONDS = 90


def wait_until_published(database: Database) -> None:
    """Until the outbox has nothing unsent: the functions publish right after their commit, the
    schedule whatever a function left (a fault, no time left)."""
    deadline = time.monotonic() + PUBLISHED_WITHIN_SECONDS
    while database[LEDGER].count_documents({"kind": EVENT, "sent": False}) and time.monotonic() < deadline:
        time.sleep(0.5)
    unsent = database[LEDGER].count_documents({"kind": EVENT, "sent": False})
    assert unsent == 0, f"{unsent} events still unsent after {PUBLISHED_WITHIN_SECONDS} s"


def delivered(events_file: Path) -> dict[str, dict]:
    """Each delivered event's detail by its id; a copy must be the same event."""
    details: dict[str, dict] = {}
    for line in events_file.read_text().splitlines():
        detail = json.loads(line)["detail"]
        seen = details.setdefault(detail["id"], detail)
        assert seen == detail, f"two different events under one id: {seen} / {detail}"
    return details


def assert_events_replay_the_ledger(database: Database, events_file: Path, wallet_ids: list[str]) -> int:
    """The events of these wallets: every one in the outbox was delivered and nothing else was;
    each wallet's run from version 1 has no gap (every change of a wallet is an event: the
    workload sets no alerts); and the entries they carry sum to the wallet's balance and held,
    which the newest event also states. Returns how many events were checked."""
    wait_until_published(database)
    details = delivered(events_file)
    oids = [ObjectId(wallet_id) for wallet_id in wallet_ids]
    stored = {event["_id"] for event in database[LEDGER].find({"kind": EVENT, "walletId": {"$in": oids}}, {"_id": 1})}
    ours = {event_id: detail for event_id, detail in details.items() if detail["walletId"] in set(wallet_ids)}
    assert set(ours) == stored, (
        f"{len(stored - set(ours))} events never delivered, {len(set(ours) - stored)} delivered but not in the outbox"
    )
    for wallet in database[WALLETS].find({"_id": {"$in": oids}}):
        events = sorted(
            (detail for detail in ours.values() if detail["walletId"] == str(wallet["_id"])),
            key=lambda detail: (detail["version"], detail["index"]),
        )
        movements = [detail for detail in events if detail["index"] == 0]
        assert [detail["version"] for detail in movements] == list(range(1, wallet["version"] + 1)), wallet["_id"]
        entries = [entry for detail in events for entry in detail["data"].get("entries", [])]
        assert sorted(entry["sequence"] for entry in entries) == list(range(1, wallet["sequence"] + 1)), wallet["_id"]
        balance = sum(entry["balanceDelta"] for entry in entries)
        held = sum(entry["heldDelta"] for entry in entries)
        assert (balance, held) == (wallet["balance"], wallet["held"]), (wallet["_id"], balance, held)
        newest = movements[-1]["data"]["wallet"]
        assert (newest["balance"], newest["held"], newest["status"]) == (
            wallet["balance"],
            wallet["held"],
            wallet["status"],
        )
    return len(ours)
