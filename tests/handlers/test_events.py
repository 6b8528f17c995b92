"""Every sample event in events/ drives its function in-process against the database.

The events carry fixed example ids; each test swaps in the ids of documents it created, so the
events' shape (route, headers, claims, body) is what is under test.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.lambda_harness import EVENTS, FUNCTIONS, LambdaContext, function_module, invoke
from tests.ledger_checks import NOTHING_TO_MIGRATE, assert_ledger_consistent
from wallet_lambda import runtime

RIDER_WALLET = "65f0c0ffee0000000000a001"
DRIVER_WALLET = "65f0c0ffee0000000000a002"
RESERVATION = "65f0c0ffee0000000000b001"


def load_event(name: str, **ids: str) -> dict:
    text = (EVENTS / f"{name}.json").read_text()
    for example, real in ids.items():
        text = text.replace({"rider": RIDER_WALLET, "driver": DRIVER_WALLET, "reservation": RESERVATION}[example], real)
    return json.loads(text)


def test_every_function_has_an_event():
    functions = {path.parent.name for path in FUNCTIONS.glob("*/app.py")}
    events = {path.stem for path in EVENTS.glob("*.json")}
    assert functions == events


@pytest.fixture
def wallets(lambda_env, mongo_client):
    """The rider's wallet opened by the create_wallet event, and a driver's wallet."""
    opened = invoke("create_wallet", load_event("create_wallet"))
    assert opened.status == 201, opened
    service = runtime.wallet_service()
    driver = service.create_wallet("driver-7", opened.body["wallet"]["currency"]).wallet.id
    return {"rider": opened.body["wallet"]["id"], "driver": driver, "database": mongo_client[lambda_env]}


def test_the_money_events_in_order(wallets):
    rider, driver = wallets["rider"], wallets["driver"]
    service = runtime.wallet_service()
    ids = {"rider": rider, "driver": driver}
    opening = service.deposit(rider, 10_000).wallet.balance

    for name in ("freeze_wallet", "unfreeze_wallet", "get_wallet"):
        answer = invoke(name, load_event(name, **ids))
        assert answer.status == 200, (name, answer)
        assert answer.body["id"] == rider

    deposited = invoke("deposit", load_event("deposit", **ids))
    assert deposited.status == 201, deposited
    amount = deposited.body["entries"][0]["amount"]
    assert service.get_wallet(rider).balance == opening + amount

    withdrawn = invoke("withdraw", load_event("withdraw", **ids))
    assert withdrawn.status == 201, withdrawn
    balance = opening + amount - withdrawn.body["entries"][0]["amount"]
    assert service.get_wallet(rider).balance == balance

    transferred = invoke("transfer", load_event("transfer", **ids))
    assert transferred.status == 201, transferred
    sent = transferred.body["entries"][0]["amount"]
    assert (service.get_wallet(rider).balance, service.get_wallet(driver).balance) == (balance - sent, sent)
    assert transferred.body["counterpartyWallet"] is None  # the driver's wallet is not the rider's to see

    held = invoke("create_reservation", load_event("create_reservation", **ids))
    assert held.status == 201, held
    hold = held.body["reservation"]
    assert service.get_wallet(rider).held == hold["amount"]

    listed = invoke("list_reservations", load_event("list_reservations", **ids))
    assert [item["id"] for item in listed.body["items"]] == [hold["id"]]

    fetched = invoke("get_reservation", load_event("get_reservation", **ids, reservation=hold["id"]))
    assert (fetched.status, fetched.body["status"]) == (200, "HELD")

    raised = invoke("increment_reservation", load_event("increment_reservation", **ids, reservation=hold["id"]))
    assert raised.status == 201, raised
    assert raised.headers["Location"] == f"/v1/reservations/{hold['id']}"
    (more,) = raised.body["reservation"]["increments"]
    assert raised.body["reservation"]["amount"] == hold["amount"] + more["amount"]
    assert raised.body["entries"][0]["referenceType"] == "detour"
    assert service.get_wallet(rider).held == hold["amount"] + more["amount"]

    captured = invoke("capture_reservation", load_event("capture_reservation", **ids, reservation=hold["id"]))
    assert captured.status == 200, captured
    taken = captured.body["reservation"]["capturedAmount"]
    assert captured.body["reservation"]["releasedAmount"] == hold["amount"] + more["amount"] - taken
    assert service.get_wallet(rider).balance == balance - sent - taken
    assert service.get_wallet(rider).held == 0

    second = service.create_reservation(rider, 100).reservation.id
    released = invoke("release_reservation", load_event("release_reservation", **ids, reservation=second))
    assert (released.status, released.body["reservation"]["status"]) == (200, "RELEASED")

    journal = invoke("list_transactions", load_event("list_transactions", **ids))
    assert journal.status == 200
    assert journal.body["items"][0]["type"] == "RELEASE"
    assert_ledger_consistent(wallets["database"])


def test_health_event(lambda_env):
    answer = invoke("health", load_event("health"))
    assert (answer.status, answer.body) == (200, {"status": "ok"})


def test_scheduled_expiry_event(wallets):
    service = runtime.wallet_service()
    service.deposit(wallets["rider"], 500)
    due = service.create_reservation(wallets["rider"], 200, ttl_seconds=1).reservation.id
    time.sleep(1.1)
    report = function_module("expire_reservations").lambda_handler(load_event("expire_reservations"), LambdaContext())
    assert service.get_reservation(due).status == "EXPIRED"
    (expiry,) = service.list_transactions(wallets["rider"], entry_type="EXPIRE").items
    assert report == {
        "expired": 1,
        "skipped": 0,
        "failed": 0,
        "skippedReservationIds": [],
        "failedReservationIds": [],
        "operationIds": [expiry.operation_id],
    }


def test_the_platform_account_events(wallets):
    """An administrator opens @tips, reads @revenue's balance after a capture and pages @funding's postings."""
    opened = invoke("open_account", load_event("open_account"))
    assert (opened.status, opened.body) == (201, {"name": "@tips", "currency": "USD", "balance": 0, "builtIn": False})
    assert invoke("open_account", load_event("open_account")).problem_code == "account_exists"
    service = runtime.wallet_service()
    service.deposit(wallets["rider"], 300)
    hold = service.create_reservation(wallets["rider"], 300).reservation.id
    service.capture_reservation(
        hold, splits=[{"account": "@revenue", "amount": 250}, {"account": "@tips", "amount": 50}]
    )
    revenue = invoke("get_account", load_event("get_account"))
    assert (revenue.status, revenue.body["balance"], revenue.body["builtIn"]) == (200, 250, True)
    funding = invoke("list_account_transactions", load_event("list_account_transactions"))
    assert funding.status == 200
    assert {item["walletId"] for item in funding.body["items"]} <= {wallets["rider"], wallets["driver"]}
    assert all(item["type"] == "FUNDING" for item in funding.body["items"])
    assert_ledger_consistent(wallets["database"])


def test_the_refund_event(wallets):
    """An administrator refunds 200 of a captured ride: back from @revenue to the rider."""
    service = runtime.wallet_service()
    service.deposit(wallets["rider"], 1_000)
    hold = service.create_reservation(wallets["rider"], 1_000).reservation.id
    service.capture_reservation(hold)
    refunded = invoke("refund_reservation", load_event("refund_reservation", reservation=hold))
    assert refunded.status == 201, refunded
    assert refunded.headers["Location"] == f"/v1/reservations/{hold}"
    assert refunded.body["reservation"]["refundedAmount"] == 200
    assert refunded.body["reservation"]["refunds"][0]["reason"] == "driver took a longer route"
    assert [entry["type"] for entry in refunded.body["accountEntries"]] == ["REFUND_OUT"]
    assert service.get_wallet(wallets["rider"]).balance == 200
    assert_ledger_consistent(wallets["database"])


def test_the_balance_event(wallets):
    """The sample asks for 2026-11-25T12:00:00Z, before the wallet had any entry: all zero then."""
    answer = invoke("get_balance", load_event("get_balance", rider=wallets["rider"]))
    assert answer.status == 200, answer
    assert answer.body["walletId"] == wallets["rider"]
    assert answer.body["at"].startswith("2026-11-25T12:00:00")
    assert (answer.body["balance"], answer.body["held"], answer.body["available"], answer.body["sequence"]) == (
        0,
        0,
        0,
        0,
    )


def test_the_audit_and_migration_events(wallets, capsys):
    """The hourly audit reports what it checked and emits its two metrics; the migration finds
    nothing to add to a ledger written with double entry."""
    service = runtime.wallet_service()
    service.deposit(wallets["rider"], 400)
    report = function_module("audit_ledger").lambda_handler(load_event("audit_ledger"), LambdaContext())
    assert (report["wallets"], report["discrepancies"], report["ledgerImbalances"], report["walletMismatches"]) == (
        2,
        0,
        0,
        0,
    )
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    emitted = {metric["Name"] for line in metrics for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"LedgerImbalance", "WalletMismatches"} <= emitted
    migrated = function_module("migrate_ledger").lambda_handler(load_event("migrate_ledger"), LambdaContext())
    assert migrated == NOTHING_TO_MIGRATE


def test_the_checkpoint_event(wallets, capsys):
    """The every-minute roll takes each platform account's new postings into its checkpoint, and
    says how many (two deposits' FUNDING and a ride's CAPTURE_IN: @funding and @revenue)."""
    service = runtime.wallet_service()
    service.deposit(wallets["rider"], 500)
    service.deposit(wallets["driver"], 10)
    hold = service.create_reservation(wallets["rider"], 300).reservation.id
    service.capture_reservation(hold, 300)
    report = function_module("roll_checkpoints").lambda_handler(load_event("roll_checkpoints"), LambdaContext())
    assert report == {"accounts": 2, "postings": 3, "finished": True}
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (emitted,) = [line for line in metrics if line.get("operation") == "RollCheckpoints"]
    assert emitted["PostingsRolled"] in (3, 3.0, [3.0])
    assert service.get_account("@funding", "USD").balance == -510
    assert service.get_account("@revenue", "USD").balance == 300
    assert function_module("roll_checkpoints").lambda_handler(load_event("roll_checkpoints"), LambdaContext()) == {
        "accounts": 0,
        "postings": 0,
        "finished": True,
    }


def test_the_alerts_event(wallets):
    """The rider sets a balance alert on its wallet: a PUT, no Idempotency-Key, the wallet answered."""
    answer = invoke("set_wallet_alerts", load_event("set_wallet_alerts", rider=wallets["rider"]))
    assert answer.status == 200, answer
    assert (answer.body["id"], answer.body["alerts"]) == (wallets["rider"], {"availableBelow": 1000})
    assert runtime.wallet_service().get_wallet(wallets["rider"]).alerts.available_below == 1000


def test_the_publisher_event(wallets, monkeypatch, tmp_path, capsys):
    """Without a sink the events wait in the outbox and the publisher says so; with one (a file, as
    make run has) it sends every wallet's events once they are old enough."""
    module = function_module("publish_events")
    with pytest.raises(module.NoEventSink):
        module.lambda_handler(load_event("publish_events"), LambdaContext())
    monkeypatch.setenv("EVENTS_FILE", str(tmp_path / "events.jsonl"))
    monkeypatch.setenv("PUBLISH_OLDER_THAN_SECONDS", "0")
    runtime.reset()
    report = module.lambda_handler(load_event("publish_events"), LambdaContext())
    assert report == {"sent": 2, "failed": 0, "pending": 0}  # each wallet's opening
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (emitted,) = [line for line in metrics if line.get("operation") == "PublishEvents"]
    assert (emitted["EventsPublished"], emitted["EventsFailed"]) in ((2, 0), (2.0, 0.0), ([2.0], [0.0]))
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert sorted((line["detail"]["walletId"], line["detail-type"]) for line in lines) == sorted(
        [(wallets["rider"], "wallet.opened"), (wallets["driver"], "wallet.opened")]
    )
    assert module.lambda_handler(load_event("publish_events"), LambdaContext())["sent"] == 0
