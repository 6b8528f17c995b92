"""Operations per second: one thread, and several threads each on its own wallets.

Each measurement stops after a number of calls or a time limit, whichever comes first, so
a slow database shortens the run instead of stretching it. Nothing here checks a timing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass

from wallet_core import Conflict, WalletService

from .scenarios import create_due_holds, expiry_cutoff, prepare

WARM_UP = 2  # calls per thread before the clock starts


@dataclass(frozen=True, slots=True)
class Rate:
    calls: int
    seconds: float
    caller_retries: int = 0  # calls repeated with the same idempotency key after a Conflict
    given_up: int = 0  # calls still answered with Conflict after the caller's retries; not in `calls`
    failed_commands: int = 0  # commands that failed during the run (each ends a transaction attempt)

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


def sequential(service: WalletService, operation: str, tag: str, *, calls: int, time_limit: float) -> Rate:
    call = prepare(service, operation, tag, calls + WARM_UP)
    for _ in range(WARM_UP):
        call()
    done = retries = given_up = 0
    start = time.perf_counter()
    deadline = start + time_limit
    while done + given_up < calls and time.perf_counter() < deadline:
        try:
            retries += call()
        except Conflict:
            given_up += 1
        else:
            done += 1
    return Rate(done, time.perf_counter() - start, retries, given_up)


def threaded(
    service: WalletService, operation: str, tag: str, *, threads: int, calls_per_thread: int, time_limit: float
) -> Rate:
    """`threads` threads, each calling on its own wallet(s) until its calls or the time limit run out."""
    calls = [prepare(service, operation, f"{tag}-{index}", calls_per_thread + WARM_UP) for index in range(threads)]
    barrier = threading.Barrier(threads + 1)
    done = [0] * threads
    retries = [0] * threads
    given_up = [0] * threads
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        call = calls[index]
        try:
            for _ in range(WARM_UP):  # also gives this thread its pooled connection
                with contextlib.suppress(Conflict):
                    call()
            barrier.wait()
        except threading.BrokenBarrierError:
            return  # another thread failed its warm-up
        except BaseException as error:
            errors.append(error)
            barrier.abort()
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
        barrier.wait()
    start = time.perf_counter()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{operation} failed in {len(errors)} of {threads} threads") from errors[0]
    return Rate(sum(done), elapsed, sum(retries), sum(given_up))


def expiry(service: WalletService, tag: str, *, holds: int) -> Rate:
    """Holds expired per second by one expire_reservations(batch_size=holds) call over `holds` due holds."""
    create_due_holds(service, tag, holds=holds, wallets=10)
    start = time.perf_counter()
    report = service.expire_reservations(now=expiry_cutoff(), batch_size=holds, time_limit=3600.0)
    elapsed = time.perf_counter() - start
    if report.expired != holds:
        raise RuntimeError(f"expiry expired {report.expired} of {holds} holds: {report}")
    return Rate(report.expired, elapsed)
