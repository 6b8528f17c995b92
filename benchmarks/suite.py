"""The benchmark run: everything against one server, then one Markdown report on stdout.

In order: round trips per operation; on one thread, each operation beside its two floors; the money
operations on 1, 2, 4 and 8 threads with the database's failed replies counted; pages of a
10,000-entry journal with their plans; expiry; a deposit's latency with and without publishing its
event, the publisher's events per second, and a deposit over HTTP with events on and with no sink
(two make run servers); then five operations near-empty and on a grown database (benchmarks/scale.py:
30,000 wallets and 200,000 ledger documents; `--scale large` also 100,000 and 1,000,000). Progress
goes to stderr. The exit status is 1 when an operation needs more round trips than its budget;
timings are reported and never checked.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime

from pymongo import MongoClient

from devtools.embedded_mongo import EmbeddedMongo, external_uri
from wallet_service import WalletService
from wallet_service.use_cases import publishing

from . import answer_first, events, floors, journal, provenance, report, scale, throughput, transaction_lengths
from .monitor import CommandRecorder
from .roundtrips import measure_expiry, measure_operation
from .scenarios import OPERATIONS, ROUND_TRIP_ONLY, THROUGHPUT_OPERATIONS
from .server import ConflictCounters, describe
from .shards import measure_shards

EXPIRY_ROUND_TRIP_HOLDS = 100


def main(argv: list[str]) -> int:
    options = _parse(argv)
    began = time.perf_counter()
    with ExitStack() as stack:
        client, recorder, counters, run = connect(
            stack, settings={**vars(options), "expiry_trip_holds": EXPIRY_ROUND_TRIP_HOLDS}
        )
        _measure(client, recorder, counters, options, run)
        for size in SCALES[options.scale]:
            wallets, documents_ = scale.SIZES[size]
            run.scale.append(measure_scale(client, wallets, documents_, options, run))
    print(report.render(run))
    progress(f"total {time.perf_counter() - began:.0f} s")
    return 1 if report.over_budget(run) else 0


# The scale measurements of each --scale: the sizes of scale.SIZES measured, in order.
SCALES = {"default": ("default",), "large": ("default", "large"), "none": ()}


def connect(
    stack: ExitStack, *, settings: dict, command: str = "make bench"
) -> tuple[MongoClient, CommandRecorder, ConflictCounters, report.Run]:
    """A client on MONGODB_URI's server or on an embedded one started for the run (both closed by
    `stack`), with its command recorder and conflict counters, and the run's report with its header."""
    uri = external_uri()
    if uri is None:
        progress("starting the embedded database")
        uri = stack.enter_context(EmbeddedMongo()).uri
    recorder = CommandRecorder()
    client = MongoClient(uri, serverSelectionTimeoutMS=5000, maxPoolSize=64, event_listeners=[recorder])
    stack.callback(client.close)
    counters = ConflictCounters(client)
    run = report.Run(
        header=_header(describe(client, embedded=external_uri() is None)),
        settings=settings,
        server_counters=counters.available,
        command=command,
        database_uri=uri,
    )
    return client, recorder, counters, run


def measure_scale(client: MongoClient, wallets: int, documents_: int, options, run: report.Run) -> scale.Scale:
    """benchmarks/scale.py at one size, on two databases of its own, then the jobs' transaction
    lengths on the grown one (benchmarks/transaction_lengths.py). They are dropped afterwards on
    MONGODB_URI's server only: the embedded one's storage goes with it at the end of the run, and
    SecantusDB drops a database by deleting each document's and index entry's key, one by one
    (about 2 ms a ledger document here: minutes for a grown database)."""
    drop = external_uri() is not None
    with (
        _database(client, "scale_near_empty", drop=drop) as (_, near),
        _database(client, "scale_grown", drop=drop) as (_, grown),
    ):
        measured = scale.measure(
            client,
            client[near],
            client[grown],
            wallets=wallets,
            documents_=documents_,
            rounds=options.rounds,
            calls=options.calls_per_round,
            progress=progress,
        )
        where = (
            f"the grown database ({measured.growth.wallets:,} wallets, {measured.growth.documents:,} ledger documents)"
        )
        run.transaction_lengths[where] = transaction_lengths.measure(run.database_uri, grown, progress=progress)
        return measured


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=11, help="rounds of each interleaved measurement: floors, events, scale (11)"
    )
    parser.add_argument(
        "--calls-per-round", type=int, default=15, help="calls of each path (or operation) per round (15)"
    )
    parser.add_argument("--threads", default="1,2,4,8", help="thread counts of the throughput runs (1,2,4,8)")
    parser.add_argument("--calls", type=int, default=400, help="most calls of one throughput run, all threads (400)")
    parser.add_argument("--seconds", type=float, default=1.5, help="time limit of one throughput run (1.5)")
    parser.add_argument(
        "--expiry-holds",
        type=int,
        default=1000,
        help="due holds of the expiry run, 1..10000 (1000)",
    )
    parser.add_argument(
        "--publisher-events", type=int, default=2000, help="unsent events of the publisher's run (2000)"
    )
    parser.add_argument("--publisher-wallets", type=int, default=200, help="wallets those events are spread over (200)")
    parser.add_argument(
        "--http-deposits", type=int, default=300, help="deposits over HTTP, events on and no sink; 0: none (300)"
    )
    parser.add_argument(
        "--scale",
        choices=tuple(SCALES),
        default="default",
        help="the database grown to 30,000 wallets and 200,000 ledger documents (default), also to 100,000 "
        "and 1,000,000 (large), or not at all (none)",
    )
    options = parser.parse_args(argv)
    try:
        options.threads = sorted({int(count) for count in options.threads.split(",")})
    except ValueError:
        parser.error("--threads takes comma-separated thread counts, such as 1,2,4,8")
    if min(options.rounds, options.calls_per_round, options.calls, *options.threads) < 1 or options.seconds <= 0:
        parser.error("--rounds, --calls-per-round, --threads, --calls and --seconds must be positive")
    if not 1 <= options.publisher_wallets <= min(options.publisher_events, publishing.MAX_WALLETS):
        parser.error("--publisher-wallets must be between 1 and --publisher-events, and at most 500")
    if not 1 <= options.expiry_holds <= 10_000:
        parser.error("--expiry-holds must be between 1 and 10000")
    return options


def _measure(
    client: MongoClient, recorder: CommandRecorder, counters: ConflictCounters, options, run: report.Run
) -> None:
    with _database(client, "round_trips") as (service, _):
        for operation in (*OPERATIONS, *ROUND_TRIP_ONLY):
            progress(f"round trips: {operation}")
            run.round_trips[operation] = measure_operation(service, recorder, operation, operation)
            run.shards[operation] = measure_shards(service, recorder, operation, f"{operation}-shards")
    progress(f"round trips: {report.EXPIRY} ({EXPIRY_ROUND_TRIP_HOLDS} due holds)")
    with _database(client, "round_trips_expiry") as (service, _):  # of its own: the holds above are due too
        run.round_trips[report.EXPIRY] = measure_expiry(service, recorder, "expiry", EXPIRY_ROUND_TRIP_HOLDS)

    with ExitStack() as databases:  # every operation's database stays until all rounds are done
        rounds: dict[str, floors.FloorRounds] = {}
        for operation in OPERATIONS:
            progress(f"one thread, service and floors: setting up {operation}")
            service, name = databases.enter_context(_database(client, "floors"))
            rounds[operation] = floors.FloorRounds(
                client, recorder, service, name, operation, rounds=options.rounds, calls=options.calls_per_round
            )
        for number in range(options.rounds):
            progress(f"one thread, service and floors: round {number + 1} of {options.rounds}, every operation")
            for operation in OPERATIONS:
                rounds[operation].round(number)
        run.floors = {operation: bench.result() for operation, bench in rounds.items()}

    for operation in THROUGHPUT_OPERATIONS:
        # Enough calls for twice the time limit at the one-thread rate just measured, so a slow
        # operation (a capture) does not prepare hundreds of holds it never uses.
        calls = min(options.calls, math.ceil(2 * run.floors[operation].service * options.seconds))
        for threads in options.threads:
            progress(f"threads: {operation} on {threads}")
            with _database(client, "threads") as (service, _):
                run.threads.setdefault(operation, {})[threads] = throughput.threaded(
                    service,
                    operation,
                    operation,
                    threads=threads,
                    calls_per_thread=max(5, math.ceil(calls / threads)),
                    time_limit=options.seconds,
                    recorder=recorder,
                    counters=counters,
                )

    progress(f"journal: {journal.ENTRIES} entries")
    with _database(client, "journal") as (service, name):
        wallet_id = journal.build(service, client[name])
        run.journal = journal.measure(service, client[name], recorder, wallet_id)

    progress(f"expiry: {options.expiry_holds} holds")
    with _database(client, "expiry") as (service, _):
        run.expiry = throughput.expiry(service, "expiry", holds=options.expiry_holds)

    progress("events: a deposit with and without publishing its event")
    with _database(client, "events") as (service, _):
        run.events = events.latency(service, recorder, rounds=options.rounds, calls=options.calls_per_round)
    shapes = ((options.publisher_events, options.publisher_wallets), (events.ONE_WALLET_EVENTS, 1))
    for count, wallets in shapes:
        progress(f"events: the publisher over {count} unsent events of {wallets} wallets")
        with _database(client, "publisher") as (service, _):
            run.publishers.append(events.publisher(service, recorder, "publisher", events=count, wallets=wallets))
    if options.http_deposits:
        progress(f"events: {options.http_deposits} deposits over HTTP, events on and no sink (two make run servers)")
        run.http = answer_first.http_latency(run.database_uri, options.http_deposits)


@contextmanager
def _database(client: MongoClient, purpose: str, *, drop: bool = True) -> Iterator[tuple[WalletService, str]]:
    """A service on a database of its own with the indexes in place, dropped afterwards (also on a
    real deployment) unless `drop` is false."""
    name = f"wallet_bench_{purpose}_{uuid.uuid4().hex[:8]}"
    try:
        # A roomy retry budget: calls colliding under threads should retry, not give up.
        service = WalletService(client[name], time_budget=30.0)
        service.ensure_indexes()
        yield service, name
    finally:
        if drop:
            client.drop_database(name)


def _header(database: str) -> dict[str, str]:
    return {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Machine": provenance.machine(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "Database": database,
        "Commit": provenance.commit(),
    }


STARTED = time.perf_counter()


def progress(message: str) -> None:
    print(f"[bench {time.perf_counter() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)
