"""The benchmark run: round trips, then throughput, then one markdown table on stdout.

Progress goes to stderr, so stdout is only the results. The exit status is 1 when an
operation needs more round trips than its budget; ops/s are reported and never checked.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.metadata import version

from pymongo import MongoClient

from devtools.embedded_mongo import EmbeddedMongo, external_uri
from wallet_core import WalletService

from . import throughput, wire_layer
from .monitor import CommandRecorder
from .roundtrips import RoundTrips, measure_expiry, measure_operation
from .scenarios import CALLER_RETRIES, OPERATIONS, THROUGHPUT_OPERATIONS
from .throughput import Rate

EXPIRY = "expire_reservations"
EXPIRY_ROUND_TRIP_HOLDS = 100

# Most round trips one call may take (per hold for expiry); the benchmark fails above them.
BUDGETS: dict[str, float] = {
    "deposit": 3,
    "withdraw": 3,
    "create_reservation": 3,
    "capture_reservation": 4,
    "release_reservation": 4,
    "transfer": 4,
    EXPIRY: 0.25,
}
# Round trips of the TypeScript implementation this service replaces, for comparison.
TYPESCRIPT: dict[str, str] = {
    "create_wallet": "n/a",
    "deposit": "6",
    "withdraw": "5",
    "create_reservation": "6",
    "capture_reservation": "7",
    "release_reservation": "7",
    "transfer": "n/a",
    EXPIRY: "2.5",
}
LABELS = {"capture_reservation": "capture_reservation (partial)"}


@dataclass
class Results:
    threads: int
    round_trips: dict[str, RoundTrips] = field(default_factory=dict)
    sequential: dict[str, Rate] = field(default_factory=dict)
    threaded: dict[str, Rate] = field(default_factory=dict)
    expiry: Rate | None = None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--calls", type=int, help="most sequential calls per operation (default 300 with MONGODB_URI, else 100)"
    )
    parser.add_argument("--threads", type=int, default=8, help="threads, each on its own wallets (default 8)")
    parser.add_argument(
        "--calls-per-thread", type=int, help="most calls per thread (default 40 with MONGODB_URI, else 12)"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time limit of each ops/s measurement (default 3)")
    parser.add_argument(
        "--expiry-holds",
        type=int,
        default=None,
        help="holds in the expiry throughput run, at most 1000 (default 1000 with MONGODB_URI, else 100: the "
        "embedded server answers an _id $in query by scanning the collection, so 1000 holds take ~40 s there)",
    )
    options = parser.parse_args(argv)
    uri = external_uri()
    # The embedded server slows down as the ledger grows (see _notes), so its runs stay short.
    if options.calls is None:
        options.calls = 300 if uri else 100
    if options.calls_per_thread is None:
        options.calls_per_thread = 40 if uri else 12
    expiry_holds = options.expiry_holds if options.expiry_holds is not None else 1000 if uri else 100
    if min(options.calls, options.threads, options.calls_per_thread) < 1 or options.seconds <= 0:
        parser.error("--calls, --threads, --calls-per-thread and --seconds must be positive")
    if not 1 <= expiry_holds <= 1000:
        parser.error("--expiry-holds must be between 1 and 1000 (the service's largest batch)")

    began = time.perf_counter()
    layer_costs = None
    with ExitStack() as stack:
        if uri:
            database = "MONGODB_URI"
        else:
            _progress("starting the embedded database")
            server = stack.enter_context(EmbeddedMongo())
            uri = server.uri
            database = f"embedded mongoeco {version('mongoeco')}"
            _progress("wire layer cost")
            layer_costs = wire_layer.measure(server)
        recorder = CommandRecorder()
        client = MongoClient(uri, serverSelectionTimeoutMS=5000, maxPoolSize=64, event_listeners=[recorder])
        stack.callback(client.close)
        results = _run(client, recorder, options, expiry_holds)

    over = _over_budget(results)
    print(_details(results))
    print()
    print(_header(database))
    print()
    print(_table(results, expiry_holds))
    print()
    print(_notes(database, options, expiry_holds))
    print()
    if layer_costs is not None:
        print("What the wire layer (devtools/wire_layer.py) adds in front of the embedded server:")
        print()
        print(layer_costs)
        print()
    print("Over budget: " + "; ".join(over) if over else "Every operation is within its round-trip budget.")
    _progress(f"total {time.perf_counter() - began:.1f} s")
    return 1 if over else 0


def _run(client: MongoClient, recorder: CommandRecorder, options: argparse.Namespace, expiry_holds: int) -> Results:
    results = Results(threads=options.threads)
    with _service(client, "round_trips") as service:
        for operation in OPERATIONS:
            _progress(f"round trips: {operation}")
            results.round_trips[operation] = measure_operation(service, recorder, operation, operation)
    _progress(f"round trips: {EXPIRY} ({EXPIRY_ROUND_TRIP_HOLDS} due holds)")
    with _service(client, "round_trips_expiry") as service:  # a database of its own: the holds above are due too
        results.round_trips[EXPIRY] = measure_expiry(service, recorder, "expiry", EXPIRY_ROUND_TRIP_HOLDS)

    for operation in THROUGHPUT_OPERATIONS:
        _progress(f"ops/s, 1 thread: {operation}")
        results.sequential[operation] = _measure(
            client,
            recorder,
            lambda service, operation=operation: throughput.sequential(
                service, operation, operation, calls=options.calls, time_limit=options.seconds
            ),
        )
        _progress(f"ops/s, {options.threads} threads: {operation}")
        results.threaded[operation] = _measure(
            client,
            recorder,
            lambda service, operation=operation: throughput.threaded(
                service,
                operation,
                operation,
                threads=options.threads,
                calls_per_thread=options.calls_per_thread,
                time_limit=options.seconds,
            ),
        )
    _progress(f"holds/s: {EXPIRY} (batch of {expiry_holds})")
    results.expiry = _measure(
        client, recorder, lambda service: throughput.expiry(service, "expiry", holds=expiry_holds)
    )
    return results


def _measure(client: MongoClient, recorder: CommandRecorder, run: Callable[[WalletService], Rate]) -> Rate:
    """One throughput measurement on a fresh database, with the commands that failed meanwhile."""
    with _service(client, "throughput") as service:
        recorder.take_failures()
        rate = run(service)
        return replace(rate, failed_commands=sum(recorder.take_failures().values()))


@contextmanager
def _service(client: MongoClient, purpose: str) -> Iterator[WalletService]:
    """A service on a database of its own, dropped afterwards (also on a real deployment)."""
    name = f"wallet_bench_{purpose}_{uuid.uuid4().hex[:8]}"
    try:
        # A roomy retry budget: calls colliding under threads should retry, not give up.
        service = WalletService(client[name], time_budget=30.0)
        service.ensure_indexes()
        yield service
    finally:
        client.drop_database(name)


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _header(database: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Benchmark of {when} on {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; database: {database}."
    )


def _table(results: Results, expiry_holds: int) -> str:
    rows = [
        [
            "operation",
            "round trips (ours)",
            "budget",
            "TypeScript reference",
            "ops/s sequential",
            f"ops/s {results.threads} threads",
        ],
        ["---", "---:", "---:", "---:", "---:", "---:"],
    ]
    for operation in OPERATIONS:
        rows.append(
            [
                LABELS.get(operation, operation),
                f"{results.round_trips[operation].per_call:g}",
                _budget(operation),
                TYPESCRIPT[operation],
                _rate(results.sequential.get(operation)),
                _rate(results.threaded.get(operation)),
            ]
        )
    rows.append(
        [
            f"{EXPIRY}, per hold",
            f"{results.round_trips[EXPIRY].per_call:.2f} (batch of {EXPIRY_ROUND_TRIP_HOLDS})",
            _budget(EXPIRY),
            TYPESCRIPT[EXPIRY],
            f"{_rate(results.expiry)} holds/s (batch of {expiry_holds})",
            "n/a",
        ]
    )
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _budget(operation: str) -> str:
    budget = BUDGETS.get(operation)
    return "n/a" if budget is None else f"<= {budget:g}"


def _rate(rate: Rate | None) -> str:
    if rate is None:
        return "n/a"
    text = f"{rate.per_second:,.0f}" if rate.per_second >= 10 else f"{rate.per_second:.1f}"
    return f"{text} ({rate.given_up} given up)" if rate.given_up else text


def _details(results: Results) -> str:
    width = max(len(name) for name in results.round_trips)
    lines = ["Commands per call in steady state (each call with an idempotency key):", ""]
    for operation, trips in results.round_trips.items():
        unsteady = "" if trips.steady else "  (samples differed; the longest is shown)"
        lines.append(f"  {operation:<{width}}  {trips.per_call:g}: {', '.join(trips.commands)}{unsteady}")
    lines += [
        "",
        "Throughput runs: calls completed / seconds; commands that failed (each ends a transaction attempt, "
        "which the service retries); caller retries (calls answered with Conflict and repeated with the "
        f"same key); calls given up (still Conflict after {CALLER_RETRIES} caller retries, not counted):",
        "",
    ]
    for operation in THROUGHPUT_OPERATIONS:
        lines.append(f"  {operation:<{width}}  1 thread:   {_counts(results.sequential[operation])}")
        lines.append(f"  {'':<{width}}  {results.threads} threads:  {_counts(results.threaded[operation])}")
    if results.expiry is not None:
        lines.append(f"  {EXPIRY:<{width}}  1 call:     {_counts(results.expiry, unit='holds')}")
    return "\n".join(lines)


def _counts(rate: Rate, unit: str = "calls") -> str:
    return (
        f"{rate.calls} {unit} / {rate.seconds:.2f} s, {rate.failed_commands} failed commands, "
        f"{rate.caller_retries} caller retries, {rate.given_up} given up"
    )


def _notes(database: str, options: argparse.Namespace, expiry_holds: int) -> str:
    notes = [
        "Round trips: commands sent per call in steady state, each call with an idempotency key; for expiry, "
        f"per hold of one expire_reservations(batch_size={EXPIRY_ROUND_TRIP_HOLDS}) call over "
        f"{EXPIRY_ROUND_TRIP_HOLDS} due holds on 5 wallets.",
        f"ops/s: up to {options.calls} calls on one thread, or {options.threads} threads x "
        f"{options.calls_per_thread} calls with each thread on its own wallets, stopped after "
        f"{options.seconds:g} s; every measurement on a fresh database. Expiry: one call expiring "
        f"{expiry_holds} due holds on 10 wallets.",
    ]
    if database != "MONGODB_URI":
        notes.append(
            "The embedded server (mongoeco behind devtools/wire_layer.py) runs inside the benchmark's "
            "process, sharing its GIL and CPUs. Its inserts and finds slow down as a collection grows, and "
            "it fails every commit that overlaps another one, so the threads mostly measure the service's "
            "retries. It answers `_id: {$in: [...]}` by scanning the collection, which is what limits "
            "expiry there. Its ops/s say little about a real deployment: set MONGODB_URI for those."
        )
    return "\n".join(f"{index}. {note}" for index, note in enumerate(notes, 1))


def _over_budget(results: Results) -> list[str]:
    return [
        f"{operation} takes {results.round_trips[operation].per_call:g} round trips, budget {budget:g}"
        for operation, budget in BUDGETS.items()
        if results.round_trips[operation].per_call > budget
    ]
