"""Platform balances from checkpoints (wallet_service/use_cases/checkpoints.py): a checkpoint plus the postings
since is always the sum of every posting, whatever was rolled when; rolls are exact under
concurrent movements; reads stay on the tail; the audit finds a checkpoint its postings do not
explain, whether its postings are recent (read in the audit's transaction) or settled (outside it)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from bson import Int64, ObjectId

from tests.ledger_checks import platform_balances
from wallet_service import Request, WalletService
from wallet_service.storage.documents import CHECKPOINT, ENTRY, LEDGER
from wallet_service.use_cases import checkpoints

SPLIT = 100  # each ride's capture: 70 to the driver, 30 to @revenue


def rides(service: WalletService, rider: str, driver: str, count: int, tag: str) -> None:
    for number in range(count):
        hold = service.create_reservation(rider, SPLIT, Request(idempotency_key=f"{tag}-hold-{number}")).reservation.id
        splits = [{"walletId": driver, "amount": 70}, {"account": "@revenue", "amount": SPLIT - 70}]
        service.capture_reservation(hold, SPLIT, Request(idempotency_key=f"{tag}-capture-{number}"), splits=splits)


@pytest.fixture
def town(service: WalletService) -> dict[str, str]:
    return {
        "rider": service.create_wallet("rider", "USD", opening_balance=10**9).wallet.id,
        "driver": service.create_wallet("driver", "USD").wallet.id,
    }


def checkpoint_of(database, name: str, currency: str) -> dict | None:
    return database[LEDGER].find_one({"_id": checkpoints.checkpoint_id(name, currency)})


def tail_of(database, name: str, currency: str) -> list[dict]:
    return list(database[LEDGER].find({"account": name, "currency": currency, "kind": ENTRY, "tail": True}))


def test_the_first_read_makes_the_checkpoint_and_the_balance_stays_the_sum(service, database, town):
    rides(service, town["rider"], town["driver"], 5, "first")
    assert checkpoint_of(database, "@revenue", "USD") is None
    assert len(tail_of(database, "@revenue", "USD")) == 5
    assert service.get_account("@revenue", "USD").balance == 150
    made = checkpoint_of(database, "@revenue", "USD")
    assert (made["balanceDelta"], made["postings"], made["rolls"], made["tail"]) == (150, 5, 1, True)
    assert tail_of(database, "@revenue", "USD") == []
    rides(service, town["rider"], town["driver"], 3, "later")
    assert service.get_account("@revenue", "USD").balance == 240  # checkpoint 150 and a tail of 90
    assert checkpoint_of(database, "@revenue", "USD")["postings"] == 5  # a short tail is not rolled by a read
    assert platform_balances(database)[("@revenue", "USD")] == 240


def test_an_account_with_nothing_on_it_reads_zero(service, database):
    assert service.get_account("@revenue", "JPY").balance == 0
    assert checkpoint_of(database, "@revenue", "JPY")["postings"] == 0
    assert service.get_account("@revenue", "JPY").balance == 0


def test_a_read_that_finds_a_long_tail_rolls_one_batch(service, database, town, monkeypatch):
    monkeypatch.setattr(checkpoints, "LONG_TAIL", 4)
    monkeypatch.setattr(checkpoints, "ROLL_BATCH", 3)
    service.get_account("@revenue", "USD")  # the checkpoint, empty
    rides(service, town["rider"], town["driver"], 10, "long")
    assert service.get_account("@revenue", "USD").balance == 300
    assert checkpoint_of(database, "@revenue", "USD")["postings"] == 3
    assert service.get_account("@revenue", "USD").balance == 300
    assert service.get_account("@revenue", "USD").balance == 300
    assert checkpoint_of(database, "@revenue", "USD")["postings"] == 6  # the third read found a tail of 4
    assert len(tail_of(database, "@revenue", "USD")) == 4


def test_the_schedule_rolls_every_account_in_every_currency_in_batches(service, database, town, monkeypatch):
    monkeypatch.setattr(checkpoints, "ROLL_BATCH", 4)
    euros = service.create_wallet("rider", "EUR", opening_balance=5_000).wallet.id
    service.withdraw(euros, 700)
    service.open_account("@tips", "USD")
    rides(service, town["rider"], town["driver"], 9, "sched")
    tip = service.create_reservation(town["rider"], 50).reservation.id
    service.capture_reservation(tip, 50, splits=[{"account": "@tips", "amount": 50}])
    before = platform_balances(database)

    report = service.roll_checkpoints()

    # @funding in EUR and USD, @payouts in EUR, @revenue and @tips in USD.
    assert (report.accounts, report.postings, report.finished) == (5, 1 + 1 + 1 + 9 + 1, True)
    assert checkpoint_of(database, "@revenue", "USD")["rolls"] == 3  # 9 postings, 4 a batch
    assert database[LEDGER].count_documents({"kind": ENTRY, "tail": True}) == 0
    for (name, currency), total in before.items():
        assert checkpoint_of(database, name, currency)["balanceDelta"] == total
        assert service.get_account(name, currency).balance == total
    assert service.roll_checkpoints().postings == 0
    assert service.audit_ledger().discrepancies == ()


def test_the_schedule_stops_at_its_time_limit_and_says_so(service, database, town):
    rides(service, town["rider"], town["driver"], 2, "limit")
    report = service.roll_checkpoints(time_limit=0)
    assert (report.accounts, report.postings, report.finished) == (0, 0, False)
    assert len(tail_of(database, "@revenue", "USD")) == 2


def test_postings_from_before_checkpoints_count_and_join_the_first_checkpoint(service, database, town):
    rides(service, town["rider"], town["driver"], 4, "old")
    database[LEDGER].update_many({"account": {"$exists": True}}, {"$unset": {"tail": ""}})  # as written before
    assert service.get_account("@revenue", "USD").balance == 120  # never rolled: every posting counts
    assert checkpoint_of(database, "@revenue", "USD")["postings"] == 4
    rides(service, town["rider"], town["driver"], 1, "new")
    assert service.get_account("@revenue", "USD").balance == 150
    assert service.audit_ledger().discrepancies == ()


def test_the_postings_listing_never_shows_the_checkpoint(service, town):
    rides(service, town["rider"], town["driver"], 5, "list")
    service.roll_checkpoints()
    rides(service, town["rider"], town["driver"], 2, "more")
    seen, cursor = [], None
    while True:
        page = service.list_account_entries("@revenue", "USD", limit=2, cursor=cursor)
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 7
    assert all(ObjectId.is_valid(item.id) and item.type == "CAPTURE_IN" for item in seen)


def test_a_balance_read_with_a_checkpoint_is_one_aggregation(service, town, service_commands):
    rides(service, town["rider"], town["driver"], 2, "trips")
    service.roll_checkpoints()
    service_commands.clear()
    service.get_account("@revenue", "USD")
    assert [sent["aggregate"] for sent in service_commands.sent] == [LEDGER]
    assert service_commands.sent[0]["readConcern"] == {"level": "snapshot"}


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param(
            lambda db: db[LEDGER].update_one(
                {"kind": CHECKPOINT, "account": "@revenue"}, {"$inc": {"balanceDelta": Int64(1)}}
            ),
            id="sum",
        ),
        pytest.param(
            lambda db: db[LEDGER].update_one({"kind": ENTRY, "account": "@revenue"}, {"$set": {"tail": True}}),
            id="a rolled posting back in the tail",
        ),
        pytest.param(
            lambda db: db[LEDGER].update_one({"kind": ENTRY, "account": "@revenue"}, {"$unset": {"tail": ""}}),
            id="a posting outside checkpoint and tail",
        ),
    ],
)
@pytest.mark.parametrize("age", ["recent", "settled"])
def test_the_audit_finds_a_checkpoint_its_postings_do_not_explain(
    service, service_database, database, town, plant, age
):
    rides(service, town["rider"], town["driver"], 3, "audit")
    service.roll_checkpoints()
    if age == "settled":  # the audit's clock an hour on
        service = WalletService(service_database, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    assert service.audit_ledger().checkpoints == 2  # @funding and @revenue in USD
    plant(database)
    report = service.audit_ledger()
    assert {(found.kind, found.subject) for found in report.discrepancies} == {("checkpoint_mismatch", "@revenue USD")}
    assert report.wallet_mismatches == 1


def test_rolls_racing_movements_and_reads_lose_and_count_twice_nothing(service, database, town, monkeypatch):
    """Captures pay @revenue while two rollers roll and a reader reads: every read is the sum of the
    postings at some moment (never less than one before it, @revenue only grows, never more than all),
    and at the end the checkpoint and the tail hold every posting exactly once."""
    monkeypatch.setattr(checkpoints, "ROLL_BATCH", 5)
    service.get_account("@revenue", "USD")
    done = threading.Event()
    reads: list[int] = []
    failures: list[BaseException] = []

    def keep(action) -> None:
        try:
            while not done.is_set():
                action()
        except BaseException as error:  # reported below: a thread's failure must fail the test
            failures.append(error)

    workers = [
        threading.Thread(target=keep, args=(service.roll_checkpoints,)),
        threading.Thread(target=keep, args=(service.roll_checkpoints,)),
        threading.Thread(target=keep, args=(lambda: reads.append(service.get_account("@revenue", "USD").balance),)),
    ]
    for worker in workers:
        worker.start()
    try:
        rides(service, town["rider"], town["driver"], 40, "race")
    finally:
        done.set()
        for worker in workers:
            worker.join()
    assert failures == []
    assert len(reads) > 5
    assert reads == sorted(reads)
    assert reads[-1] <= 40 * 30
    final = checkpoint_of(database, "@revenue", "USD")
    tail = tail_of(database, "@revenue", "USD")
    assert final["postings"] + len(tail) == 40
    assert final["balanceDelta"] + sum(posting["balanceDelta"] for posting in tail) == 40 * 30
    assert service.get_account("@revenue", "USD").balance == 40 * 30
    assert service.audit_ledger().discrepancies == ()
