"""Faults during a workload: the database's failCommand failpoint, armed again and again, and
functions killed in the middle of their transactions.

A `FaultDriver` thread arms one fault at a time on the service's connections, each for the next
matching command (`times: 1`, two in a row for a commit whose retry must fail too): every kind in
turn, in an order a seeded generator shuffles each round, so that even a short run meets them all.
A failpoint armed anew replaces one that has not fired yet, so `armed` counts what was armed; what
fired shows in the answers the service received (DATABASE_ANSWERS_DIR, devtools/container_aids.py).

A kill is an order left in make run's FUNCTION_KILLS_DIR (devtools/container_aids.py): the next
function whose transaction writes dies there by SIGKILL, its transaction left open on the server.
Each kill holds the wallet it wrote for the server's transaction lifetime, so they are spaced out
(KILL_EVERY_SECONDS), one order waits at a time, and orders stop once `kills_while` says so (near
the end of a run, the last client's retries would be the only transactions left to kill: Lambda's
kills are not aimed at one request); `kills_done` counts the orders carried out.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devtools.failpoints import FailPoints, Fault, drop_connection, slow, unknown_commit, write_conflict

WRITES = ("findAndModify", "insert", "update")


KILL = "function killed in the middle of its transaction"
KILL_EVERY_SECONDS = 30.0  # three lifetimes: one wallet at most held by a dead function at any time
# Seconds between two faults, drawn from this range: WORKLOAD_FAULT_PAUSE="low,high" sets another.
# The default makes faults the rule (about one for every request): what the run checks is that
# nothing is lost; a sparser pace shows what a fault costs a request that meets one.
FAULT_PAUSE = (0.02, 0.1)


def fault_pause() -> tuple[float, float]:
    chosen = os.environ.get("WORKLOAD_FAULT_PAUSE")
    if not chosen:
        return FAULT_PAUSE
    low, high = (float(part) for part in chosen.split(","))
    return low, high


@dataclass(frozen=True)
class Kind:
    name: str
    fault: Fault | None  # None: a kill order
    times: int = 1


KINDS = (
    Kind("connection dropped before a write", drop_connection(*WRITES), times=1),
    Kind("connection dropped before a read", drop_connection("find"), times=1),
    # pymongo retries a commit once on a new connection: twice, and the outcome is unknown to it.
    Kind("connection dropped at the commit, twice", drop_connection("commitTransaction"), times=2),
    Kind("commit applied, answer lost (write concern error)", unknown_commit(), times=1),
    Kind("write conflict", write_conflict(*WRITES), times=1),
    Kind("slow commit", slow(400, "commitTransaction"), times=1),
    Kind(KILL, None),
)


class FaultDriver:
    """Arms a random fault every `pause` seconds (a range) until stopped."""

    def __init__(
        self,
        failpoints: FailPoints,
        kill_orders: Path,
        *,
        seed: int,
        kills_while: Callable[[], bool],
        pause: tuple[float, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failpoints = failpoints
        self._kill_orders = kill_orders
        self._kills_while = kills_while
        self._killed_at = float("-inf")
        self._numbers = itertools.count(1)
        self._rng = random.Random(seed)
        self._pause = pause or fault_pause()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-driver", daemon=True)
        self.armed: Counter[str] = Counter()
        self.kills_done = 0  # kill orders a function carried out, known at the end
        self._clock = clock
        self.kills_ordered_at: list[float] = []  # by `clock`, when each kill order was left
        self.errors: list[BaseException] = []

    def __enter__(self) -> FaultDriver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._failpoints.off()
        withdrawn = 0  # orders no function carried out
        for order in self._kill_orders.iterdir():
            with contextlib.suppress(FileNotFoundError):  # claimed meanwhile: carried out
                order.unlink()
                withdrawn += 1
        self.kills_done = self.armed[KILL] - withdrawn

    def pause(self) -> None:
        """No new faults (while the database is down: arming would fail)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def _run(self) -> None:
        order: list[Kind] = []
        while not self._stop.wait(self._rng.uniform(*self._pause)):
            if self._paused.is_set():
                continue
            if not order:
                order = list(KINDS)
                self._rng.shuffle(order)
            kind = order.pop()
            if kind.fault is None:
                if self._order_kill():
                    self.armed[kind.name] += 1
                continue
            try:
                self._failpoints.arm(kind.fault, times=kind.times)
            except Exception as error:  # the database may be restarting; the test checks these afterwards
                self.errors.append(error)
                continue
            self.armed[kind.name] += 1

    def _order_kill(self) -> bool:
        """Leave a kill order, unless one is still waiting, the last was less than KILL_EVERY_SECONDS
        ago, or `kills_while` says no more."""
        if any(self._kill_orders.iterdir()) or time.monotonic() - self._killed_at < KILL_EVERY_SECONDS:
            return False
        if not self._kills_while():
            return False
        (self._kill_orders / f"kill-{next(self._numbers)}").touch()
        self._killed_at = time.monotonic()
        self.kills_ordered_at.append(self._clock())
        return True
