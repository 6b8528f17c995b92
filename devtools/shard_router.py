"""A simulated router: which shards the commands a run sent would reach on a sharded cluster.

No sharded cluster can run here, so this plays mongos on the commands pymongo reports: `wallets` and
`ledger` sharded by wallet_service.storage.routing.SHARD_KEYS, with `shards` zones of whole bucket
ranges (routing.zones, which `make shard-plan` prints as commands). A command reaches one shard when its
filter fixes `bucket` (equality), the shards of the buckets of an `$in`, every shard otherwise; an
insert, the shards of its documents' buckets (one without a bucket: the lowest zone's, where MinKey
and null sort). Any other collection is unsharded, on the primary shard (0). Commands are grouped
into transactions by `lsid` and `txnNumber`: a transaction's shards are its participants, every one
of which a commit reaches (more than one: a two-phase commit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from wallet_service.storage.routing import SHARD_KEYS, zone_of

PRIMARY = 0
# The commands that only end or continue what other commands started: they add no shard of their own.
FOLLOWERS = {"commitTransaction", "abortTransaction", "getMore", "endSessions", "killCursors"}


@dataclass(frozen=True, slots=True)
class Router:
    shards: int

    def shard_of(self, bucket: object) -> int:
        return zone_of(bucket, self.shards)

    def targets(self, name: str, command: dict) -> set[int]:
        """The shards one command reaches (none for a command that only follows others)."""
        if name in FOLLOWERS:
            return set()
        collection = command.get(name)
        if collection not in SHARD_KEYS:
            return {PRIMARY}
        if name == "insert":
            return {self.shard_of(document.get("bucket")) for document in command["documents"]}
        reached: set[int] = set()
        for query in _filters(name, command):
            reached |= self._of_filter(query)
        return reached

    def _of_filter(self, query: dict) -> set[int]:
        if not names_bucket(query):
            return set(range(self.shards))
        bucket = query["bucket"]
        return {self.shard_of(value) for value in (bucket["$in"] if isinstance(bucket, dict) else [bucket])}


# The commands that read or write documents: each one targeted or not (index and other commands
# on a collection go to every shard that holds it by nature).
DATA_COMMANDS = frozenset({"find", "findAndModify", "update", "delete", "aggregate", "count", "distinct", "insert"})


def untargeted(name: str, command: dict) -> bool:
    """Whether a command reads or writes a sharded collection without naming its buckets: a filter
    that does not fix the bucket, or an inserted document without one."""
    if name not in DATA_COMMANDS or command.get(name) not in SHARD_KEYS:
        return False
    if name == "insert":
        return any("bucket" not in document for document in command["documents"])
    return not all(names_bucket(query) for query in _filters(name, command))


def names_bucket(query: dict) -> bool:
    """Whether a filter fixes the bucket (an equality or an `$in`), which is what lets mongos target it."""
    bucket = query.get("bucket")
    if isinstance(bucket, dict):
        return set(bucket) == {"$in"}
    return isinstance(bucket, int) and not isinstance(bucket, bool)


def _filters(name: str, command: dict) -> list[dict]:
    """What a command selects by: its filter, or each statement's."""
    if name == "find":
        return [command.get("filter", {})]
    if name == "findAndModify":
        return [command.get("query", {})]
    if name == "update":
        return [statement.get("q", {}) for statement in command["updates"]]
    if name == "delete":
        return [statement.get("q", {}) for statement in command["deletes"]]
    if name == "aggregate":
        first = (command.get("pipeline") or [{}])[0]
        return [first.get("$match", {})]
    if name in ("count", "distinct"):
        return [command.get("query", {})]
    return [{}]  # anything else on a sharded collection goes everywhere


@dataclass
class Unit:
    """A transaction (or a command outside any): the shards it reached and the commands it sent."""

    shards: set[int] = field(default_factory=set)
    commands: list[str] = field(default_factory=list)
    transaction: bool = False


def route(router: Router, sent: Iterable[tuple[str, dict]]) -> list[Unit]:
    """Group (command name, command) pairs into transactions by lsid and txnNumber, each with the
    shards it reached; a command outside a transaction is a unit of its own."""
    units: dict[object, Unit] = {}
    for number, (name, command) in enumerate(sent):
        in_transaction = "txnNumber" in command and "lsid" in command
        key = (bytes(command["lsid"]["id"]), int(command["txnNumber"])) if in_transaction else number
        unit = units.setdefault(key, Unit(transaction=in_transaction))
        unit.shards |= router.targets(name, command)
        unit.commands.append(name)
    return list(units.values())
