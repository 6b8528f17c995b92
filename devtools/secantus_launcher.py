"""SecantusDB as the project starts it: its own server, with gaps in its planner closed.

Run as `python devtools/secantus_launcher.py <SecantusDB's own options>` (devtools/embedded_mongo.py
does). It imports SecantusDB, wraps six of its planner's functions (and, to know when its index
catalog changes, the ones that change it), then hands over to SecantusDB's own
command line. SecantusDB is GPL-2.0: this file calls its functions and copies none of their code,
and like SecantusDB it is a development and test tool, never part of the layer or of anything
`sam build` makes.

1. **An `_id` point lookup beside other conditions.** SecantusDB answers `{_id: x}` from its
   `_id` index, but any other key beside it (`{_id: x, balance: {$gte: 5}}`, `{_id: x, $expr: …}`,
   and the `{_id: x, $and: [query]}` its own findAndModify writes with) sends it to a collection
   scan. mongod looks the document up by `_id` and checks the rest on it. So does this: a filter
   whose top level holds an `_id` equality (or `$in` of scalars) is answered from
   `Storage._try_index_id_keys` on `{_id: …}` alone, and every caller of that function already
   tests the whole filter on each document it fetches. An equality to a literal document
   (`{_id: {ownerId: "a", currency: "USD"}}`, alone or not), which SecantusDB always scans for,
   is looked up by that document's `_id` key: document equality is exact, so that key is the only
   one that can match, unless a number is in it (`{n: 1}` equals `{n: 1.0}`, whose key differs;
   such a document is left to SecantusDB's scan). Left to SecantusDB as it is: filters with a
   collation (its write paths scan then anyway), time-series collections, `$text`, `$near`.
2. **`explain` names the plan the query runs.** `Storage._pick_index_for_filter`, which explain
   reads, answers the `_id_` index for the same filters (the rest of the filter becomes the FETCH
   stage's), and, like the lookup it mirrors, tries each clause alone when no index serves the
   whole filter and no top-level operator makes the lookup scan (SecantusDB's explain said COLLSCAN
   for `{account: a, currency: c, kind: k}` while the query itself read the index on `account`).
3. **`explain`'s `totalDocsExamined` is what the index lookup fetched**, counted in
   `Storage._try_index_lookup` (wrapped in `commands._explain`), where SecantusDB reports the
   documents returned (a plan that fetches a thousand documents to return one looked like a
   perfect one). A collection scan already reports the collection's size.
4. **A top-level `$or` whose every clause an index serves** is answered from the union of each
   clause's own lookup, where SecantusDB scans for any top-level operator: mongod plans it as an
   OR of index scans (the expiry job's due holds are one clause per open status, each on its own
   partial index). Explain names an OR stage over each clause's index.
5. **Part of a filter on an index.** SecantusDB plans a filter of equalities and at most one
   condition, and nothing at all beside a top-level operator (`$expr`, `$or`); otherwise, as a
   last resort, one clause alone. mongod plans the part of the filter an index serves and checks
   the rest on each document. So when SecantusDB gives up, the lookup tries the filter's
   equalities with one of its conditions each, then its equalities alone (`{kind, status,
   expiresAt: {$lte: t}, _id: {$nin: [...]}}` reads the due holds' index, the `$nin` checked on
   each), and explain names the same index.

   A field that no index holds, as a key or in its partial filter (a document's `bucket`, the
   routing key, beside its `walletId`), is never planned: the filter is planned without it, and
   it is checked on each document fetched, as mongod does (SecantusDB planned the whole filter
   or nothing: `{walletId: {$in}, bucket: {$in}, kind, status: {$in}}` exploded into every
   combination of the two `$in`s).

6. **`$in` beside other conditions.** SecantusDB plans equalities and one condition: for
   `{walletId: {$in: [200 ids]}, kind: k, status: {$in: [...]}}` it walked every ledger document of
   the 200 wallets. mongod explodes an `$in` into point intervals; so does this: a filter with two
   conditions or more, one an `$in` of at most IN_EXPANSION_LIMIT scalars, is answered from the
   union of the lookups of the filter with that field equal to each value, when an index serves
   every one of them (each document found is checked against the whole filter, as before).
7. **A hint walks the whole index.** SecantusDB answers a hinted query by walking every entry of the
   hinted index (a partial index on the ledger's entries: all of them) and checking the filter on
   each; mongod scans the index within the filter's bounds. So, when the filter is planned on an
   index without the hint (as above), its lookup answers instead: the same documents, the filter
   being checked on each. A hint the filter gives no bounds on is walked as before.
8. **The transaction lifetime.** SecantusDB ends a transaction left idle past a lifetime its server
   takes in its constructor (60 s, mongod's `transactionLifetimeLimitSeconds` default) and offers no
   option for it. `--transaction-lifetime-seconds` (TRANSACTION_LIFETIME_SECONDS, 10, what the
   service is designed for: wallet_service.ledger.limits) is passed to that constructor, so a transaction
   whose client died holds its wallet seconds, not a minute. As on mongod, `setParameter` changes it
   at runtime and `getParameter` reports it (`transactionLifetimeLimitSeconds`, an integer of at
   least 1: anything else is 2 BadValue, nothing changed). SecantusDB reaps only when another
   transaction's statement comes by, so a dead client's transaction on an otherwise quiet server
   stayed open for good (and a `dropDatabase` behind it waited on it for minutes); as mongod's
   periodic job does, a thread of the launcher reaps every REAP_INTERVAL_SECONDS.

Written for SecantusDB 0.7.0b3 and refused on any other version: the wrapped functions are its
internals, so an upgrade is a conscious step (check the wrappers, rerun
tests/tooling/test_secantus_launcher.py, change SECANTUS_VERSION).
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

SECANTUS_VERSION = "0.7.0b3"
# The lifetime of a transaction (seconds): wallet_service.ledger.limits.TRANSACTION_LIFETIME_SECONDS, said
# again here because this script runs without the layer on its path (a test compares the two).
TRANSACTION_LIFETIME_SECONDS = 10.0
REAP_INTERVAL_SECONDS = 1.0
LIFETIME_PARAMETER = "transactionLifetimeLimitSeconds"
IN_EXPANSION_LIMIT = 1000  # values of an `$in` looked up one by one, at most
# SecantusDB's Storage methods that may change a collection's indexes (the launcher's view of which
# fields an index holds is read again after each; a stale view could only cost a plan, never an answer).
INDEX_CHANGES = (
    "create_index",
    "drop_index",
    "drop_all_indexes",
    "drop_collection",
    "drop_database",
    "rename_collection",
    "set_index_options",
)
# Top-level operators that only add conditions to the `_id` equality beside them.
CONJUNCTS = frozenset({"$and", "$or", "$nor", "$expr", "$comment"})
# Operators whose answer is not only "does this document match" (a text score, a distance order).
UNTOUCHED_OPERATORS = frozenset({"$text", "$near", "$nearSphere", "$geoNear"})


def id_lookup(storage: Any, db: str, coll: str, filter: Any, collation: Any) -> tuple[str, Any] | None:
    """How the `_id` index answers `filter` as mongod's planner would, where SecantusDB would scan:
    ("point", spec) for an `_id` equality or `$in` of scalars beside other conditions, to look up as
    `{_id: spec}`; ("document", id) for an equality to a literal document (`{_id: {ownerId: …,
    currency: …}}`), alone or not, to look up by that id's key. None leaves the filter to SecantusDB."""
    from secantus import storage as secantus_storage

    if not isinstance(filter, Mapping) or "_id" not in filter or collation is not None:
        return None
    for key, value in filter.items():
        if not isinstance(key, str) or key in UNTOUCHED_OPERATORS:
            return None
        if key.startswith("$") and key not in CONJUNCTS:
            return None
        if isinstance(value, Mapping) and any(operator in UNTOUCHED_OPERATORS for operator in value):
            return None
    spec = filter["_id"]
    if storage._is_timeseries(db, coll):
        return None
    if isinstance(spec, Mapping) and not any(isinstance(key, str) and key.startswith("$") for key in spec):
        # Document equality is exact (field order, types) except for numbers: `{n: 1}` also matches
        # `{n: 1.0}` or `{n: Int64(1)}`, whose keys differ. So only a document with no number in it.
        return None if _holds_a_number(spec) else ("document", spec)
    if len(filter) > 1 and secantus_storage._id_point_lookup_keys(spec) is not None:
        return "point", spec
    return None


def _holds_a_number(value: Any) -> bool:
    from secantus.query import _is_bson_number

    if isinstance(value, Mapping):
        return any(_holds_a_number(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_a_number(item) for item in value)
    return _is_bson_number(value)


def or_clauses(filter: Any, collation: Any) -> list | None:
    """The clauses of a top-level `$or` that only adds conditions to the rest, else None."""
    if not isinstance(filter, Mapping) or collation is not None:
        return None
    clauses = filter.get("$or")
    if not isinstance(clauses, list) or not clauses or not all(isinstance(clause, Mapping) for clause in clauses):
        return None
    for key in filter:
        if not isinstance(key, str) or key in UNTOUCHED_OPERATORS or (key.startswith("$") and key not in CONJUNCTS):
            return None
    return clauses


def narrower_filters(filter: Any, collation: Any) -> list[dict]:
    """Parts of a filter (a top-level AND) that an index may serve where SecantusDB gives up on the
    whole: its equalities with one of its conditions each, then its equalities alone. SecantusDB
    plans equalities and at most one condition, and nothing beside a top-level operator; mongod
    plans the part an index serves and checks the rest on each document, as every caller does here."""
    if not isinstance(filter, Mapping) or collation is not None or any(key in UNTOUCHED_OPERATORS for key in filter):
        return []
    fields = {key: value for key, value in filter.items() if isinstance(key, str) and not key.startswith("$")}
    conditions = {key: value for key, value in fields.items() if _is_condition(value)}
    if len(fields) == len(filter) and len(conditions) < 2:
        return []  # SecantusDB's own planner tried all of these
    if any(operator in UNTOUCHED_OPERATORS for value in conditions.values() for operator in value):
        return []
    equalities = {key: value for key, value in fields.items() if key not in conditions}
    parts = [{**equalities, key: value} for key, value in conditions.items()] + [equalities]
    return [part for part in parts if part and len(part) < len(filter)]


def in_clauses(filter: Any, collation: Any) -> list[dict] | None:
    """The filter with its first `$in` field equal to each of its values, one filter per value, when
    it has two conditions or more (SecantusDB plans one) and that `$in` holds only scalars."""
    if not isinstance(filter, Mapping) or collation is not None:
        return None
    if any(not isinstance(key, str) or key.startswith("$") for key in filter):
        return None
    conditions = [key for key, value in filter.items() if _is_condition(value)]
    if len(conditions) < 2:
        return None
    for key in conditions:
        value = filter[key]
        values = value.get("$in") if len(value) == 1 else None
        if (
            isinstance(values, list)
            and 0 < len(values) <= IN_EXPANSION_LIMIT
            and all(not isinstance(item, Mapping | list) and not hasattr(item, "pattern") for item in values)
        ):
            return [{**filter, key: item} for item in values]
    return None


def _is_condition(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(str(key).startswith("$") for key in value)


_examined = threading.local()
_hinted = threading.local()  # the filter of the find_matching call running on this thread


def install() -> None:
    """Wrap SecantusDB's planner and explain; refuse any version they were not written for."""
    import secantus
    from secantus import commands
    from secantus import storage as secantus_storage
    from secantus.storage import _ID_INDEX_NAME, Storage

    if secantus.__version__ != SECANTUS_VERSION:
        raise SystemExit(
            f"devtools/secantus_launcher.py was written for SecantusDB {SECANTUS_VERSION}, and this is "
            f"{secantus.__version__}: check its wrappers against the new version, run "
            "tests/tooling/test_secantus_launcher.py, then change SECANTUS_VERSION"
        )

    try_index_id_keys = Storage._try_index_id_keys
    pick_index_for_filter = Storage._pick_index_for_filter
    try_index_lookup = Storage._try_index_lookup
    find_matching_ = Storage.find_matching
    candidates_from_hint = Storage._candidates_from_hint
    explain = commands._explain

    indexed_fields: dict[tuple[str, str], set[str]] = {}  # per collection; emptied whenever an index may change

    def changes_indexes(function):
        @functools.wraps(function)
        def wrapper(self, *args, **kwargs):
            indexed_fields.clear()
            try:
                return function(self, *args, **kwargs)
            finally:
                indexed_fields.clear()

        return wrapper

    for name in INDEX_CHANGES:
        setattr(Storage, name, changes_indexes(getattr(Storage, name)))

    def indexed_part(self, db, coll, filter, collation):
        """The filter without its fields that no index holds (as a key or in its partial filter),
        when it has some beside fields an index does hold; else None. mongod never bounds a scan
        by such a field (a wallet's `bucket` beside its `walletId`): it checks it on each document
        fetched, as every caller does here. SecantusDB planned the whole filter or gave up on it."""
        if not isinstance(filter, Mapping) or collation is not None:
            return None
        indexed = indexed_fields.get((db, coll))
        if indexed is None:  # reading the catalog is a tenth of a find's time: once per change
            indexed = {"_id"}
            partial = self._partial_filters(db, coll)
            for name, key_spec, _sparse, _unique in self._all_indexes(db, coll):
                indexed.update(key_spec)
                indexed.update(partial.get(name, {}))
            indexed_fields[(db, coll)] = indexed
        fields = [key for key in filter if isinstance(key, str) and not key.startswith("$")]
        unindexed = [key for key in fields if key not in indexed]
        if not unindexed or len(unindexed) == len(fields):
            return None
        return {key: value for key, value in filter.items() if key not in unindexed}

    def _try_index_id_keys(self, db, coll, filter, *, collation=None):
        lookup = id_lookup(self, db, coll, filter, collation)
        narrowed = indexed_part(self, db, coll, filter, collation) if lookup is None else None
        if narrowed is not None:
            return self._try_index_id_keys(db, coll, narrowed, collation=collation)
        clauses = or_clauses(filter, collation) if lookup is None else None
        if clauses is None and lookup is None:
            clauses = in_clauses(filter, collation)
        if clauses is not None:
            found = [self._try_index_id_keys(db, coll, clause, collation=collation) for clause in clauses]
            if all(keys is not None for keys in found):  # each clause on an index: their union
                return list(dict.fromkeys(key for keys in found for key in keys))
        if lookup is None:
            found = try_index_id_keys(self, db, coll, filter, collation=collation)
            for part in narrower_filters(filter, collation) if found is None else ():
                found = self._try_index_id_keys(db, coll, part, collation=collation)
                if found is not None:
                    break
            return found
        how, spec = lookup
        if how == "point":
            return try_index_id_keys(self, db, coll, {"_id": spec}, collation=collation)
        found = self._doc_recordid(db, coll, secantus_storage._id_key(spec))
        return [] if found is None else [found]

    def _pick_index_for_filter(self, db, coll, filter, *, collation=None):
        if id_lookup(self, db, coll, filter, collation) is not None:
            return _ID_INDEX_NAME, {"_id": 1}
        narrowed = indexed_part(self, db, coll, filter, collation)
        if narrowed is not None:
            return _pick_index_for_filter(self, db, coll, narrowed, collation=collation)
        clauses = or_clauses(filter, collation)
        if clauses is not None:
            picks = [_pick_index_for_filter(self, db, coll, clause, collation=collation) for clause in clauses]
            if all(pick is not None for pick in picks):
                partial = self._partial_filters(db, coll)
                _examined.or_picks = [(name, key_spec, name in partial) for name, key_spec in picks]
                return picks[0]
        expanded = in_clauses(filter, collation)
        if expanded is not None:
            picks = [_pick_index_for_filter(self, db, coll, clause, collation=collation) for clause in expanded]
            if all(pick is not None for pick in picks):  # the lookup's union: the first clause's index names it
                return picks[0]
        picked = pick_index_for_filter(self, db, coll, filter, collation=collation)
        if picked is not None or not isinstance(filter, Mapping) or len(filter) < 2:
            return picked
        # As the lookup goes on: SecantusDB's last resort, which its explain lacks (one clause on an
        # index, the rest checked on each document; never beside a top-level operator), then ours.
        if not any(isinstance(field, str) and field.startswith("$") for field in filter):
            for field, clause in filter.items():
                picked = _pick_index_for_filter(self, db, coll, {field: clause}, collation=collation)
                if picked is not None:
                    return picked
        for part in narrower_filters(filter, collation):
            picked = _pick_index_for_filter(self, db, coll, part, collation=collation)
            if picked is not None:
                return picked
        return None

    def find_matching(self, db, coll, filter=None, **options):
        outer = getattr(_hinted, "filter", None), getattr(_hinted, "collation", None)
        _hinted.filter, _hinted.collation = filter, options.get("collation")
        try:
            return find_matching_(self, db, coll, filter, **options)
        finally:
            _hinted.filter, _hinted.collation = outer

    def _candidates_from_hint(self, db, coll, resolved, sort_field, sort_dir):
        filter = getattr(_hinted, "filter", None)
        if resolved not in ("$natural", _ID_INDEX_NAME) and filter:
            found = self._try_index_lookup(db, coll, filter, collation=_hinted.collation)
            if found is not None:  # the filter's own bounds; the caller sorts, and checks the filter on each
                return found, False
        return candidates_from_hint(self, db, coll, resolved, sort_field, sort_dir)

    def _try_index_lookup(self, db, coll, filter, *, collation=None):
        found = try_index_lookup(self, db, coll, filter, collation=collation)
        if found is not None and getattr(_examined, "active", False):
            _examined.count = (_examined.count or 0) + len(found)
        return found

    def _explain(doc, ctx):
        _examined.active, _examined.count, _examined.or_picks = True, None, None
        try:
            reply = explain(doc, ctx)
            fetched, or_picks = _examined.count, _examined.or_picks
        finally:
            _examined.active, _examined.count, _examined.or_picks = False, None, None
        stats = reply.get("executionStats")
        plan = reply.get("queryPlanner", {}).get("winningPlan")
        # Only where the filter's index lookup ran (not a walk of an index for a sort, or a hint).
        if isinstance(stats, dict) and fetched is not None and _uses_an_index(plan):
            stats["totalDocsExamined"] = stats["totalKeysExamined"] = fetched
        if or_picks and _uses_an_index(plan):
            _scan_each_clause(plan, or_picks)
        return reply

    Storage._try_index_id_keys = _try_index_id_keys
    Storage._pick_index_for_filter = _pick_index_for_filter
    Storage._try_index_lookup = _try_index_lookup
    Storage.find_matching = find_matching
    Storage._candidates_from_hint = _candidates_from_hint
    commands._explain = _explain
    commands._HANDLERS["explain"] = _explain


def _uses_an_index(plan: Any) -> bool:
    if not isinstance(plan, Mapping):
        return False
    return plan.get("stage") == "IXSCAN" or _uses_an_index(plan.get("inputStage"))


def _scan_each_clause(plan: dict, picks: list[tuple[str, dict, bool]]) -> None:
    """Put an OR stage over one index scan per `$or` clause where the plan's index scan is."""
    while plan["inputStage"].get("stage") != "IXSCAN":
        plan = plan["inputStage"]
    scan = plan["inputStage"]
    plan["inputStage"] = {
        "stage": "OR",
        "inputStages": [
            {
                **scan,
                "keyPattern": key_spec,
                "indexName": name,
                "multiKeyPaths": {field: [] for field in key_spec},
                "isPartial": partial,
            }
            for name, key_spec, partial in picks
        ],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--transaction-lifetime-seconds", type=float, default=TRANSACTION_LIFETIME_SECONDS)
    ours, theirs = parser.parse_known_args(argv)
    if ours.transaction_lifetime_seconds <= 0:
        raise SystemExit("--transaction-lifetime-seconds must be positive")
    install()
    install_lifetime_parameter(ours.transaction_lifetime_seconds)
    from secantus import cli
    from secantus.cli import main as secantus_main

    cli.SecantusDBServer = functools.partial(
        _server_reaping_expired_transactions, cli.SecantusDBServer, ours.transaction_lifetime_seconds
    )
    return secantus_main(theirs)


def install_lifetime_parameter(default_seconds: float) -> None:
    """`setParameter` and `getParameter` for transactionLifetimeLimitSeconds (the reaper applies it)."""
    from secantus import commands, serverparams

    coerce, get_parameter = serverparams._coerce, commands._get_parameter
    default = int(default_seconds) if float(default_seconds).is_integer() else default_seconds

    def _coerce(kind, value):
        if kind != LIFETIME_PARAMETER:
            return coerce(kind, value)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 1 or value != int(value):
            raise serverparams._invalid_value(LIFETIME_PARAMETER, value)
        return int(value)

    def _get_parameter(doc, ctx):
        reply = get_parameter(doc, ctx)
        asked = (
            doc.get("getParameter") == "*"
            or LIFETIME_PARAMETER in doc
            or not any(
                key != "getParameter" and not key.startswith("$") and not serverparams.is_generic_arg(key)
                for key in doc
            )
        )
        if reply.get("ok") and asked and LIFETIME_PARAMETER not in reply:
            chosen = ctx.server_params.get(LIFETIME_PARAMETER) if ctx.server_params is not None else None
            reply[LIFETIME_PARAMETER] = default if chosen is None else chosen
        return reply

    serverparams._SETTABLE[LIFETIME_PARAMETER] = LIFETIME_PARAMETER
    serverparams._coerce = _coerce
    commands._get_parameter = _get_parameter
    commands._HANDLERS["getParameter"] = _get_parameter


def _server_reaping_expired_transactions(server_class, lifetime_seconds: float, *args, **kwargs):
    """SecantusDB's server with our transaction lifetime, and a thread that reaps expired transactions."""
    server = server_class(*args, transaction_lifetime_seconds=lifetime_seconds, **kwargs)

    def reap() -> None:
        while True:
            time.sleep(REAP_INTERVAL_SECONDS)
            chosen = server.server_params.get(LIFETIME_PARAMETER)  # set by setParameter, else None
            if chosen is not None:
                server.transactions._lifetime = float(chosen)
            server.transactions.prune_expired()

    threading.Thread(target=reap, name="launcher-transaction-reaper", daemon=True).start()
    return server


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
