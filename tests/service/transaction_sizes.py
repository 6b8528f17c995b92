"""How many documents each transaction a service ran touched: what its commands returned and wrote,
and what its reads examined (each explained again afterwards, on the data as it is then). For the
tests that a job's transactions stay bounded whatever the ledger's size: each must end within the
database's transaction lifetime (limits.TRANSACTION_LIFETIME_SECONDS). Counts, not times: machines
are noisy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from pymongo import MongoClient, monitoring
from pymongo.database import Database

from wallet_service import WalletService

FRAMING = {"lsid", "txnNumber", "startTransaction", "autocommit", "$clusterTime", "$db", "readConcern"}
FRAMING |= {"$readPreference", "writeConcern"}


@dataclass
class Transaction:
    reads: list[dict] = field(default_factory=list)  # its find and aggregate commands, to explain
    returned: int = 0
    written: int = 0

    def size(self, database: Database) -> int:
        """Documents returned, written, and examined by its reads."""
        return self.returned + self.written + sum(_examined(database, read) for read in self.reads)


class TransactionLog(monitoring.CommandListener):
    """The transactions (commands with `autocommit`, by session and txnNumber) a client ran."""

    def __init__(self) -> None:
        self.transactions: dict[tuple, Transaction] = {}
        self._pending: dict[int, tuple[tuple, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if "autocommit" not in command:
            return
        key = (bytes(command["lsid"]["id"]), int(command["txnNumber"]))
        transaction = self.transactions.setdefault(key, Transaction())
        if event.command_name in ("find", "aggregate"):
            transaction.reads.append({name: value for name, value in command.items() if name not in FRAMING})
        self._pending[event.request_id] = (key, event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pending = self._pending.pop(event.request_id, None)
        if pending is None:
            return
        transaction, reply = self.transactions[pending[0]], event.reply
        if "cursor" in reply:
            transaction.returned += len(reply["cursor"].get("firstBatch", reply["cursor"].get("nextBatch", [])))
        elif pending[1] == "findAndModify":
            transaction.returned += reply.get("value") is not None
        elif pending[1] in ("insert", "update", "delete"):
            transaction.written += reply.get("n", 0)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._pending.pop(event.request_id, None)

    def clear(self) -> None:
        self.transactions.clear()
        self._pending.clear()

    def largest(self, database: Database) -> int:
        """The most documents one transaction touched (0 for none)."""
        return max((transaction.size(database) for transaction in self.transactions.values()), default=0)


def _examined(database: Database, read: dict) -> int:
    explained = database.command("explain", read, verbosity="executionStats")
    return max((value for key, value in walk(explained) if key == "totalDocsExamined"), default=0)


def walk(value) -> Iterator[tuple[str, object]]:
    """Every (key, value) pair of an explain answer, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


@contextmanager
def logged_service(mongo_uri: str, name: str, clock: list[datetime]) -> Iterator[tuple[WalletService, TransactionLog]]:
    """A service on database `name` whose clock is `clock[0]`, its transactions logged."""
    log = TransactionLog()
    with MongoClient(mongo_uri, appname="wallet", event_listeners=[log]) as client:
        service = WalletService(client[name], time_budget=20.0, clock=lambda: clock[0])
        service.ensure_indexes()
        yield service, log
