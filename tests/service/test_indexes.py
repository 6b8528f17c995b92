"""Indexes: created idempotently, unique where money depends on it, TTL on operation records alone."""

from __future__ import annotations

from wallet_service import Request, WalletService
from wallet_service.storage.documents import LEDGER, OPERATION, WALLETS
from wallet_service.storage.indexes import LEDGER_INDEXES, RETIRED_INDEXES


def test_ensure_indexes_is_idempotent(service: WalletService, database):
    first = {name: database[name].index_information() for name in (WALLETS, LEDGER)}
    service.ensure_indexes()
    WalletService(database).ensure_indexes()
    assert {name: database[name].index_information() for name in (WALLETS, LEDGER)} == first
    assert {index.document["name"] for index in LEDGER_INDEXES} <= set(first[LEDGER])
    assert set(first[WALLETS]) <= {"_id_"}  # every movement updates a wallet: no other index to maintain


def test_an_index_an_earlier_version_made_is_dropped(service: WalletService, database):
    database[LEDGER].create_index(
        [("status", 1), ("expiresAt", 1)],
        partialFilterExpression={"kind": "reservation", "status": "PARTIALLY_CAPTURED"},
        name=RETIRED_INDEXES[0],
    )
    service.ensure_indexes()
    assert set(RETIRED_INDEXES) & set(database[LEDGER].index_information()) == set()


def test_index_definitions_do_not_conflict():
    definitions = [tuple(index.document["key"].items()) for index in LEDGER_INDEXES]
    assert len(definitions) == len(set(definitions))


def test_only_operation_records_can_expire(database, service):
    ttl = {
        name: info
        for collection in (WALLETS, LEDGER)
        for name, info in database[collection].index_information().items()
        if "expireAfterSeconds" in info
    }
    assert list(ttl) == ["operation_records_ttl"]
    (info,) = ttl.values()
    assert dict(info["partialFilterExpression"]) == {"kind": OPERATION}
    assert info["key"] == [("purgeAfter", 1)]


def test_operation_records_are_kept_at_least_a_day(service, database):
    wallet = service.create_wallet("a", "USD", opening_balance=5).wallet.id
    service.deposit(wallet, 1, Request(idempotency_key="k"))
    for record in database[LEDGER].find({"kind": OPERATION}):
        assert (record["purgeAfter"] - record["createdAt"]).total_seconds() >= 24 * 3600
    # entries and reservations carry no purge date, so the TTL index can never touch them
    assert database[LEDGER].count_documents({"kind": {"$ne": OPERATION}, "purgeAfter": {"$exists": True}}) == 0
