"""The launcher (devtools/secantus_launcher.py) changes SecantusDB's speed, never its results.

Two servers side by side: SecantusDB as it ships (`python -m secantus`) and SecantusDB through the
launcher (EmbeddedMongo, as the project starts it). Both hold the same documents: `_id`s that are
ObjectIds, "<hex>:<n>" strings, ints, Int64s, doubles and documents (`{ownerId, currency}`, one with
an array, `{walletId, sequence}` with a number in it, and two of those equal as values); fields
present or missing; a nested array. A few hundred seeded random filters (an `_id` equality, `$eq`
or `$in` with ids stored and not, an empty `$in`, a document `_id` exact or in another field order
or numeric type, `_id` ranges, no `_id` at the top level; beside equalities, ranges, `$ne`, `$in`,
`$exists`, `$elemMatch`, `$expr`, `$and`, `$or`, `$nor`, `$comment`, with `_id` anywhere in the
filter) get the same answer from both, on a collection with only the `_id` index (as `wallets`)
and on one with secondary indexes (as the ledger): the documents `find` returns, compared as raw
BSON, `count_documents`, the document a `find_one_and_update` changes and returns, `update_many`'s
counts and the document `delete_one` removes; the collections stay identical throughout. Explain
shows why the launcher is faster: for an `_id` point predicate beside other conditions, or a
document `_id` without a number in it, it names the `_id_` index and examines at most the documents
those ids name, where SecantusDB as it ships says COLLSCAN; for every other filter it gives the
same plan; beside secondary indexes the plan that runs, a `$or` of index scans, and the index of a
filter's equalities beside a condition or an operator SecantusDB gives up on.

Two answers do change, both to mongod's: `returnKey` returns the keys of the index the plan uses
(now `_id`), and a clause that raises an error on another document is no longer evaluated there.
The seed is in every failure message; SECANTUS_LAUNCHER_SEED=<n> runs another.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from random import Random
from typing import Any

import pytest
from bson import Int64, ObjectId, decode, json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import OperationFailure

from devtools.embedded_mongo import LAUNCHER, EmbeddedMongo
from devtools.paths import ROOT

SEED = int(os.environ.get("SECANTUS_LAUNCHER_SEED", "20261107"))
CASES = 300
RAW = CodecOptions(document_class=RawBSONDocument)
AFTER = ReturnDocument.AFTER
KINDS = ("wallet", "reservation", "deposit", "transfer")
STATUSES = ("active", "frozen", "open", "captured", "released")
ACCOUNTS = ("@platform", "@tips", "@fees")
TAGS = ("vip", "new", "flagged", "eu")
OWNERS = tuple("abcdefghij")


class PlainSecantus(EmbeddedMongo):
    """SecantusDB as it ships: `python -m secantus` with the options the launcher is given."""

    def command(self) -> list[str]:
        executable, launcher, *options = super().command()
        assert launcher == str(LAUNCHER)
        return [executable, "-m", "secantus", *options]


@dataclass(frozen=True)
class Servers:
    plain: EmbeddedMongo
    launched: EmbeddedMongo
    plain_client: MongoClient
    launched_client: MongoClient
    side_by_side: ThreadPoolExecutor  # asks both at once: two processes on two CPUs

    def both(self, operation: Callable, on: tuple, *arguments: Any) -> tuple[Any, Any]:
        """`operation(plain's, *arguments)` and `operation(the launcher's, *arguments)`, run at once."""
        plain, launched = self.side_by_side.map(lambda target: operation(target, *arguments), on)
        return plain, launched


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[Servers]:
    folder = tmp_path_factory.mktemp("launcher")
    plain = PlainSecantus(storage_path=folder / "plain", log_path=folder / "plain.log")
    launched = EmbeddedMongo(storage_path=folder / "launched", log_path=folder / "launched.log")
    side_by_side = ThreadPoolExecutor(2)
    try:
        plain.start()
        launched.start()
        with MongoClient(plain.uri) as plain_client, MongoClient(launched.uri) as launched_client:
            yield Servers(plain, launched, plain_client, launched_client, side_by_side)
    finally:
        list(side_by_side.map(EmbeddedMongo.stop, (plain, launched)))  # a clean stop takes 2 s: both at once
        side_by_side.shutdown()


def raw_collection(client: MongoClient, database: str, name: str) -> Collection:
    """The collection answering in raw BSON: what the server sent, byte for byte."""
    return client.get_database(database, codec_options=RAW)[name]


# ---------------------------------------------------------------- documents


def stored_ids(rng: Random) -> list[Any]:
    """`_id`s of every kind the ledger uses and some it does not: no two equal as BSON values."""
    numbers = rng.sample(range(-50, 5_000), 70)
    wallets = [ObjectId(rng.randbytes(12)) for _ in range(10)]
    return [
        *(ObjectId(rng.randbytes(12)) for _ in range(60)),
        *(f"{rng.randbytes(12).hex()}:{sequence}" for sequence in range(1, 61)),
        *numbers[:50],
        *(Int64(number) for number in numbers[50:]),
        *(number + 0.5 for number in rng.sample(range(5_000, 6_000), 10)),
        *({"ownerId": owner, "currency": currency} for owner in OWNERS for currency in ("USD", "EUR")),
        *({"ownerId": owner, "tags": rng.sample(TAGS, 2)} for owner in OWNERS[:3]),
        *({"walletId": wallet, "sequence": sequence} for sequence, wallet in enumerate(wallets, 1)),
        # Equal to the first one as a value ({sequence: 1} == {sequence: 1.0}): mongod refuses it as a
        # duplicate `_id`, SecantusDB keeps both, and a query for either finds both on both servers.
        {"walletId": wallets[0], "sequence": 1.0},
    ]


def random_document(rng: Random, document_id: Any) -> dict:
    document = {"_id": document_id, "kind": rng.choice(KINDS)}
    if rng.random() < 0.9:
        document["status"] = rng.choice(STATUSES)
    if rng.random() < 0.85:
        document["balance"] = Int64(rng.randrange(-100, 1_000))
    if rng.random() < 0.8:
        document["held"] = rng.choice((rng.randrange(0, 300), None))
    if rng.random() < 0.5:
        document["amount"] = rng.choice((rng.randrange(1, 500), Int64(rng.randrange(1, 500)), rng.random() * 500))
    if rng.random() < 0.6:
        document["entries"] = [
            {"account": rng.choice(ACCOUNTS), "amount": rng.randrange(-50, 200)} for _ in range(rng.randrange(0, 4))
        ]
    if rng.random() < 0.3:
        document["tags"] = rng.sample(TAGS, rng.randrange(1, 3))
    return document


def missing_id(rng: Random, stored: list[Any]) -> Any:
    """An `_id` no document has, or one equal to a stored one in another numeric type."""
    numbers = [value for value in stored if isinstance(value, int)]
    return rng.choice(
        (
            ObjectId(rng.randbytes(12)),
            f"{rng.randbytes(12).hex()}:0",
            rng.randrange(10_000, 20_000),
            float(rng.choice(numbers)),  # equal to a stored int: matches it, on both
            Int64(rng.choice(numbers)),
            None,
        )
    )


# ---------------------------------------------------------------- filters


@dataclass(frozen=True)
class Case:
    """A filter, and what its top-level `_id` predicate is: "point" (an equality, `$eq` or `$in` of
    scalars: `ids` are the ids it names), "document" (an equality to a document without numbers), or
    None (no `_id` at the top level, a range, a document with numbers or in an `$in`)."""

    filter: dict
    id_shape: str | None = None
    ids: tuple = ()

    @property
    def names_several_ids(self) -> bool:
        return self.id_shape == "point" and len(self.ids) > 1

    @property
    def looked_up_by_the_launcher(self) -> bool:
        """Answered from the `_id` index by the launcher where SecantusDB as it ships scans."""
        return self.id_shape == "document" or (self.id_shape == "point" and len(self.filter) > 1)


def scalar_id(rng: Random, stored: list[Any]) -> Any:
    scalars = [value for value in stored if not isinstance(value, dict)]
    return rng.choice(scalars) if rng.random() < 0.7 else missing_id(rng, stored)


def document_id(rng: Random, stored: list[Any]) -> dict:
    """A stored document `_id`, or one like it: its fields in another order (another value), another
    owner, or its number as another numeric type (the same value)."""
    value = dict(rng.choice([value for value in stored if isinstance(value, dict)]))
    change = rng.choice(("none", "none", "order", "owner", "number"))
    if change == "order":
        return dict(reversed(value.items()))
    if change == "owner" and "ownerId" in value:
        return {**value, "ownerId": "z"}
    if change == "number" and "sequence" in value:
        return {**value, "sequence": rng.choice((Int64(value["sequence"]), float(value["sequence"])))}
    return value


def holds_a_number(value: Any) -> bool:
    if isinstance(value, dict):
        return any(holds_a_number(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_a_number(item) for item in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def id_predicate(rng: Random, stored: list[Any]) -> tuple[Any, str | None, tuple]:
    """An `_id` predicate, its shape (see Case) and the ids it names."""
    shape = rng.choice(("scalar", "eq", "in", "empty in", "document", "eq document", "in with a document", "range"))
    if shape == "scalar":
        value = scalar_id(rng, stored)
        return value, "point", (value,)
    if shape == "eq":
        value = scalar_id(rng, stored)
        return {"$eq": value}, "point", (value,)
    if shape == "in":
        values = [scalar_id(rng, stored) for _ in range(rng.randrange(1, 6))]
        return {"$in": values}, "point", tuple(values)
    if shape == "empty in":
        return {"$in": []}, "point", ()
    if shape == "document":
        value = document_id(rng, stored)
        return value, (None if holds_a_number(value) else "document"), (value,)
    if shape == "eq document":
        return {"$eq": document_id(rng, stored)}, None, ()
    if shape == "in with a document":
        return {"$in": [document_id(rng, stored), scalar_id(rng, stored)]}, None, ()
    low = rng.randrange(-50, 5_000)
    return (
        rng.choice(({"$gte": low, "$lt": low + rng.randrange(1, 500)}, {"$gt": ObjectId(rng.randbytes(12))})),
        None,
        (),
    )


def condition(rng: Random, stored: list[Any], depth: int = 0) -> dict:
    """One top-level clause that never raises an error on any document."""
    n = rng.randrange(-100, 1_000)
    simple = [
        {"kind": rng.choice(KINDS)},
        {"status": rng.choice(STATUSES)},
        {"status": {"$ne": rng.choice(STATUSES)}},
        {"kind": {"$in": rng.sample(KINDS, 2)}},
        {"balance": {"$gte": n}},
        {"balance": {"$lt": n}},
        {"held": {"$exists": rng.random() < 0.5}},
        {"held": None},
        {"amount": {"$gte": rng.randrange(0, 250), "$lt": rng.randrange(250, 500)}},
        {"entries.amount": {"$gt": rng.randrange(-50, 200)}},
        {"entries": {"$elemMatch": {"account": rng.choice(ACCOUNTS), "amount": {"$gte": rng.randrange(0, 100)}}}},
        {"tags": rng.choice(TAGS)},
        {"$expr": {"$gte": [{"$subtract": ["$balance", "$held"]}, n]}},
        {"$expr": {"$lt": ["$held", "$balance"]}},
    ]
    if depth > 0:
        return rng.choice(simple)
    nested = [
        {"$and": [condition(rng, stored, 1), condition(rng, stored, 1)]},
        {"$or": [condition(rng, stored, 1), condition(rng, stored, 1)]},
        {"$nor": [condition(rng, stored, 1)]},
        {"$or": [{"_id": id_predicate(rng, stored)[0]}, condition(rng, stored, 1)]},
        {"$comment": "a comment is no condition"},
    ]
    return rng.choice(simple) if rng.random() < 0.7 else rng.choice(nested)


def random_case(rng: Random, stored: list[Any]) -> Case:
    clauses: dict = {}
    for _ in range(rng.randrange(0, 4)):
        clause = condition(rng, stored)
        clauses |= {key: value for key, value in clause.items() if key not in clauses}
    shape = rng.random()
    if shape < 0.75:  # `_id` at the top level, anywhere among the other clauses
        predicate, id_shape, ids = id_predicate(rng, stored)
        items = list(clauses.items())
        items.insert(rng.randrange(0, len(items) + 1), ("_id", predicate))
        return Case(dict(items), id_shape, ids)
    if shape < 0.9:
        return Case(clauses)
    return Case({"$and": [{"_id": id_predicate(rng, stored)[0]}, clauses]})


# ---------------------------------------------------------------- the comparison


def plan_of(client: MongoClient, collection: str, filter: dict) -> tuple[dict, dict]:
    """(the access stage, IXSCAN or COLLSCAN, and executionStats) of explain's plan for `find(filter)`."""
    explained = client.launcher.command("explain", {"find": collection, "filter": filter}, verbosity="executionStats")
    stage = explained["queryPlanner"]["winningPlan"]
    while "inputStage" in stage:
        stage = stage["inputStage"]
    return stage, explained["executionStats"]


def same_answer(
    servers: Servers, pair: tuple[Collection, Collection], where: str, operation: Callable, *arguments: Any
) -> None:
    """The operation on the plain server's collection and on the launcher's: the same answer."""
    plain, launched = servers.both(operation, pair, *arguments)
    assert plain == launched, (
        f"{where}\n{operation.__name__}\nplain:    {readable(plain)}\nlauncher: {readable(launched)}"
    )


def found(docs: Collection, case: Case) -> list[bytes]:
    return sorted(document.raw for document in docs.find(case.filter))


def counted(docs: Collection, case: Case) -> int:
    return docs.count_documents(case.filter)


def changed_one(docs: Collection, case: Case) -> RawBSONDocument | None:
    # Without a sort, which of several matches a findAndModify takes is the plan's order (mongod's
    # too): an index lookup's is the index's order, a scan's the insertion order.
    return docs.find_one_and_update(case.filter, {"$inc": {"touched": 1}}, sort=[("_id", 1)], return_document=AFTER)


def changed_all(docs: Collection, case: Case) -> tuple[int, int]:
    result = docs.update_many(case.filter, {"$inc": {"bulk": 1}})
    return result.matched_count, result.modified_count


def deleted_one(copy: Collection, case: Case) -> int:
    """Only for a filter that matches at most one document: a delete has no sort (see `changed_one`)."""
    return copy.delete_one(case.filter).deleted_count


def every_document(collection: Collection) -> list[bytes]:
    return sorted(document.raw for document in collection.find())


def readable(answer: Any) -> str:
    """An answer or a filter for a failure message, in canonical extended JSON: every BSON type shown
    (Python's repr writes an Int64 and an int alike)."""
    if isinstance(answer, bytes):
        answer = decode(answer)
    elif isinstance(answer, RawBSONDocument):
        answer = decode(answer.raw)
    elif isinstance(answer, list | tuple):
        return "[" + ", ".join(readable(item) for item in answer) + "]"
    return json_util.dumps(answer, json_options=json_util.CANONICAL_JSON_OPTIONS)


@pytest.fixture(scope="module")
def loaded(servers: Servers) -> list[Any]:
    """The same documents, in the same (shuffled) order, on both servers: in `docs` and `copy` with
    no index but `_id` (as `wallets`), in `indexed` with secondary indexes too (as the ledger)."""
    rng = Random(SEED)
    stored = stored_ids(rng)
    documents = [random_document(rng, document_id) for document_id in stored]
    rng.shuffle(documents)
    for client in (servers.plain_client, servers.launched_client):
        client.drop_database("launcher")
        for name in ("docs", "copy", "indexed"):
            client.launcher[name].insert_many(documents)
        for keys in ("kind", [("status", 1), ("balance", 1)], "entries.amount"):
            client.launcher.indexed.create_index(keys)
    return stored


def test_every_filter_gets_the_same_answer_from_both(servers, loaded):
    """find, count, findAndModify, updateMany and deleteOne, each on both, with the same writes."""
    rng = Random(SEED + 1)
    cases = [random_case(rng, loaded) for _ in range(CASES)]
    plain = raw_collection(servers.plain_client, "launcher", "docs")
    launched = raw_collection(servers.launched_client, "launcher", "docs")
    copies = (
        raw_collection(servers.plain_client, "launcher", "copy"),
        raw_collection(servers.launched_client, "launcher", "copy"),
    )

    for number, case in enumerate(cases):
        where = f"seed {SEED}, case {number}: {readable(case.filter)}"
        for operation in (found, counted, changed_one, changed_all):
            same_answer(servers, (plain, launched), where, operation, case)
        if number % 4 == 0 and copies[0].count_documents(case.filter) <= 1:
            same_answer(servers, copies, where, deleted_one, case)

    same_answer(servers, (plain, launched), f"seed {SEED}: the collections after every write", every_document)
    same_answer(servers, copies, f"seed {SEED}: the copies after every delete", every_document)


def test_explain_names_the_id_index_and_examines_only_the_named_documents(servers, loaded):
    """What makes the launcher faster, and proof that this module fails without it."""
    rng = Random(SEED + 2)
    cases = [random_case(rng, loaded) for _ in range(CASES)]
    assert sum(case.looked_up_by_the_launcher for case in cases) > CASES // 5
    for number, case in enumerate(cases):
        where = f"seed {SEED}, case {number}: {readable(case.filter)}"
        plans = servers.both(plan_of, (servers.plain_client, servers.launched_client), "docs", case.filter)
        (plain_stage, plain_stats), (launched_stage, launched_stats) = plans
        assert launched_stats["nReturned"] == plain_stats["nReturned"], where
        if case.looked_up_by_the_launcher:
            assert (launched_stage["stage"], launched_stage.get("indexName")) == ("IXSCAN", "_id_"), where
            assert plain_stage["stage"] == "COLLSCAN", where  # without the launcher this test fails
            named = servers.launched_client.launcher.docs.count_documents({"_id": case.filter["_id"]})
            assert launched_stats["totalDocsExamined"] == named <= len(case.ids), where
        else:  # left to SecantusDB: the same plan and counts
            assert launched_stage == plain_stage, where
            assert launched_stats["totalDocsExamined"] == plain_stats["totalDocsExamined"], where


def test_beside_secondary_indexes_every_filter_gets_the_same_answer_from_both(servers, loaded):
    """Where SecantusDB's own lookup may serve a filter from one clause's index, the launcher takes
    the `_id` lookup instead when it can: the answers stay the same."""
    rng = Random(SEED + 3)
    pair = (
        raw_collection(servers.plain_client, "launcher", "indexed"),
        raw_collection(servers.launched_client, "launcher", "indexed"),
    )
    for number in range(CASES // 3):
        case = random_case(rng, loaded)
        where = f"seed {SEED}, indexed case {number}: {readable(case.filter)}"
        for operation in (found, counted, changed_one, changed_all):
            same_answer(servers, pair, where, operation, case)
        if case.looked_up_by_the_launcher:
            stage, _stats = plan_of(servers.launched_client, "indexed", case.filter)
            assert (stage["stage"], stage.get("indexName")) == ("IXSCAN", "_id_"), where
    same_answer(servers, pair, f"seed {SEED}: the indexed collections after every write", every_document)


def test_explain_names_the_plan_that_runs_beside_a_secondary_index(servers, loaded):
    """SecantusDB's lookup serves `{kind, balance}` from the index on `kind` (its last resort: one
    clause alone), where its explain said COLLSCAN. Beside a top-level operator (`$expr`) it scans;
    the launcher reads the equalities' index and checks the rest on each document, and a top-level
    `$or` whose every clause has an index reads each clause's, as mongod does."""
    indexed = servers.launched_client.launcher.indexed
    by_kind = {"kind": "deposit", "balance": {"$gte": 500}}
    stage, stats = plan_of(servers.launched_client, "indexed", by_kind)
    fetched = indexed.count_documents({"kind": "deposit"})
    assert (stage["stage"], stage.get("indexName"), stats["totalDocsExamined"]) == ("IXSCAN", "kind_1", fetched)
    assert plan_of(servers.plain_client, "indexed", by_kind)[0]["stage"] == "COLLSCAN"
    beside_expr = {"kind": "deposit", "$expr": {"$gte": ["$balance", 500]}}
    stage, stats = plan_of(servers.launched_client, "indexed", beside_expr)
    assert (stage["stage"], stage.get("indexName"), stats["totalDocsExamined"]) == ("IXSCAN", "kind_1", fetched)
    assert plan_of(servers.plain_client, "indexed", beside_expr)[0]["stage"] == "COLLSCAN"
    either = {"$or": [{"kind": "deposit"}, {"entries.amount": {"$gt": 100}}]}
    explained = servers.launched_client.launcher.command(
        "explain", {"find": "indexed", "filter": either}, verbosity="executionStats"
    )
    union = explained["queryPlanner"]["winningPlan"]["inputStage"]
    assert union["stage"] == "OR"
    assert [scan["indexName"] for scan in union["inputStages"]] == ["kind_1", "entries.amount_1"]
    assert 0 < explained["executionStats"]["totalDocsExamined"] <= fetched + indexed.count_documents(either["$or"][1])
    assert plan_of(servers.plain_client, "indexed", either)[0]["stage"] == "COLLSCAN"


def test_an_in_beside_other_conditions_reads_one_point_of_the_index_per_value(servers, loaded):
    """SecantusDB plans one condition beside equalities: with `status: {$in}` and `balance: {$gte}`
    it read the index on `status` alone (or scanned); the launcher looks the filter up once per
    `$in` value on the (status, balance) index, as mongod's point intervals do. Same answers."""
    pair = (
        raw_collection(servers.plain_client, "launcher", "indexed"),
        raw_collection(servers.launched_client, "launcher", "indexed"),
    )
    two = list(STATUSES[:2])
    filters = [
        {"status": {"$in": two}, "balance": {"$gte": 500}},
        {"status": {"$in": two}, "balance": {"$gte": 500}, "kind": {"$ne": KINDS[0]}},
        {"kind": {"$in": list(KINDS[:2])}, "status": {"$in": two}, "balance": {"$lt": 100}},
    ]
    for number, filter in enumerate(filters):
        case = Case(filter=filter)
        for operation in (found, counted, changed_all):
            same_answer(servers, pair, f"in-expansion case {number}: {readable(filter)}", operation, case)
    indexed = servers.launched_client.launcher.indexed
    stage, stats = plan_of(servers.launched_client, "indexed", filters[0])
    in_range = indexed.count_documents(filters[0])
    assert (stage["stage"], stage.get("indexName")) == ("IXSCAN", "status_1_balance_1"), stage
    assert stats["totalDocsExamined"] == in_range, stats


def test_a_field_no_index_holds_is_checked_on_each_document_not_planned(servers, loaded):
    """`{status: {$in}, balance, routed}`, `routed` in no index (as a document's `bucket` beside its
    `walletId`): SecantusDB gave up on the whole filter; mongod, and the launcher, plan the rest on
    its index and check `routed` on each document fetched. Same answers."""
    two = list(STATUSES[:2])
    for client in (servers.plain_client, servers.launched_client):
        client.launcher.indexed.update_many({"balance": {"$gte": 500}}, {"$set": {"routed": 1}})
    pair = (
        raw_collection(servers.plain_client, "launcher", "indexed"),
        raw_collection(servers.launched_client, "launcher", "indexed"),
    )
    filters = [
        {"status": {"$in": two}, "balance": {"$gte": 400}, "routed": 1},
        {"status": two[0], "routed": {"$in": [1, 2]}, "balance": {"$lt": 600}},
    ]
    for number, filter in enumerate(filters):
        for operation in (found, counted):
            same_answer(servers, pair, f"unindexed case {number}: {readable(filter)}", operation, Case(filter=filter))
    stage, stats = plan_of(servers.launched_client, "indexed", filters[0])
    planned = servers.launched_client.launcher.indexed.count_documents(
        {"status": {"$in": two}, "balance": {"$gte": 400}}
    )
    assert (stage["stage"], stage.get("indexName")) == ("IXSCAN", "status_1_balance_1"), stage
    assert stats["totalDocsExamined"] == planned > stats["nReturned"] > 0, stats
    assert plan_of(servers.plain_client, "indexed", filters[0])[0]["stage"] == "COLLSCAN"


def test_a_hint_reads_the_filters_bounds_not_the_whole_index(servers):
    """SecantusDB answers a hinted query by walking every entry of the index and evaluating the
    filter on each document; mongod, and the launcher, read the filter's bounds of it only. Seen in
    an expression that fails on a document outside those bounds: evaluated there, it divides by zero."""
    documents = [{"_id": number, "s": number % 5, "b": 10, "d": number % 5} for number in range(50)]
    query = {"$expr": {"$gt": [{"$divide": ["$b", "$d"]}, 1]}, "s": 1}
    for client in (servers.plain_client, servers.launched_client):
        client.launcher.hinted.drop()
        client.launcher.hinted.insert_many(documents)
        client.launcher.hinted.create_index([("s", 1)])
    launched = servers.launched_client.launcher.hinted
    assert sorted(document["_id"] for document in launched.find(query).hint("s_1")) == list(range(1, 50, 5))
    with pytest.raises(OperationFailure, match="divide by zero"):
        list(servers.plain_client.launcher.hinted.find(query).hint("s_1"))


def test_explain_counts_a_fetched_document_the_rest_of_the_filter_rejects(servers, loaded):
    """SecantusDB reported the documents returned as examined; the lookup fetched three here."""
    three = [value for value in loaded if isinstance(value, ObjectId)][:3]
    _stage, stats = plan_of(servers.launched_client, "docs", {"_id": {"$in": three}, "kind": "no such kind"})
    assert (stats["nReturned"], stats["totalDocsExamined"]) == (0, 3)


def test_return_key_names_the_index_the_plan_now_uses(servers, loaded):
    """The one answer that is the plan itself: mongod's `returnKey` gives the keys of the index it
    used, `{_id: …}` for an `_id` lookup; SecantusDB as it ships scans and returns `{}`."""
    document_id = next(value for value in loaded if isinstance(value, str))
    query = {"_id": document_id, "kind": {"$exists": True}}
    assert list(servers.launched_client.launcher.docs.find(query, return_key=True)) == [{"_id": document_id}]
    assert list(servers.plain_client.launcher.docs.find(query, return_key=True)) == [{}]


def test_a_clause_is_evaluated_only_on_the_documents_the_id_names(servers):
    """mongod fetches the document by `_id` and evaluates the rest on it alone, so an expression
    that would fail on another document is never evaluated there. SecantusDB as it ships evaluates
    every clause before `_id` on every document, and fails."""
    documents = [{"_id": 1, "balance": 10, "held": 2}, {"_id": 2, "balance": 10, "held": 0}]
    query = {"$expr": {"$gt": [{"$divide": ["$balance", "$held"]}, 1]}, "_id": 1}
    for client in (servers.plain_client, servers.launched_client):
        client.launcher.divide.drop()
        client.launcher.divide.insert_many(documents)
    assert servers.launched_client.launcher.divide.find_one(query) == documents[0]
    with pytest.raises(OperationFailure, match="divide by zero"):
        servers.plain_client.launcher.divide.find_one(query)
    id_first = {"_id": 1, "$expr": query["$expr"]}  # there SecantusDB stops at `_id` on every other document
    assert servers.plain_client.launcher.divide.find_one(id_first) == documents[0]


def test_it_refuses_another_secantusdb_version():
    """Its wrappers were checked against 0.7.0b3's internals only: an upgrade is a conscious step."""
    script = (
        "import importlib.util, secantus\n"
        "secantus.__version__ = '0.0.0'\n"
        f"spec = importlib.util.spec_from_file_location('secantus_launcher', {str(LAUNCHER)!r})\n"
        "launcher = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(launcher)\n"
        "launcher.install()\n"
    )
    refused = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "SecantusDB 0.7.0b3" in refused.stderr, refused.stderr
    assert "this is 0.0.0" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr  # a message, not a crash
