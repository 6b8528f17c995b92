"""One thread: each operation through the service beside its two floors, in interleaved rounds.

A round of an operation is `calls` service calls, `calls` replays of the captured commands and
`calls` minimal transactions, alternating call by call (service, replay, minimal, service, ...,
starting with another path each round) and each timed, so that a hiccup of this shared machine
lands on the three paths alike. The suite runs round 1 of every operation, then round 2 of every
operation, and so on, so a longer burst of noise lands on a round of each rather than on all rounds
of one. The rates are medians over the rounds; the ratio is the median of each round's
service / replay, its spread the rounds' quartiles. The calling thread's CPU time per call is taken
too: unlike the wall clock it does not stretch when other processes take the CPUs, so the service's
minus the replay's is what our own code costs, however busy the machine. All three paths work on
the same server, database and wallets (the replay's holds are its own, made alternately with the
service's so that both sets sit side by side).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bson import ObjectId
from pymongo import MongoClient

from wallet_service import WalletService

from . import replay
from .monitor import CommandRecorder
from .scenarios import prepare

WARM_UP = 3  # calls of each path before the rounds: connections, sessions, the server's caches
PATHS = ("service", "replay", "minimal")


@dataclass(frozen=True, slots=True)
class Floors:
    operation: str
    service: float  # ops/s, median over the rounds
    replay: float  # the same commands through bare pymongo
    minimal: float  # the same command kinds on tiny documents without indexes
    ratio: float  # median over the rounds of service / replay
    commands: tuple[str, ...]  # what the captured call sent, in order
    ratio_quartiles: tuple[float, float] = (0.0, 0.0)  # the rounds' ratios: 25th and 75th percentiles
    service_cpu: float = 0.0  # µs of the calling thread's CPU per call, median over the rounds
    replay_cpu: float = 0.0


class FloorRounds:
    """One operation's three paths, set up (and warmed up) once, then measured round by round."""

    def __init__(
        self,
        client: MongoClient,
        recorder: CommandRecorder,
        service: WalletService,
        database: str,
        operation: str,
        *,
        rounds: int,
        calls: int,
    ) -> None:
        self.operation = operation
        self._calls = calls
        total = WARM_UP + rounds * calls
        tag = f"floors-{operation}"
        self._scenario = scenario = prepare(service, operation, tag, total + 1, spare_holds=total)
        for _ in range(WARM_UP):
            scenario.call()
        recorder.capture()
        scenario.call()  # the call whose commands the replay sends again
        captured = replay.Replay(recorder.captured())
        self._commands = captured.names
        targets = None
        if scenario.holds:  # a capture or release: each replayed call closes a hold of its own
            targets = {ObjectId(scenario.holds[WARM_UP]): [ObjectId(hold) for hold in scenario.spare_holds]}
        replays = captured.calls(total, targets)
        minimals = replay.minimal_transaction(client, database, captured.names, total)
        # Call number n of each path (the service's scenario knows which call is next by itself).
        self._paths: dict[str, Callable[[int], object]] = {
            "service": lambda number: scenario.call(),
            "replay": lambda number: replay.run(client, replays[number : number + 1]),
            "minimal": lambda number: replay.run(client, minimals[number : number + 1]),
        }
        for number in range(WARM_UP):  # the service had its warm-up before the capture
            self._paths["replay"](number)
            self._paths["minimal"](number)
        self._rates: dict[str, list[float]] = {path: [] for path in PATHS}
        self._cpu: dict[str, list[float]] = {path: [] for path in PATHS}  # µs per call

    def round(self, number: int) -> None:
        order = PATHS[number % 3 :] + PATHS[: number % 3]
        seconds = dict.fromkeys(PATHS, 0.0)
        cpu = dict.fromkeys(PATHS, 0.0)
        first = WARM_UP + number * self._calls
        for call in range(first, first + self._calls):
            for path in order:
                began, began_cpu = time.perf_counter(), time.thread_time()
                self._paths[path](call)
                cpu[path] += time.thread_time() - began_cpu
                seconds[path] += time.perf_counter() - began
        for path in PATHS:
            self._rates[path].append(self._calls / seconds[path])
            self._cpu[path].append(cpu[path] * 1e6 / self._calls)

    def result(self) -> Floors:
        ratios = [service / floor for service, floor in zip(self._rates["service"], self._rates["replay"], strict=True)]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        return Floors(
            self.operation,
            statistics.median(self._rates["service"]),
            statistics.median(self._rates["replay"]),
            statistics.median(self._rates["minimal"]),
            statistics.median(ratios),
            self._commands,
            (quartiles[0], quartiles[2]),
            statistics.median(self._cpu["service"]),
            statistics.median(self._cpu["replay"]),
        )


def measure(
    client: MongoClient,
    recorder: CommandRecorder,
    service: WalletService,
    database: str,
    operation: str,
    *,
    rounds: int,
    calls: int,
) -> Floors:
    """All rounds of one operation, one after the other (the suite interleaves operations instead)."""
    bench = FloorRounds(client, recorder, service, database, operation, rounds=rounds, calls=calls)
    for number in range(rounds):
        bench.round(number)
    return bench.result()
