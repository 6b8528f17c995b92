"""The migration of a single-entry ledger to double entry: the audit fails before it, passes after
it, and a second run adds nothing."""

from __future__ import annotations

from bson import ObjectId

from wallet_service import Request, WalletService
from wallet_service.storage import documents
from wallet_service.storage.documents import ACCOUNTS, ENTRY, LEDGER, RESERVATION, ROUTING, WALLETS
from wallet_service.storage.routing import BUCKETS, ID_TAG, bucket_of, scatter
from wallet_service.storage.targets import MARKER


def single_entry(service: WalletService, database) -> dict[str, str]:
    """A ledger as the service wrote it before double entry: no platform postings, no currency on
    entries, holds without captures or a refunded amount."""
    rider = service.create_wallet("rider", "USD", opening_balance=5_000).wallet.id
    driver = service.create_wallet("driver", "EUR", opening_balance=300).wallet.id
    service.deposit(rider, 700)
    service.withdraw(rider, 200)
    service.transfer(rider, service.create_wallet("friend", "USD").wallet.id, 100)
    captured = service.create_reservation(rider, 1_000).reservation.id
    service.capture_reservation(captured, 800)
    service.release_reservation(service.create_reservation(rider, 50).reservation.id)
    service.create_reservation(rider, 10)
    ledger = database[LEDGER]
    ledger.delete_many({"kind": ENTRY, "account": {"$exists": True}})
    ledger.update_many({"kind": ENTRY}, {"$unset": {"currency": ""}})
    ledger.update_many({"kind": RESERVATION}, {"$unset": {"captures": "", "refundedAmount": ""}})
    return {"rider": rider, "driver": driver, "captured": captured}


def test_the_migration_makes_the_ledger_balance_and_runs_once(service, database):
    ids = single_entry(service, database)
    before = service.audit_ledger()
    assert [(found.kind, found.subject) for found in before.discrepancies] == [("ledger_imbalance", "no currency")]
    first = service.migrate_ledger()
    assert first.postings_added == 5  # 2 openings + a deposit (FUNDING), a withdrawal (PAYOUT), a capture
    assert first.entries_dated > 0
    assert first.holds_updated == 3
    assert service.audit_ledger().discrepancies == ()
    assert service.get_account("@funding", "USD").balance == -5_700
    assert service.get_account("@funding", "EUR").balance == -300
    assert service.get_account("@payouts", "USD").balance == 200
    assert service.get_account("@revenue", "USD").balance == 800
    hold = service.get_reservation(ids["captured"])
    assert [(split.account, split.amount) for split in hold.captures[0].splits] == [("@revenue", 800)]
    assert hold.refunded_amount == 0
    again = service.migrate_ledger()
    assert (again.postings_added, again.entries_dated, again.holds_updated) == (0, 0, 0)
    # A migrated hold is refunded like any other: back from @revenue.
    refunded = service.refund_reservation(ids["captured"], 300)
    assert [(entry.account, entry.amount) for entry in refunded.account_entries] == [("@revenue", 300)]
    assert service.audit_ledger().discrepancies == ()


def test_a_ledger_written_with_double_entry_is_left_alone(service, database):
    wallet = service.create_wallet("alice", "USD", opening_balance=100).wallet.id
    service.deposit(wallet, 50)
    before = list(database[LEDGER].find().sort("_id", 1))
    report = service.migrate_ledger()
    assert (report.postings_added, report.entries_dated, report.holds_updated) == (0, 0, 0)
    assert list(database[LEDGER].find().sort("_id", 1)) == before


def test_documents_written_before_the_routing_key_get_their_owners_bucket_once(service, database):
    """A ledger written before `bucket`: the migration gives each wallet and each document of an
    owner the bucket the service gives it today, leaves the platform's own documents alone, and
    routes nothing on a second run."""
    rider = service.create_wallet("rider", "USD", Request(idempotency_key="open"), opening_balance=500).wallet.id
    driver = service.create_wallet("driver", "USD").wallet.id
    service.transfer(rider, driver, 100, Request(idempotency_key="t"))
    held = service.create_reservation(rider, 200).reservation.id
    service.capture_reservation(held, 150, splits=[{"walletId": driver, "amount": 150}])
    service.open_account("@tips", "USD")
    service.roll_checkpoints()
    as_written = {
        (name, document["_id"].__repr__()): document.get("bucket")
        for name in (WALLETS, LEDGER)
        for document in database[name].find()
    }
    assert sum(bucket is not None for bucket in as_written.values()) > 20
    for name in (WALLETS, LEDGER):
        database[name].update_many({}, {"$unset": {"bucket": ""}})
    first = service.migrate_ledger()
    migrated = {
        (name, document["_id"].__repr__()): document.get("bucket")
        for name in (WALLETS, LEDGER)
        for document in database[name].find()
    }
    assert migrated == as_written  # the same bucket on each, none on the platform's own
    assert first.documents_routed == sum(bucket is not None for bucket in as_written.values())
    assert service.migrate_ledger().documents_routed == 0


def test_accounts_opened_in_the_ledger_move_to_their_registry_once(service, database):
    """Before the registry had a collection of its own, an opened account was a `platform_account`
    document in the ledger: the migration moves each, and it stays open."""
    service.open_account("@tips", "USD")
    service.open_account("@tax", "EUR")
    registered = list(database[ACCOUNTS].find().sort("createdAt", 1))
    database[LEDGER].insert_many([{**document, "kind": "platform_account"} for document in registered])
    database[ACCOUNTS].delete_one({"_id": registered[0]["_id"]})  # one moved by a run that stopped half-way
    assert service.migrate_ledger().accounts_moved == 2
    assert list(database[ACCOUNTS].find().sort("createdAt", 1)) == registered
    assert database[LEDGER].count_documents({"kind": "platform_account"}) == 0
    assert service.migrate_ledger().accounts_moved == 0
    assert service.get_account("@tips", "USD").balance == 0


def test_ids_minted_before_still_work_once_the_migration_says_everything_is_routed(
    service_database, database, service_commands, monkeypatch
):
    """A ledger written before ids carried their owner's bucket: ids that carry none, and one whose
    bytes look as if they carried another bucket than its owner's. Once migrated, every command
    names the right bucket: such an id is looked up once, outside the transaction, then remembered;
    the misleading one because the marker lists it."""
    rider_bucket = bucket_of("rider")
    raw = ObjectId().binary
    misleading = ObjectId(raw[:4] + bytes([ID_TAG]) + ((rider_bucket + 1) % BUCKETS).to_bytes(2, "big") + raw[7:])
    minted = iter([misleading])

    def minted_before(bucket: int) -> ObjectId:  # as ObjectId() did: no tag, no bucket
        return next(minted, None) or ObjectId(ObjectId().binary[:4] + b"\x00" + ObjectId().binary[5:])

    with monkeypatch.context() as before:
        before.setattr(documents, "new_id", minted_before)
        old = WalletService(service_database, time_budget=20.0)
        assert old.create_wallet("rider", "USD", opening_balance=5_000).wallet.id == str(misleading)
        driver = old.create_wallet("driver", "USD").wallet.id
        held = old.create_reservation(str(misleading), 1_000).reservation.id
    for name in (WALLETS, LEDGER):  # as the version before the routing key wrote them
        database[name].update_many({}, {"$unset": {"bucket": ""}})
    database[ROUTING].delete_many({})

    migrating = WalletService(service_database, time_budget=20.0)
    assert migrating.migrate_ledger().documents_routed > 0
    assert database[ROUTING].find_one({"_id": MARKER})["misleadingIds"] == [misleading]

    fresh = WalletService(service_database, time_budget=20.0)
    service_commands.clear()
    fresh.deposit(str(misleading), 100)
    fresh.capture_reservation(held, 400, splits=[{"walletId": driver, "amount": 400}], final=False)
    fresh.transfer(driver, str(misleading), 50)
    fresh.deposit(str(misleading), 100)
    lookups = [
        sent["filter"]["_id"] for sent in service_commands.sent if sent.get("comment") == scatter("id minted before")
    ]
    assert sorted(map(str, lookups)) == sorted([str(misleading), held, driver])  # each once
    debits = [sent["query"] for sent in service_commands.sent if sent.get("findAndModify") == WALLETS]
    assert all(query["bucket"] == bucket_of("rider" if query["_id"] == misleading else "driver") for query in debits)
    assert fresh.get_wallet(str(misleading)).balance == 5_000 + 100 + 50 + 100 - 400
    assert fresh.get_wallet(driver).balance == 400 - 50
