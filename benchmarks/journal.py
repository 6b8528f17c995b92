"""Pages of a 10,000-entry wallet's journal: the first and a deep one, of the whole journal and of one type.

The entries are made by the service's own posting rules and entry builder (postings.post,
documents.journal_entries) and inserted in bulk, on a wallet whose sequence, balance and held
match them, so the service reads them as its own. Each page
is timed through `list_transactions` (the wallet read and the find, as the API calls it), and the
exact find command the service sent is run through `explain` with executionStats for its plan.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import Int64, ObjectId
from pymongo.database import Database

from wallet_service import EntryType, WalletService
from wallet_service.ledger.postings import Posting, WalletState, post
from wallet_service.storage import documents
from wallet_service.storage.routing import route

from .monitor import CommandRecorder
from .replay import strip_framing

ENTRIES = 10_000
LIMIT = 50
DEEP_PAGE = 50
SAMPLES = 15  # timed calls per page; the median is reported
# The journal repeats this cycle. A quarter are deposits, so the deposits alone fill exactly
# DEEP_PAGE pages of LIMIT.
CYCLE = (
    Posting(EntryType.DEPOSIT, 100),
    Posting(EntryType.WITHDRAWAL, 40),
    Posting(EntryType.HOLD, 30),
    Posting(EntryType.RELEASE, 30),
)


@dataclass(frozen=True, slots=True)
class Plan:
    stages: str  # the winning plan's stages, outermost first: "SORT < FETCH < IXSCAN"
    index: str | None
    keys_examined: int
    docs_examined: int


@dataclass(frozen=True, slots=True)
class Page:
    label: str
    number: int
    entries: int
    sequences: str  # "10000..9951"
    milliseconds: float  # median of SAMPLES calls
    plan: Plan


def build(service: WalletService, database: Database, owner: str = "journal-owner") -> str:
    """A wallet with ENTRIES journal entries, inserted directly; returns its id."""
    wallet_id = service.create_wallet(owner, "USD").wallet.id
    wallet_oid = ObjectId(wallet_id)
    now = datetime.now(UTC).replace(microsecond=0)
    posted = post(WalletState(0, 0, 0), [CYCLE[index % len(CYCLE)] for index in range(ENTRIES)])
    entries = documents.journal_entries(wallet_oid, "USD", posted, f"bench:{wallet_id}", now)
    route(entries, {wallet_oid: owner})  # as the service writes them: with the owner's bucket
    for start in range(0, ENTRIES, 1000):
        database[documents.LEDGER].insert_many(entries[start : start + 1000], ordered=False)
    last = posted[-1]  # each cycle leaves nothing held
    database[documents.WALLETS].update_one(
        {"_id": wallet_oid},
        {
            "$set": {
                "sequence": Int64(last.sequence),
                "balance": Int64(last.balance_after),
                "held": Int64(last.held_after),
            }
        },
    )
    return wallet_id


def measure(service: WalletService, database: Database, recorder: CommandRecorder, wallet_id: str) -> list[Page]:
    pages = []
    for label, entry_type in (("whole journal", None), ("DEPOSIT entries", EntryType.DEPOSIT.value)):
        cursor = None
        for number in range(1, DEEP_PAGE + 1):
            if number in (1, DEEP_PAGE):
                pages.append(_page(service, database, recorder, wallet_id, label, number, entry_type, cursor))
            cursor = service.list_transactions(wallet_id, limit=LIMIT, cursor=cursor, entry_type=entry_type).next_cursor
    return pages


def _page(service, database, recorder, wallet_id, label, number, entry_type, cursor) -> Page:
    def read():
        return service.list_transactions(wallet_id, limit=LIMIT, cursor=cursor, entry_type=entry_type)

    recorder.capture()
    page = read()
    finds = [sent for sent in recorder.captured() if sent.name == "find" and sent.command["find"] == documents.LEDGER]
    explained = database.command({"explain": strip_framing(finds[-1].command), "verbosity": "executionStats"})
    timings = []
    for _ in range(SAMPLES):
        began = time.perf_counter()
        read()
        timings.append((time.perf_counter() - began) * 1000)
    items = page.items
    sequences = f"{items[0].sequence}..{items[-1].sequence}" if items else "none"
    return Page(label, number, len(items), sequences, statistics.median(timings), summarize(explained))


def summarize(explained: dict) -> Plan:
    """The winning plan's stages and index, and what executing it examined (mongod's and SecantusDB's shape)."""
    node = explained["queryPlanner"]["winningPlan"]
    node = node.get("queryPlan", node)  # mongod's slot-based engine nests the classic shape here
    stages = []
    index = None
    while isinstance(node, dict) and "stage" in node:
        stages.append(node["stage"])
        index = index or node.get("indexName")
        node = node.get("inputStage") or (node.get("inputStages") or [None])[0]
    stats = explained.get("executionStats", {})
    return Plan(
        " < ".join(stages),
        index,
        int(stats.get("totalKeysExamined", 0)),
        int(stats.get("totalDocsExamined", 0)),
    )
