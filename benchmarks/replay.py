"""The two floors of a service call, as bare pymongo transactions.

- `Replay`: the commands one real service call sent, captured from pymongo's command events, sent
  again as they were (`database.command(command, session=session)` in a transaction, then the
  commit). The session and transaction fields pymongo adds (lsid, txnNumber, readConcern, ...) are
  stripped from the capture and added again by pymongo. Only what must differ from call to call is
  substituted: the `_id`s of inserted documents (and everything that refers to them), the owner of
  an inserted wallet (one wallet per owner and currency), the hold a capture or release targets, and
  the journal entries' position (`<walletId>:<sequence>`), which follows the wallet's sequence as
  the findAndModify just returned it, as the service computes it.
- `minimal_transaction`: the same command kinds in the same order on tiny documents in collections
  that have only the _id index: what the round trips cost without our documents and indexes.

Every call's commands are built before the clock starts; what runs timed is pymongo and the
server, plus a few dictionary lookups to place the entries.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from bson import Int64, ObjectId
from pymongo import MongoClient
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from wallet_service.storage import documents

from .monitor import Sent

# Fields pymongo adds to a command for its session, transaction, cluster time and database.
FRAMING = frozenset(
    {
        "lsid",
        "txnNumber",
        "autocommit",
        "startTransaction",
        "readConcern",
        "writeConcern",
        "$clusterTime",
        "$db",
        "$readPreference",
        "maxTimeMS",
        "apiVersion",
        "apiStrict",
        "apiDeprecationErrors",
    }
)
TRANSACTION_END = frozenset({"commitTransaction", "abortTransaction"})
MINIMAL_COUNTERS = "bare_counters"  # _id index only
MINIMAL_INSERTS = "bare_inserts"  # _id index only


class FloorFailed(RuntimeError):
    """A replayed command did not do what the captured one did (no document matched, a write error)."""


def strip_framing(command: dict) -> dict:
    return {name: value for name, value in command.items() if name not in FRAMING}


@dataclass
class Step:
    """One command of one call. `entries`: journal entries it inserts, each with its sequence's
    offset from its wallet's sequence after this call's updates (0, or -1 for the first of two)."""

    database: str
    command: dict
    entries: list[tuple[dict, int]] = field(default_factory=list)
    wallet_sequences: dict = field(default_factory=dict)  # wallets this command inserts: id -> sequence


class Replay:
    """One service call's commands, ready to be sent again for other calls."""

    def __init__(self, captured: Sequence[Sent]) -> None:
        if not captured or captured[-1].name != "commitTransaction":
            raise ValueError(f"not one committed transaction: {[sent.name for sent in captured]}")
        if any(sent.reply is None for sent in captured):
            raise ValueError("the captured call had a failed command: capture a clean one")
        self.names = tuple(sent.name for sent in captured)
        self._sent = [
            (sent.database, strip_framing(sent.command)) for sent in captured if sent.name not in TRANSACTION_END
        ]
        self._fresh = _values_to_renew(self._sent)
        self._offsets = _entry_offsets(captured)

    @property
    def commands(self) -> list[tuple[str, dict]]:
        """(database, command) of the captured call, framing stripped, without the commit."""
        return list(self._sent)

    def calls(self, count: int, targets: dict | None = None) -> list[list[Step]]:
        """The steps of `count` calls; `targets` maps a captured value to one replacement per call
        (the hold a capture or release acts on)."""
        return [self._call(index, targets or {}) for index in range(count)]

    def _call(self, index: int, targets: dict) -> list[Step]:
        mapping = {old: _renewed(old) for old in self._fresh}
        mapping.update({old: news[index] for old, news in targets.items()})
        steps = []
        for position, (database, command) in enumerate(self._sent):
            step = Step(database, _substitute(command, mapping))
            if step.command.get("insert") == documents.WALLETS:
                step.wallet_sequences = {doc["_id"]: doc["sequence"] for doc in step.command["documents"]}
            if step.command.get("insert") == documents.LEDGER:
                step.entries = [
                    (document, self._offsets[position, number])
                    for number, document in enumerate(step.command["documents"])
                    if _is_wallet_entry(document)
                ]
            steps.append(step)
        return steps


def minimal_transaction(client: MongoClient, database: str, names: Sequence[str], count: int) -> list[list[Step]]:
    """`count` calls of the command kinds `names` (a findAndModify on one counter each, an insert of
    one small document each, the commit) in collections with only the _id index."""
    commands = [name for name in names if name not in TRANSACTION_END]
    counters = client[database][MINIMAL_COUNTERS]
    if counters.estimated_document_count() == 0:
        counters.insert_many([{"_id": number, "n": 0} for number in range(len(commands))])
        client[database][MINIMAL_INSERTS].insert_one({"_id": "created"})
    calls = []
    for _ in range(count):
        steps = []
        for position, name in enumerate(commands):
            if name == "findAndModify":
                command = {
                    "findAndModify": MINIMAL_COUNTERS,
                    "query": {"_id": position},
                    "update": {"$inc": {"n": 1}},
                    "new": True,
                }
            elif name == "insert":
                command = {"insert": MINIMAL_INSERTS, "documents": [{"_id": ObjectId()}]}
            else:
                command = {"find": MINIMAL_COUNTERS, "filter": {"_id": position}}
            steps.append(Step(database, command))
        calls.append(steps)
    return calls


def run(client: MongoClient, calls: Sequence[list[Step]]) -> None:
    """Each call as one transaction, with the service's transaction options, committed."""
    databases: dict = {}
    for steps in calls:
        with (
            client.start_session(causal_consistency=False) as session,
            session.start_transaction(
                read_concern=ReadConcern("snapshot"),
                write_concern=WriteConcern("majority"),
                read_preference=ReadPreference.PRIMARY,
            ),
        ):
            sequences: dict = {}
            for step in steps:
                database = databases.get(step.database)
                if database is None:
                    database = databases[step.database] = client[step.database]
                for document, offset in step.entries:
                    sequence = sequences[document["walletId"]] + offset
                    document["sequence"] = Int64(sequence)
                    document["_id"] = f"{document['walletId']}:{sequence}"
                sequences.update(step.wallet_sequences)
                reply = database.command(step.command, session=session)
                _check(step.command, reply, sequences)


def _check(command: dict, reply: dict, sequences: dict) -> None:
    if "findAndModify" in command:
        value = reply.get("value")
        if value is None:
            raise FloorFailed(f"findAndModify matched nothing: {command}")
        if command["findAndModify"] == documents.WALLETS:
            sequences[value["_id"]] = value["sequence"]
    elif "insert" in command and (reply.get("writeErrors") or reply.get("n") != len(command["documents"])):
        raise FloorFailed(f"insert failed: {reply.get('writeErrors')}")


def _is_wallet_entry(document: dict) -> bool:
    """A wallet's journal entry: placed at its wallet's sequence (a platform account's has no place)."""
    return document.get("kind") == documents.ENTRY and "walletId" in document


def _values_to_renew(sent: list[tuple[str, dict]]) -> set:
    """The inserted documents' _ids (but the entries', placed at run time) and inserted wallets' owners.

    A compound _id (a wallet claim's owner and currency) changes through its parts."""
    values: set = set()
    for _, command in sent:
        for document in command.get("documents", ()):
            if not _is_wallet_entry(document) and isinstance(document["_id"], (str, ObjectId)):
                values.add(document["_id"])
            if command["insert"] == documents.WALLETS:
                values.add(document["ownerId"])
    return values


def _entry_offsets(captured: Sequence[Sent]) -> dict[tuple[int, int], int]:
    """For each captured entry (command position, document number): its sequence minus its wallet's."""
    sequences: dict = {}
    offsets = {}
    sent = [item for item in captured if item.name not in TRANSACTION_END]
    for position, item in enumerate(sent):
        command = item.command
        if item.name == "findAndModify" and command["findAndModify"] == documents.WALLETS:
            sequences[item.reply["value"]["_id"]] = item.reply["value"]["sequence"]
        for number, document in enumerate(command.get("documents", ())):
            if command["insert"] == documents.WALLETS:
                sequences[document["_id"]] = document["sequence"]
            elif _is_wallet_entry(document):
                offsets[position, number] = document["sequence"] - sequences[document["walletId"]]
    return offsets


def _renewed(value):
    """A new value of the same type and length: a new ObjectId, or new hex after the last ':'."""
    if isinstance(value, ObjectId):
        return ObjectId()
    head, colon, tail = value.rpartition(":")
    width = max(len(tail), 16)
    return head + colon + secrets.token_hex(width // 2 + 1)[:width]


def _substitute(value, mapping: dict):
    """A deep copy of a command with every value found in `mapping` replaced."""
    if isinstance(value, dict):
        return {name: _substitute(item, mapping) for name, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, mapping) for item in value]
    if isinstance(value, (str, ObjectId)):
        return mapping.get(value, value)
    return value
