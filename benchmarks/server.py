"""The database server under test: what it is, and on mongod its own write-conflict counters.

SecantusDB answers serverStatus with a `secantus` section and no transaction or write-conflict
counters; mongod has `metrics.operation.writeConflicts` and `transactions.totalAborted`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from pymongo import MongoClient

SERVER_COUNTERS = {
    "writeConflicts": ("metrics", "operation", "writeConflicts"),
    "totalAborted": ("transactions", "totalAborted"),
}


def is_secantus(status: dict) -> bool:
    return "secantus" in status


def describe(client: MongoClient, embedded: bool) -> str:
    """'embedded SecantusDB 0.7.0b3 ...' or 'MONGODB_URI: mongod 7.0.14' (never the URI: it may hold a password)."""
    status = client.admin.command("serverStatus")
    if embedded:
        try:
            package = version("secantusdb")
        except PackageNotFoundError:
            package = status.get("secantus", {}).get("version", "?")
        return f"embedded SecantusDB {package} (a process of its own, --sync-on-commit), started for this run"
    if is_secantus(status):
        return f"MONGODB_URI: SecantusDB {status['secantus'].get('version', '?')}"
    return f"MONGODB_URI: {status.get('process', 'mongod')} {status.get('version', '?')}"


class ConflictCounters:
    """mongod's write-conflict and aborted-transaction counters; nothing on SecantusDB, which has none."""

    def __init__(self, client: MongoClient) -> None:
        self._client = client
        self.available = not is_secantus(client.admin.command("serverStatus"))

    def read(self) -> dict[str, int] | None:
        if not self.available:
            return None
        status = self._client.admin.command("serverStatus")
        counters = {}
        for name, path in SERVER_COUNTERS.items():
            value = status
            for key in path:
                value = value.get(key, {}) if isinstance(value, dict) else {}
            counters[name] = int(value) if isinstance(value, int) else 0
        return counters

    @staticmethod
    def difference(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int] | None:
        if before is None or after is None:
            return None
        return {name: after[name] - before[name] for name in after}
