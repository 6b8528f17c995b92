"""Operations per second on 1..n threads, each thread on its own wallets, and expiry's holds per second.

Each measurement stops after a number of calls or a time limit, whichever comes first, so a slow
database shortens the run instead of stretching it. Nothing here checks a timing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

from wallet_service import Conflict, WalletService
from wallet_service.ledger.limits import MAX_EXPIRY_BATCH

from .monitor import Answers, CommandRecorder
from .scenarios import create_due_holds, expiry_cutoff, prepare
from .server import ConflictCounters

WARM_UP = 2  # calls per thread before the clock starts


@dataclass(frozen=True, slots=True)
class Rate:
    calls: int
    seconds: float
    caller_retries: int = 0  # calls repeated with the same idempotency key after a Conflict
    given_up: int = 0  # calls still answered with Conflict after the caller's retries; not in `calls`
    answers: Answers = field(default_factory=Answers)  # commits and failed replies the client received
    server: dict[str, int] | None = None  # mongod's own conflict counters over the run (None: not available)

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def threaded(
    service: WalletService,
    operation: str,
    tag: str,
    *,
    threads: int,
    calls_per_thread: int,
    time_limit: float,
    recorder: CommandRecorder,
    counters: ConflictCounters,
) -> Rate:
    """`threads` threads, each calling on its own wallet(s) until its calls or the time limit run out.

    The database's answers (and mongod's counters) are those of the timed calls only, not the setup's."""
    scenarios = [prepare(service, operation, f"{tag}-{index}", calls_per_thread + WARM_UP) for index in range(threads)]
    # Two barriers: every thread has finished its warm-up (ready), the counters are read, then all start (go).
    ready = threading.Barrier(threads + 1)
    go = threading.Barrier(threads + 1)
    done = [0] * threads
    retries = [0] * threads
    given_up = [0] * threads
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        call = scenarios[index].call
        try:
            for _ in range(WARM_UP):  # also gives this thread its pooled connection
                with contextlib.suppress(Conflict):
                    call()
            ready.wait()
            go.wait()
        except threading.BrokenBarrierError:
            return  # another thread failed its warm-up
        except BaseException as error:
            errors.append(error)
            ready.abort()
            go.abort()
            return
        deadline = time.perf_counter() + time_limit
        try:
            while done[index] + given_up[index] < calls_per_thread and time.perf_counter() < deadline:
                try:
                    retries[index] += call()
                except Conflict:
                    given_up[index] += 1
                else:
                    done[index] += 1
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=worker, args=(index,), name=f"bench-{index}") for index in range(threads)]
    for thread in workers:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a warm-up failed: errors says which
        ready.wait()
    server_before = counters.read()
    recorder.take_answers()
    with contextlib.suppress(threading.BrokenBarrierError):
        go.wait()
    start = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - start
    answers = recorder.take_answers()
    server = counters.difference(server_before, counters.read())
    if errors:
        raise RuntimeError(f"{operation} failed in {len(errors)} of {threads} threads") from errors[0]
    return Rate(sum(done), elapsed, sum(retries), sum(given_up), answers, server)


def expiry(service: WalletService, tag: str, *, holds: int) -> Rate:
    """Holds expired per second by one expire_reservations call over `holds` due holds, in batches of
    the service's largest (MAX_EXPIRY_BATCH)."""
    create_due_holds(service, tag, holds=holds, wallets=10)
    start = time.perf_counter()
    report = service.expire_reservations(now=expiry_cutoff(), batch_size=MAX_EXPIRY_BATCH, time_limit=3600.0)
    elapsed = time.perf_counter() - start
    if report.expired != holds:
        raise RuntimeError(f"expiry expired {report.expired} of {holds} holds: {report}")
    return Rate(report.expired, elapsed)
