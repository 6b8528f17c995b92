"""The outbox: every committed change of a wallet leaves its events in the same transaction; a
refused call leaves none; publishing sends each wallet's in order, at least once, never dropping one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from devtools.failpoints import write_conflict
from tests.ledger_checks import snapshot
from wallet_service import InsufficientFunds, Request, ValidationFailed, WalletService, committed_events, event_detail
from wallet_service.storage.documents import CODEC_OPTIONS, EVENT, LEDGER
from wallet_service.use_cases.publishing import ATTEMPTS


class Sink:
    """Takes events, refusing those whose id is in `refuse` (each time, or `times` times)."""

    def __init__(self, refuse: set[str] = frozenset(), times: int | None = None) -> None:
        self.received: list[dict] = []
        self.calls: list[int] = []
        self.refuse = set(refuse)
        self.times = times
        self.refused: dict[str, int] = {}

    def put(self, events: Sequence[dict]) -> list[bool]:
        self.calls.append(len(events))
        accepted = []
        for event in events:
            refuse = event["_id"] in self.refuse and (
                self.times is None or self.refused.get(event["_id"], 0) < self.times
            )
            if refuse:
                self.refused[event["_id"]] = self.refused.get(event["_id"], 0) + 1
            else:
                self.received.append(event_detail(event))
            accepted.append(not refuse)
        return accepted


def events_of(database, **query) -> list[dict]:
    ledger = database.with_options(codec_options=CODEC_OPTIONS)[LEDGER]
    return list(ledger.find({"kind": EVENT, **query}).sort([("walletId", 1), ("version", 1), ("index", 1)]))


def test_each_movement_leaves_one_event_per_wallet_it_touched(service, database):
    rider = service.create_wallet("rider", "USD", opening_balance=5_000).wallet.id
    driver = service.create_wallet("driver", "USD").wallet.id
    service.deposit(rider, 100)
    moved = service.transfer(rider, driver, 300)
    hold = service.create_reservation(rider, 1_000).reservation.id
    service.increment_reservation(hold, 200)
    service.capture_reservation(
        hold, 900, splits=[{"walletId": driver, "amount": 700}, {"account": "@revenue", "amount": 200}]
    )
    service.freeze_wallet(driver)
    service.freeze_wallet(driver)  # no change, no event
    service.unfreeze_wallet(driver)
    types = [
        (str(event["walletId"]), event["type"]) for event in sorted(events_of(database), key=lambda e: e["createdAt"])
    ]
    assert [kind for wallet, kind in types if wallet == rider] == [
        "wallet.opened",
        "wallet.deposit.created",
        "wallet.transfer.sent",
        "reservation.created",
        "reservation.incremented",
        "reservation.captured",
    ]
    assert [kind for wallet, kind in types if wallet == driver] == [
        "wallet.opened",
        "wallet.transfer.received",
        "wallet.capture.received",
        "wallet.frozen",
        "wallet.unfrozen",
    ]
    received = events_of(database, operationId=moved.operation_id)
    by_wallet = {str(event["walletId"]): event for event in received}
    assert by_wallet[driver]["data"]["wallet"]["balance"] == 300
    assert [entry["type"] for entry in by_wallet[driver]["data"]["entries"]] == ["TRANSFER_IN"]  # its own only
    assert [entry["type"] for entry in by_wallet[rider]["data"]["entries"]] == ["TRANSFER_OUT"]
    for wallet in (rider, driver):
        mine = events_of(database, walletId=by_wallet[wallet]["walletId"])
        versions = [(event["version"], event["index"]) for event in mine]
        assert versions == sorted(versions)
        assert len(set(versions)) == len(versions)
        assert all(event["sent"] is False for event in mine)
        assert mine[-1]["sequence"] == service.get_wallet(wallet).sequence


def test_a_refused_or_replayed_call_leaves_no_event(service, database):
    wallet = service.create_wallet("rider", "USD", opening_balance=100).wallet.id
    service.deposit(wallet, 5, Request(idempotency_key="once"))
    before = len(events_of(database))
    with pytest.raises(InsufficientFunds):
        service.withdraw(wallet, 1_000)
    with pytest.raises(ValidationFailed):
        service.deposit(wallet, 0)
    service.deposit(wallet, 5, Request(idempotency_key="once"))  # a replay
    assert len(events_of(database)) == before


def test_the_expiry_leaves_an_event_per_wallet(database, service):
    clock = [datetime.now(UTC).replace(microsecond=0)]
    timed = WalletService(database, clock=lambda: clock[0])
    rider = timed.create_wallet("rider", "USD", opening_balance=1_000).wallet.id
    driver = timed.create_wallet("driver", "USD").wallet.id
    fee = timed.create_reservation(rider, 300, ttl_seconds=60, on_expiry="capture", capture_to={"walletId": driver})
    timed.create_reservation(rider, 200, ttl_seconds=60)
    clock[0] += timedelta(seconds=61)
    assert timed.expire_reservations().expired == 2
    expired = [
        event for event in events_of(database) if event["type"] in ("reservation.expired", "wallet.capture.received")
    ]
    kinds = {str(event["walletId"]): event for event in expired}
    assert kinds[rider]["type"] == "reservation.expired"
    assert fee.reservation.id in kinds[rider]["data"]["reservationIds"]
    assert len(kinds[rider]["data"]["reservationIds"]) == 2
    assert kinds[rider]["data"]["wallet"]["held"] == 0
    assert kinds[driver]["type"] == "wallet.capture.received"
    assert kinds[driver]["data"]["wallet"]["balance"] == 300


def test_balance_alerts_cross_below_and_back(service, database):
    wallet = service.create_wallet("rider", "USD", opening_balance=1_000, alerts={"availableBelow": 500}).wallet
    assert wallet.alerts.available_below == 500
    service.withdraw(wallet.id, 400)  # 600: still above
    service.create_reservation(wallet.id, 200)  # 400: below
    service.withdraw(wallet.id, 100)  # 300: still below, no second alert
    service.deposit(wallet.id, 250)  # 550: restored
    alerts = [event for event in events_of(database) if event["type"].startswith("wallet.balance.")]
    assert [(event["type"], event["data"]["availableBefore"], event["data"]["available"]) for event in alerts] == [
        ("wallet.balance.low", 600, 400),
        ("wallet.balance.restored", 300, 550),
    ]
    assert all(event["index"] == 1 for event in alerts)

    def version() -> int:
        return database["wallets"].find_one({"_id": ObjectId(wallet.id)})["version"]

    before = version()
    assert service.set_wallet_alerts(wallet.id, None).alerts is None
    # No event for an alert setting, so no version either: the wallet's events' versions have no gap.
    assert version() == before
    service.withdraw(wallet.id, 500)
    assert len([event for event in events_of(database) if event["type"].startswith("wallet.balance.")]) == 2
    with pytest.raises(ValidationFailed):
        service.set_wallet_alerts(wallet.id, {"availableBelow": 0})
    with pytest.raises(ValidationFailed):
        service.create_wallet("other", "USD", alerts={"below": 5})


def test_publishing_sends_each_wallet_in_order_and_marks_them_sent(service, database):
    wallet = service.create_wallet("rider", "USD").wallet.id
    other = service.create_wallet("driver", "USD").wallet.id
    for amount in (1, 2, 3):
        service.deposit(wallet, amount)
    with committed_events() as committed:
        service.transfer(wallet, other, 4)
    assert [str(wallet_id) for wallet_id in committed.wallet_ids] == [wallet, other]
    sink = Sink()
    report = service.publish_events(sink, committed=committed)
    assert (report.sent, report.failed, report.pending) == (7, 0, 0)  # both wallets' unsent events, older first
    mine = [event for event in sink.received if event["walletId"] == wallet]
    assert [event["type"] for event in mine] == [
        "wallet.opened",
        *["wallet.deposit.created"] * 3,
        "wallet.transfer.sent",
    ]
    assert [event["version"] for event in mine] == sorted(event["version"] for event in mine)
    assert max(sink.calls) <= 10
    assert all(event["sent"] for event in events_of(database))
    assert service.publish_events(sink, older_than_seconds=0).sent == 0  # nothing twice


def test_a_refused_event_holds_back_its_wallets_later_events_and_is_never_dropped(service, database):
    wallet = service.create_wallet("rider", "USD").wallet.id
    other = service.create_wallet("driver", "USD").wallet.id
    service.deposit(wallet, 1)
    service.deposit(wallet, 2)
    service.deposit(other, 3)
    deposits = events_of(database, type="wallet.deposit.created", walletId=ObjectId(wallet))
    stuck = deposits[0]["_id"]
    sink = Sink(refuse={stuck})
    report = service.publish_events(sink, older_than_seconds=0)
    assert sink.refused[stuck] == ATTEMPTS
    assert (report.sent, report.failed, report.pending) == (3, 1, 1)
    assert [event["type"] for event in sink.received if event["walletId"] == wallet] == ["wallet.opened"]
    before = snapshot(database)
    assert {event["_id"] for event in events_of(database, sent=False)} == {stuck, deposits[1]["_id"]}
    # The sink takes it now: it goes, then the one after it, in order.
    sink.refuse.clear()
    assert service.publish_events(sink, older_than_seconds=0).sent == 2
    assert [
        event["data"]["entries"][0]["amount"]
        for event in sink.received
        if event["type"] == "wallet.deposit.created" and event["walletId"] == wallet
    ] == [1, 2]
    assert snapshot(database) != before


def test_a_sink_that_refuses_a_few_times_loses_nothing(service, database):
    wallet = service.create_wallet("rider", "USD").wallet.id
    for amount in range(1, 4):
        service.deposit(wallet, amount)
    flaky = Sink(refuse={event["_id"] for event in events_of(database)}, times=ATTEMPTS - 1)
    assert service.publish_events(flaky, older_than_seconds=0).sent == 4
    assert [event["version"] for event in flaky.received] == sorted(event["version"] for event in flaky.received)


def test_the_scheduled_publisher_takes_only_events_old_enough(service, database):
    wallet = service.create_wallet("rider", "USD").wallet.id
    sink = Sink()
    assert service.publish_events(sink, older_than_seconds=3_600).sent == 0
    assert service.publish_events(sink, older_than_seconds=0).sent == 1
    assert sink.received[0]["walletId"] == wallet


# ---------------------------------------------------------------- what a call committed, and publishing it


def test_a_call_names_the_events_its_transactions_committed_and_nothing_else(service, database, failpoints):
    wallet = service.create_wallet("rider", "USD", opening_balance=10).wallet.id
    other = service.create_wallet("driver", "USD").wallet.id
    with committed_events() as refused:
        with pytest.raises(InsufficientFunds):
            service.withdraw(wallet, 11, Request(idempotency_key="too-much"))
        service.get_wallet(wallet)
        service.list_transactions(wallet)
    assert len(refused) == 0
    with committed_events() as paid:
        service.transfer(wallet, other, 4, Request(idempotency_key="t"))
    with committed_events() as replayed:
        service.transfer(wallet, other, 4, Request(idempotency_key="t"))
    assert len(replayed) == 0
    assert [event["type"] for event in paid.events] == ["wallet.transfer.sent", "wallet.transfer.received"]
    assert {event["_id"] for event in paid.events} <= {event["_id"] for event in events_of(database)}
    # An attempt that aborts (a write conflict on its commit) names nothing: the retry's events, once.
    with failpoints.armed(write_conflict("commitTransaction")), committed_events() as retried:
        service.deposit(wallet, 1)
    assert [event["type"] for event in retried.events] == ["wallet.deposit.created"]
    assert retried.events[0]["_id"] in {event["_id"] for event in events_of(database)}
    # Outside a block nothing is collected, and blocks nest by context: the inner one takes its own.
    with committed_events() as outer:
        service.deposit(wallet, 1)
        with committed_events() as inner:
            service.deposit(other, 1)
    assert [str(event["walletId"]) for event in outer.events] == [wallet]
    assert [str(event["walletId"]) for event in inner.events] == [other]


def test_publishing_a_calls_events_takes_one_read_and_one_update(service, database, service_commands):
    wallet = service.create_wallet("rider", "USD", opening_balance=1_000, alerts={"availableBelow": 500}).wallet.id
    other = service.create_wallet("driver", "USD").wallet.id
    with committed_events() as committed:
        service.transfer(wallet, other, 600)  # the sender's transfer and its low-balance alert, the receiver's
    service_commands.clear()
    sink = Sink()
    report = service.publish_events(sink, committed=committed)
    # Both wallets' openings too (never published), each wallet's in order: a round of the sink each.
    assert (report.sent, report.failed, report.pending) == (5, 0, 0)
    assert [next(iter(command)) for command in service_commands.sent] == ["find", "update"]
    assert sink.calls == [2, 2, 1]
    assert not events_of(database, sent=False)
