"""The command audit: every command the service sends to a sharded collection names its bucket
(docs/sharding.md), or says as its `comment` which documented reason it has to reach every shard
(wallet_service.storage.routing.SCATTER). It watches the service's client in every test
(tests/conftest.py), the stateful model's included; a test whose service sent another fails.

A database whose commands cannot name buckets yet (no marker: storage/targets.py; a ledger written
before the routing key, until `make migrate`) is left out while it has none."""

from __future__ import annotations

import threading

from pymongo import MongoClient, monitoring

from devtools.shard_router import untargeted
from wallet_service.storage.documents import ROUTING
from wallet_service.storage.routing import SCATTER, scatter
from wallet_service.storage.targets import MARKER

DOCUMENTED = frozenset(scatter(reason) for reason in SCATTER)  # the comments of the documented scatter reads


class RoutingAudit(monitoring.CommandListener):
    def __init__(self) -> None:
        self.reader: MongoClient | None = None  # reads the marker: the tests' own client
        self.violations: list[str] = []
        self._targeting: set[str] = set()  # databases seen with their marker
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.violations.clear()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name, command = event.command_name, event.command
        if not untargeted(name, command) or command.get("comment") in DOCUMENTED:
            return
        if not self._targets(event.database_name):
            return
        found = command.get("filter", command.get("query", command.get("updates", command.get("documents"))))
        with self._lock:
            self.violations.append(f"{name} {command[name]} {found!r:.300}")

    def _targets(self, database: str) -> bool:
        """Whether the database has its marker (so its commands should name their buckets)."""
        if database in self._targeting:
            return True
        if self.reader is None or self.reader[database][ROUTING].find_one({"_id": MARKER}) is None:
            return False
        self._targeting.add(database)
        return True

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
