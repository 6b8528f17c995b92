"""Faults during a workload: the database's failCommand failpoint, armed again and again.

A `FaultDriver` thread arms one fault at a time on the service's connections, each for the next
matching command (`times: 1`, two in a row for a commit whose retry must fail too): every kind in
turn, in an order a seeded generator shuffles each round, so that even a short run meets them all.
A failpoint armed anew replaces one that has not fired yet, so `armed` counts what was armed; what
fired shows in the answers the service received (DATABASE_ANSWERS_DIR, devtools/lambda_container.py).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass

from devtools.failpoints import FailPoints, Fault, drop_connection, slow, unknown_commit, write_conflict

WRITES = ("findAndModify", "insert", "update")


@dataclass(frozen=True)
class Kind:
    name: str
    fault: Fault
    times: int


KINDS = (
    Kind("connection dropped before a write", drop_connection(*WRITES), times=1),
    Kind("connection dropped before a read", drop_connection("find"), times=1),
    # pymongo retries a commit once on a new connection: twice, and the outcome is unknown to it.
    Kind("connection dropped at the commit, twice", drop_connection("commitTransaction"), times=2),
    Kind("commit applied, answer lost (write concern error)", unknown_commit(), times=1),
    Kind("write conflict", write_conflict(*WRITES), times=1),
    Kind("slow commit", slow(400, "commitTransaction"), times=1),
)


class FaultDriver:
    """Arms a random fault every `pause` seconds (a range) until stopped."""

    def __init__(self, failpoints: FailPoints, *, seed: int, pause: tuple[float, float] = (0.02, 0.1)) -> None:
        self._failpoints = failpoints
        self._rng = random.Random(seed)
        self._pause = pause
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-driver", daemon=True)
        self.armed: Counter[str] = Counter()
        self.errors: list[BaseException] = []

    def __enter__(self) -> FaultDriver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._failpoints.off()

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
            try:
                self._failpoints.arm(kind.fault, times=kind.times)
            except Exception as error:  # the database may be restarting; the test checks these afterwards
                self.errors.append(error)
                continue
            self.armed[kind.name] += 1
