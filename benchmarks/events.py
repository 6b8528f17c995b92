"""The outbox's cost: a deposit's latency with and without publishing its events right after it, and
the publisher's events per second.

Latency: three paths, each on a wallet of its own, in interleaved rounds (as the floors are, so noise
hits them alike): a deposit alone; a deposit, then `publish_events(committed=...)` of the events it
committed to an in-memory sink, as a function does once it has answered; the same to a file sink appending one JSON
line per event. Each round times `calls` calls of each path, the paths alternating call by call and
starting with another path each round; the deposit-alone wallet's events are published after each
round, untimed, so its outbox stays as small as a published one. Reported: the median over the
rounds of each path's milliseconds per call, and the median of the rounds' ratios to the deposit
alone (with their quartiles).

Round trips: a deposit's commands and the documents of its one insert (the event is among them),
and what publishing one deposit's event sends.

The publisher: `publish_events(older_than_seconds=0)` over unsent events made beforehand (wallets
opened, then deposits on each in turn), timed as one call, to an in-memory sink; over many wallets
(a round sends each wallet's next event, 10 to a sink call) and over one wallet (one event a round).
Nothing here checks a timing.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wallet_service import CommittedEvents, Request, WalletService, committed_events, event_detail

from .monitor import CommandRecorder
from .scenarios import CURRENCY, RICH

PATHS = ("deposit", "memory", "file")
PATH_LABELS = {
    "deposit": "deposit alone",
    "memory": "deposit, then publish its event (in-memory sink)",
    "file": "deposit, then publish its event (file sink, a JSON line each)",
}
WARM_UP = 3  # calls of each path before the rounds
ONE_WALLET_EVENTS = 500  # the publisher's run over one wallet: one event a round
AMOUNT = 100


class MemorySink:
    """Keeps each event's detail, as a consumer would receive it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.calls = 0

    def put(self, events: Sequence[dict]) -> list[bool]:
        self.calls += 1
        self.received.extend(event_detail(event) for event in events)
        return [True] * len(events)


class FileSink:
    """Appends each event's detail to a file, one JSON line each, flushed after every call."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self.lines = 0

    def put(self, events: Sequence[dict]) -> list[bool]:
        self._file.writelines(json.dumps(event_detail(event), separators=(",", ":")) + "\n" for event in events)
        self._file.flush()
        self.lines += len(events)
        return [True] * len(events)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class Latency:
    milliseconds: dict[str, float]  # per call, median over the rounds, by path
    ratios: dict[str, float]  # median over the rounds of path / deposit alone, for the publishing paths
    quartiles: dict[str, tuple[float, float]]  # of those ratios
    deposit_commands: tuple[str, ...]  # a deposit's round trips
    inserted: tuple[str, ...]  # the kinds of the documents its one insert carried
    publish_commands: tuple[str, ...]  # publishing one deposit's event, right after it
    published: int  # events the publishing paths sent: one per call


@dataclass(frozen=True, slots=True)
class Publisher:
    events: int
    wallets: int
    seconds: float
    sink_calls: int
    round_trips: int  # commands the publisher sent to the database

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def latency(service: WalletService, recorder: CommandRecorder, *, rounds: int, calls: int) -> Latency:
    """The three paths, `rounds` rounds of `calls` calls each."""
    wallets = {path: _wallet(service, f"publish-{path}") for path in PATHS}
    memory = MemorySink()
    service.publish_events(
        MemorySink(), older_than_seconds=0
    )  # the openings' events: each call sends its deposit's alone
    with tempfile.TemporaryDirectory(prefix="wallet-bench-events-") as folder:
        file = FileSink(Path(folder) / "events.jsonl")
        try:
            sinks = {"memory": memory, "file": file}
            counter = iter(range(10**9))

            def deposit(path: str) -> CommittedEvents:
                key = f"publish-{path}-{next(counter)}"
                with committed_events() as committed:
                    service.deposit(wallets[path], AMOUNT, Request(idempotency_key=key))
                return committed

            def publishing(path: str) -> Callable[[], None]:
                def call() -> None:
                    report = service.publish_events(sinks[path], committed=deposit(path))
                    if report.sent != 1:
                        raise RuntimeError(f"publishing a deposit's event sent {report.sent}: {report}")

                return call

            paths: dict[str, Callable[[], object]] = {
                "deposit": lambda: deposit("deposit"),
                "memory": publishing("memory"),
                "file": publishing("file"),
            }
            for path in PATHS:
                for _ in range(WARM_UP):
                    paths[path]()
            deposit_commands, inserted, publish_commands = _round_trips(service, recorder, wallets["memory"], memory)
            published_before = len(memory.received) + file.lines
            seconds: dict[str, list[float]] = {path: [] for path in PATHS}
            for number in range(rounds):
                order = PATHS[number % 3 :] + PATHS[: number % 3]
                spent = dict.fromkeys(PATHS, 0.0)
                for _ in range(calls):
                    for path in order:
                        began = time.perf_counter()
                        paths[path]()
                        spent[path] += time.perf_counter() - began
                for path in PATHS:
                    seconds[path].append(spent[path] / calls)
                service.publish_events(MemorySink(), older_than_seconds=0)  # untimed: keep the outbox small
            published = len(memory.received) + file.lines - published_before
        finally:
            file.close()
    ratios = {
        path: [mine / alone for mine, alone in zip(seconds[path], seconds["deposit"], strict=True)]
        for path in ("memory", "file")
    }
    return Latency(
        milliseconds={path: statistics.median(values) * 1000 for path, values in seconds.items()},
        ratios={path: statistics.median(values) for path, values in ratios.items()},
        quartiles={path: _quartiles(values) for path, values in ratios.items()},
        deposit_commands=deposit_commands,
        inserted=inserted,
        publish_commands=publish_commands,
        published=published,
    )


def _round_trips(
    service: WalletService, recorder: CommandRecorder, wallet_id: str, sink: MemorySink
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """A deposit's commands and what its insert carried; then publishing its event's commands."""
    recorder.capture()
    with committed_events() as committed:
        service.deposit(wallet_id, AMOUNT, Request(idempotency_key="publish-round-trips"))
    sent = recorder.captured()
    inserted = tuple(
        document.get("kind", "?")
        for command in sent
        if command.name == "insert"
        for document in command.command["documents"]
    )
    recorder.arm()
    try:
        service.publish_events(sink, committed=committed)
    finally:
        publish_commands = tuple(recorder.disarm())
    return tuple(command.name for command in sent), inserted, publish_commands


def publisher(service: WalletService, recorder: CommandRecorder, tag: str, *, events: int, wallets: int) -> Publisher:
    """One scheduled publisher's run over `events` unsent events of `wallets` wallets (each opened,
    then deposits on each in turn), timed as one call."""
    if events < wallets:
        raise ValueError("at least one event (its opening) per wallet")
    wallet_ids = [_wallet(service, f"{tag}-{index}", opening_balance=0) for index in range(wallets)]
    for number in range(events - wallets):
        service.deposit(wallet_ids[number % wallets], AMOUNT)
    sink = MemorySink()
    recorder.arm()
    began = time.perf_counter()
    try:
        report = service.publish_events(sink, older_than_seconds=0, time_limit=3600.0)
    finally:
        elapsed = time.perf_counter() - began
        commands = recorder.disarm()
    if (report.sent, report.failed, report.pending) != (events, 0, 0):
        raise RuntimeError(f"the publisher sent {report.sent} of {events} events: {report}")
    return Publisher(events, wallets, elapsed, sink.calls, len(commands))


def _wallet(service: WalletService, owner: str, *, opening_balance: int = RICH) -> str:
    return service.create_wallet(owner, CURRENCY, opening_balance=opening_balance).wallet.id


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0])
    quartiles = statistics.quantiles(values, n=4)
    return (quartiles[0], quartiles[2])
