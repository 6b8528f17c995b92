"""The service as its database grows: five operations near-empty and on a grown database, in interleaved rounds.

    python -m benchmarks scale [--wallets 30000 --documents 200000] [--rounds 11 --calls-per-round 15]

The grown database is copies of a town made through the service (benchmarks/town.py), to at least
`wallets` wallets and `documents` ledger documents; the near-empty one holds only the measured
wallets. Both are on the same server, and each gets the same measured wallets, made through the
service before any timing: a rich rider, a driver, and a wallet with a few hundred entries of its
own (deposits, holds captured with a split, the rest released). Then the platform accounts'
postings are rolled into their checkpoints on both (`roll_checkpoints`, as the every-minute
schedule does in production), and the rounds run on one thread: round i times every operation
near-empty, then every operation grown, so that the machine's noise hits both alike. An operation's
ops/s is the median over the rounds; its ratio the median of the rounds' grown / near-empty.

The operations, each money-moving call with an idempotency key of its own, through the service as
the API calls it: a deposit; a hold and its capture split between the driver's wallet and
`@revenue` (timed as one pair); the first journal page (limit 50) of the wallet with a few hundred
entries; that wallet's balance at a moment in the middle of its history; the `@revenue` balance.
Timings are reported, never checked: a ratio below TARGET is flagged in the report.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field

from pymongo import MongoClient
from pymongo.database import Database

from wallet_service import Request, WalletService
from wallet_service.storage import documents

from . import town
from .town import Growth

SIZES = {"default": (30_000, 200_000), "large": (100_000, 1_000_000)}  # (wallets, ledger documents)
TARGET = 0.80  # the floor for grown / near-empty
CURRENCY = "USD"
RICH = 10**12
DEPOSIT = 100
HOLD = 100
CAPTURE = 60  # of the hold; the other 40 released in the same transaction
DRIVER_SHARE = 45  # of the capture; the rest to @revenue
PAGE = 50  # the journal page's limit
JOURNAL_CYCLES = 75  # a deposit, a hold, its split capture: 4 entries a cycle (300, with the opening one 301)
WARM_UP = 3  # calls of each operation on each database before the rounds
ROUND_SECONDS = 3.0  # one operation's calls in one round stop after this long (at least one call)
OPERATIONS = ("deposit", "hold_capture", "journal_page", "balance_at", "revenue_balance")
LABELS = {
    "deposit": "deposit",
    "hold_capture": "hold, then its capture split to a driver's wallet and @revenue (the pair)",
    "journal_page": f"journal page (list_transactions, the first, limit {PAGE})",
    "balance_at": "balance at a time (mid-history of that wallet)",
    "revenue_balance": "@revenue balance (get_account)",
}
DATABASES = ("near-empty", "grown")


@dataclass(frozen=True, slots=True)
class Row:
    operation: str
    near_empty: float  # ops/s, median over the rounds
    grown: float
    ratio: float  # median over the rounds of grown / near-empty
    ratio_quartiles: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Rolled:
    postings: int  # platform postings rolled into their checkpoints
    calls: int  # calls of roll_checkpoints, each stopping at its time limit
    seconds: float


@dataclass
class Scale:
    """One scale measurement: the grown database's sizes and making, and the operations' rates."""

    wallets_wanted: int
    documents_wanted: int
    growth: Growth
    rolled: Rolled  # the rolls before the rounds, on the grown database
    rounds: int
    calls: int
    journal_entries: int
    rows: list[Row] = field(default_factory=list)

    def below_target(self) -> list[str]:
        return [row.operation for row in self.rows if row.ratio < TARGET]


class Subject:
    """The measured wallets on one database and a function per operation making its next call."""

    def __init__(self, service: WalletService, tag: str, *, journal_cycles: int = JOURNAL_CYCLES) -> None:
        if journal_cycles < 1:
            raise ValueError("the journal wallet needs at least one cycle")
        self.service = service
        self._keys: Iterator[str] = (f"{tag}-{number}" for number in itertools.count())
        self.rider_id = service.create_wallet(f"{tag}-rider", CURRENCY, opening_balance=RICH).wallet.id
        self.driver_id = service.create_wallet(f"{tag}-driver", CURRENCY).wallet.id
        self.journal_id = service.create_wallet(f"{tag}-journal", CURRENCY, opening_balance=RICH).wallet.id
        self.splits = [
            {"walletId": self.driver_id, "amount": DRIVER_SHARE},
            {"account": "@revenue", "amount": CAPTURE - DRIVER_SHARE},
        ]
        for cycle in range(journal_cycles):
            if cycle == journal_cycles // 2:  # the middle of its history: a moment between two entries
                time.sleep(0.002)  # the clock keeps milliseconds: no entry shares the middle's
                self.middle = documents.utc_now_ms()
                self.middle_sequence = service.get_wallet(self.journal_id).sequence
                time.sleep(0.002)
            service.deposit(self.journal_id, DEPOSIT, Request(idempotency_key=next(self._keys)))
            self._hold_capture(self.journal_id)
        self.journal_entries = service.get_wallet(self.journal_id).sequence
        self.calls: dict[str, Callable[[], object]] = {
            "deposit": lambda: service.deposit(self.rider_id, DEPOSIT, Request(idempotency_key=next(self._keys))),
            "hold_capture": lambda: self._hold_capture(self.rider_id),
            "journal_page": lambda: service.list_transactions(self.journal_id, limit=PAGE),
            "balance_at": lambda: service.balance_at(self.journal_id, self.middle),
            "revenue_balance": lambda: service.get_account("@revenue", CURRENCY),
        }

    def _hold_capture(self, wallet_id: str) -> object:
        held = self.service.create_reservation(wallet_id, HOLD, Request(idempotency_key=next(self._keys))).reservation
        return self.service.capture_reservation(
            held.id, CAPTURE, Request(idempotency_key=next(self._keys)), splits=self.splits
        )


def roll_until_done(service: WalletService) -> Rolled:
    """Roll every platform account's postings into its checkpoint, calling again while the time
    limit stops a call with tails left to roll."""
    began = time.perf_counter()
    postings = 0
    for calls in itertools.count(1):
        report = service.roll_checkpoints()
        postings += report.postings
        if report.finished:
            return Rolled(postings, calls, time.perf_counter() - began)
    raise AssertionError("unreachable")


class Rounds:
    """The five operations on both databases, measured round by round."""

    def __init__(self, subjects: dict[str, Subject], *, calls: int, seconds: float = ROUND_SECONDS) -> None:
        self._subjects = subjects
        self._calls = calls
        self._seconds = seconds
        self._rates: dict[str, dict[str, list[float]]] = {
            database: {operation: [] for operation in OPERATIONS} for database in DATABASES
        }
        for database in DATABASES:
            for operation in OPERATIONS:
                for _ in range(WARM_UP):
                    subjects[database].calls[operation]()

    def round(self) -> None:
        for database in DATABASES:
            for operation in OPERATIONS:
                call = self._subjects[database].calls[operation]
                made = 0
                began = time.perf_counter()
                while made < self._calls:
                    call()
                    made += 1
                    if time.perf_counter() - began >= self._seconds:
                        break
                self._rates[database][operation].append(made / (time.perf_counter() - began))

    def rows(self) -> list[Row]:
        rows = []
        for operation in OPERATIONS:
            near, grown = self._rates["near-empty"][operation], self._rates["grown"][operation]
            ratios = [big / small for big, small in zip(grown, near, strict=True)]
            quartiles = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
            rows.append(
                Row(
                    operation,
                    statistics.median(near),
                    statistics.median(grown),
                    statistics.median(ratios),
                    (quartiles[0], quartiles[2]),
                )
            )
        return rows


def measure(
    client: MongoClient,
    near_empty: Database,
    grown: Database,
    *,
    wallets: int,
    documents_: int,
    rounds: int,
    calls: int,
    journal_cycles: int = JOURNAL_CYCLES,
    made: town.Made | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Scale:
    """Grow `grown` (from `made`, or a town made for it), set the measured wallets up on both
    databases, roll, then the rounds."""
    progress(f"scale: growing a database to {wallets:,} wallets and {documents_:,} ledger documents")
    growth = town.grow(client, grown, wallets=wallets, documents_=documents_, made=made, progress=progress)
    sizes = f"{growth.wallets:,} wallets and {growth.documents:,} ledger documents"
    progress(f"scale: grown to {sizes} in {growth.seconds:.0f} s")
    services = {}
    subjects = {}
    for name, database in zip(DATABASES, (near_empty, grown), strict=True):
        progress(f"scale: the measured wallets on the {name} database")
        services[name] = service = WalletService(database, time_budget=30.0)
        service.ensure_indexes()
        subjects[name] = Subject(service, f"scale-{name}", journal_cycles=journal_cycles)
    progress("scale: rolling the platform accounts' postings into their checkpoints")
    roll_until_done(services["near-empty"])
    rolled = roll_until_done(services["grown"])
    progress(f"scale: rolled {rolled.postings:,} postings on the grown database in {rolled.seconds:.1f} s")
    bench = Rounds(subjects, calls=calls)
    for number in range(rounds):
        progress(f"scale: round {number + 1} of {rounds}, every operation near-empty, then grown")
        bench.round()
    return Scale(
        wallets_wanted=wallets,
        documents_wanted=documents_,
        growth=growth,
        rolled=rolled,
        rounds=rounds,
        calls=calls,
        journal_entries=subjects["grown"].journal_entries,
        rows=bench.rows(),
    )


def main(argv: list[str]) -> int:
    """`python -m benchmarks scale`: only this measurement, its report on stdout."""
    from . import report, suite

    wallets, documents_ = SIZES["default"]
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale", description=__doc__.splitlines()[0])
    parser.add_argument("--wallets", type=int, default=wallets, help=f"wallets of the grown database ({wallets:,})")
    parser.add_argument(
        "--documents", type=int, default=documents_, help=f"ledger documents of the grown database ({documents_:,})"
    )
    parser.add_argument("--rounds", type=int, default=11, help="rounds of every operation on both databases (11)")
    parser.add_argument("--calls-per-round", type=int, default=15, help="calls of each operation per round (15)")
    options = parser.parse_args(argv)
    if min(options.wallets, options.documents, options.rounds, options.calls_per_round) < 1:
        parser.error("--wallets, --documents, --rounds and --calls-per-round must be positive")
    began = time.perf_counter()
    with ExitStack() as stack:
        client, _, _, run = suite.connect(stack, settings=vars(options), command="python -m benchmarks scale")
        run.scale.append(suite.measure_scale(client, options.wallets, options.documents, options))
    print(report.render(run))
    suite.progress(f"total {time.perf_counter() - began:.0f} s")
    return 0
