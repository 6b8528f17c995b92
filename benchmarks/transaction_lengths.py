"""The longest transactions the jobs run, beside the database's transaction lifetime (10 s:
wallet_service.ledger.limits.TRANSACTION_LIFETIME_SECONDS, mongod's transactionLifetimeLimitSeconds).

    python -m benchmarks transactions [--wallets 30000 --documents 200000]

On a grown database (benchmarks/town.py: `make bench` measures on the scale measurement's grown
database once its rounds are done), each job runs as its schedule runs it and a command listener
times every transaction from its first command's start to its commit's (or abort's) answer, as
the client sees it (the server's lifetime counts from the first command's arrival, a little later):
- the expiry job at its default batch (100 holds) and at its largest (limits.MAX_EXPIRY_BATCH),
  over due holds spread over 20 wallets, a third each released, captured to @revenue, captured to a
  driver's wallet;
- the checkpoint roll (limits.ROLL_BATCH postings a transaction) of the postings those expiries
  and earlier captures made;
- the audit over the whole grown ledger.
Timings are reported, never checked: the report says how far the longest is from the lifetime.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from pymongo import MongoClient, monitoring

from wallet_service import WalletService
from wallet_service.ledger.limits import MAX_EXPIRY_BATCH, TRANSACTION_LIFETIME_SECONDS

from . import town
from .scenarios import create_due_holds, expiry_cutoff

DEFAULT_EXPIRY_BATCH = 100
DUE_HOLD_WALLETS = 20
ENDS = ("commitTransaction", "abortTransaction")


@dataclass(frozen=True)
class Lengths:
    job: str
    transactions: int
    median_ms: float
    longest_ms: float

    @property
    def share_of_lifetime(self) -> float:
        return self.longest_ms / 1000 / TRANSACTION_LIFETIME_SECONDS


class TransactionClock(monitoring.CommandListener):
    """Times transactions: from the start of a command with `startTransaction` to the answer of
    the commit or abort with the same session and transaction number. Records only while armed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple, float] = {}
        self._ending: dict[int, tuple] = {}  # request id of a commit or abort: its transaction
        self._armed = False
        self.seconds: list[float] = []

    @contextmanager
    def recording(self) -> Iterator[list[float]]:
        with self._lock:
            self._open.clear()
            self._ending.clear()
            self.seconds = []
            self._armed = True
        try:
            yield self.seconds
        finally:
            with self._lock:
                self._armed = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if "txnNumber" not in command or "lsid" not in command:
            return
        key = (bytes(command["lsid"]["id"]), int(command["txnNumber"]))
        with self._lock:
            if not self._armed:
                return
            if command.get("startTransaction"):
                self._open[key] = time.perf_counter()
            elif event.command_name in ENDS:
                self._ending[event.request_id] = key

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._end(event.request_id)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._end(event.request_id)

    def _end(self, request_id: int) -> None:
        with self._lock:
            key = self._ending.pop(request_id, None)
            began = self._open.pop(key, None) if key is not None else None
            if began is not None and self._armed:
                self.seconds.append(time.perf_counter() - began)


def measure(uri: str, database: str, *, progress: Callable[[str], None] = lambda message: None) -> list[Lengths]:
    """The jobs' transactions on `database` (grown already), each job timed on its own."""
    clock = TransactionClock()
    client = MongoClient(uri, event_listeners=[clock], serverSelectionTimeoutMS=5000)
    try:
        service = WalletService(client[database], time_budget=30.0)
        found = []
        for batch in (DEFAULT_EXPIRY_BATCH, MAX_EXPIRY_BATCH):
            progress(f"transaction lengths: {batch} due holds, then one expiry run")
            create_due_holds(service, f"lengths-{batch}", holds=batch, wallets=DUE_HOLD_WALLETS)
            with clock.recording() as seconds:
                report = service.expire_reservations(now=expiry_cutoff(), batch_size=batch)
            if report.expired < batch:
                raise RuntimeError(f"the expiry run expired {report.expired} of {batch} holds: {report}")
            found.append(_lengths(f"expiry, batch of {batch}", seconds))
        progress("transaction lengths: rolling the platform accounts' tails")
        with clock.recording() as seconds:
            service.roll_checkpoints()
        found.append(_lengths("checkpoint roll", seconds))
        progress("transaction lengths: the audit")
        with clock.recording() as seconds:
            service.audit_ledger()
        found.append(_lengths("audit", seconds))
        return found
    finally:
        client.close()


def _lengths(job: str, seconds: list[float]) -> Lengths:
    if not seconds:
        raise RuntimeError(f"{job}: no transaction was timed")
    return Lengths(job, len(seconds), statistics.median(seconds) * 1000, max(seconds) * 1000)


def render(lengths: list[Lengths], where: str) -> str:
    if not lengths:
        return ""
    rows = [
        f"| {found.job} | {found.transactions:,} | {found.median_ms:,.1f} | {found.longest_ms:,.1f} | "
        f"{found.share_of_lifetime:.1%} |"
        for found in lengths
    ]
    return "\n".join(
        [
            "## Transaction lengths",
            "",
            f"Each job's transactions on {where}, from the first command's start to the commit's answer, beside "
            f"the database's transaction lifetime ({TRANSACTION_LIFETIME_SECONDS} s): a transaction that outlived "
            "it would be aborted by the server (benchmarks/transaction_lengths.py).",
            "",
            "| job | transactions | median ms | longest ms | longest / lifetime |",
            "| :-- | --: | --: | --: | --: |",
            *rows,
        ]
    )


def main(argv: list[str]) -> int:
    from .suite import connect, progress  # here: suite imports this module

    parser = argparse.ArgumentParser(prog="python -m benchmarks transactions", description=__doc__.splitlines()[0])
    parser.add_argument("--wallets", type=int, default=30_000)
    parser.add_argument("--documents", type=int, default=200_000)
    options = parser.parse_args(argv)
    with ExitStack() as stack:
        client, _, _, run = connect(stack, settings=vars(options), command="python -m benchmarks transactions")
        grown = client["transaction_lengths"]
        growth = town.grow(client, grown, wallets=options.wallets, documents_=options.documents, progress=progress)
        where = f"a database of {growth.wallets:,} wallets and {growth.documents:,} ledger documents"
        print("\n".join(f"- {name}: {value}" for name, value in run.header.items()))
        print()
        print(render(measure(run.database_uri, grown.name, progress=progress), where))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
