"""The outbox delivered to EventBridge, proved with moto's EventBridge: a custom bus, a rule on the
source `wallet-service` and an SQS queue as its target, the consumer. The real handlers run with
EVENT_BUS_NAME set (the embedded database, as tests/handlers/test_events.py runs them), and the
queue says what a consumer would have received:

- every acknowledged change of a wallet's events arrive, once its answer has left; none for a
  refused request (409, 422) or a replay;
- duplicates only with the same id, the same event;
- each wallet's in version order;
- what a function killed between its answer and its publishing left, the scheduled publisher
  (PublishEvents) sends;
- PutEvents refusing entries (ErrorCode), failing as a whole or losing its answer for a while loses
  nothing: after the next PublishEvents run every event has arrived, at least once per id.

moto intercepts boto3 in-process: no request leaves this machine (the credentials are fake).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from devtools.lambda_inputs import scheduled_event
from tests.lambda_harness import HttpAnswer, LambdaContext, function_module, http_event, invoke
from tests.ledger_checks import assert_ledger_consistent
from wallet_lambda import runtime
from wallet_lambda.event_sinks import SOURCE, EventBridgeSink
from wallet_service import event_detail
from wallet_service.storage.documents import CODEC_OPTIONS, EVENT, LEDGER

BUS = "wallet-test-events"
ADMIN = ("wallet:admin",)
RIDER, DRIVER = "rider-42", "driver-7"


@dataclass
class Consumer:
    """The SQS queue behind the bus's rule, read as a consumer reads it, and the outbox beside it."""

    sqs: object
    queue_url: str
    database: object
    received: list[dict] = field(default_factory=list)

    def drain(self) -> list[dict]:
        """Every message now in the queue (deleted once read), in arrival order; kept in `received`."""
        new = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                break
            for message in messages:
                new.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        self.received.extend(new)
        return new

    def outbox(self, **query) -> list[dict]:
        ledger = self.database.with_options(codec_options=CODEC_OPTIONS)[LEDGER]
        return list(ledger.find({"kind": EVENT, **query}).sort([("walletId", 1), ("version", 1), ("index", 1)]))

    def assert_everything_arrived(self, *, exactly_once: bool) -> None:
        """Every event of the outbox is sent and arrived as it is stored; copies only of one id, each the
        same event; each wallet's in (version, index) order, copies included; nothing else arrived."""
        self.drain()
        stored = {event["_id"]: event for event in self.outbox()}
        assert all(event["sent"] for event in stored.values()), [e["_id"] for e in stored.values() if not e["sent"]]
        copies = Counter(message["detail"]["id"] for message in self.received)
        assert set(copies) == set(stored), "an event never arrived, or one arrived that the outbox does not hold"
        if exactly_once:
            assert set(copies.values()) == {1}, {key: count for key, count in copies.items() if count > 1}
        for message in self.received:
            event = stored[message["detail"]["id"]]
            assert message["source"] == SOURCE
            assert message["detail-type"] == event["type"]
            assert message["detail"] == event_detail(event)  # every copy is the same event
            assert message["time"] == event["occurredAt"].strftime("%Y-%m-%dT%H:%M:%SZ")
        arrivals: dict[str, list[tuple[int, int]]] = {}
        for message in self.received:
            arrivals.setdefault(message["detail"]["walletId"], []).append(
                (message["detail"]["version"], message["detail"]["index"])
            )
        for wallet, order in arrivals.items():
            assert order == sorted(order), (wallet, order)


@pytest.fixture
def consumer(lambda_env, mongo_client, monkeypatch) -> Iterator[Consumer]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "EVENT_BUS_NAME": BUS,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "EVENTS_FILE"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        queue_url = sqs.create_queue(QueueName="wallet-consumer")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="every-wallet-event", EventBusName=BUS, EventPattern=json.dumps({"source": [SOURCE]}))
        events.put_targets(Rule="every-wallet-event", EventBusName=BUS, Targets=[{"Id": "consumer", "Arn": queue_arn}])
        runtime.reset()  # the sink is chosen from this environment, its client made inside moto
        yield Consumer(sqs, queue_url, mongo_client[lambda_env])
    runtime.reset()


# ---------------------------------------------------------------- the calls, as the API's clients make them


def create_wallet(owner: str, *, opening: int = 0, alerts: dict | None = None) -> HttpAnswer:
    body = {"currency": "USD", "ownerId": owner, "openingBalance": opening, **({"alerts": alerts} if alerts else {})}
    return invoke("create_wallet", http_event("POST", "/v1/wallets", body=body, sub="ops", scopes=ADMIN))


def money(function: str, route: str, ids: dict, body: dict | None, key: str, **options) -> HttpAnswer:
    return invoke(function, http_event("POST", route, ids, body=body, idempotency_key=key, **options))


def deposit(wallet: str, amount: int, key: str, **options) -> HttpAnswer:
    return money("deposit", "/v1/wallets/{walletId}/deposits", {"walletId": wallet}, {"amount": amount}, key, **options)


def withdraw(wallet: str, amount: int, key: str) -> HttpAnswer:
    return money("withdraw", "/v1/wallets/{walletId}/withdrawals", {"walletId": wallet}, {"amount": amount}, key)


def transfer(source: str, target: str, amount: int, key: str, **options) -> HttpAnswer:
    body = {"fromWalletId": source, "toWalletId": target, "amount": amount}
    return money("transfer", "/v1/transfers", {}, body, key, **options)


def hold(wallet: str, amount: int, key: str, *, sub: str = RIDER, **body) -> HttpAnswer:
    route = "/v1/wallets/{walletId}/reservations"
    return money("create_reservation", route, {"walletId": wallet}, {"amount": amount, **body}, key, sub=sub)


def on_hold(function: str, action: str, reservation: str, body: dict | None, key: str, **options) -> HttpAnswer:
    route = f"/v1/reservations/{{reservationId}}/{action}"
    return money(function, route, {"reservationId": reservation}, body, key, **options)


def admin_wallet_call(function: str, action: str, wallet: str) -> HttpAnswer:
    route = f"/v1/wallets/{{walletId}}/{action}"
    return invoke(function, http_event("POST", route, {"walletId": wallet}, sub="ops", scopes=ADMIN))


def set_alerts(wallet: str, below: int | None, *, sub: str = RIDER) -> HttpAnswer:
    route = "/v1/wallets/{walletId}/alerts"
    return invoke(
        "set_wallet_alerts", http_event("PUT", route, {"walletId": wallet}, body={"availableBelow": below}, sub=sub)
    )


def expire() -> dict:
    return function_module("expire_reservations").lambda_handler(
        scheduled_event("wallet-ExpireReservations"), LambdaContext("ExpireReservations", 60)
    )


def publish(older_than_seconds: float, monkeypatch) -> dict:
    monkeypatch.setenv("PUBLISH_OLDER_THAN_SECONDS", str(older_than_seconds))
    return function_module("publish_events").lambda_handler(
        scheduled_event("wallet-PublishEvents"), LambdaContext("PublishEvents", 60)
    )


def arrived(consumer: Consumer, answer: HttpAnswer, status: int, *expected: tuple[str, str]) -> list[dict]:
    """The answer is `status`, and the queue now holds exactly the `(walletId, type)` events expected,
    all of the answer's operation."""
    assert answer.status == status, answer
    messages = consumer.drain()
    assert sorted((m["detail"]["walletId"], m["detail"]["type"]) for m in messages) == sorted(expected), messages
    operation = answer.body.get("operationId")
    if operation is not None:
        assert {message["detail"]["operationId"] for message in messages} <= {operation}
    return messages


def nothing_arrived(consumer: Consumer, answer: HttpAnswer, status: int, code: str | None = None) -> None:
    before = len(consumer.outbox())
    assert answer.status == status, answer
    if code is not None:
        assert answer.problem_code == code
    assert consumer.drain() == []
    assert len(consumer.outbox()) == before


# ---------------------------------------------------------------- every acknowledged movement, nothing else


def test_every_acknowledged_change_arrives_and_nothing_else(consumer, monkeypatch):
    opened = create_wallet(RIDER, opening=10_000)
    rider = opened.body["wallet"]["id"]
    (message,) = arrived(consumer, opened, 201, (rider, "wallet.opened"))
    assert message["detail"]["data"]["wallet"]["balance"] == 10_000
    assert [entry["type"] for entry in message["detail"]["data"]["entries"]] == ["DEPOSIT"]
    opened = invoke("create_wallet", http_event("POST", "/v1/wallets", body={"currency": "USD"}, sub=DRIVER))
    driver = opened.body["wallet"]["id"]
    arrived(consumer, opened, 201, (driver, "wallet.opened"))

    (message,) = arrived(consumer, deposit(rider, 2_000, "top-up"), 201, (rider, "wallet.deposit.created"))
    assert (message["detail"]["data"]["entries"][0]["amount"], message["detail"]["ownerId"]) == (2_000, RIDER)
    nothing_arrived(consumer, deposit(rider, 2_000, "top-up"), 201)  # a replay: nothing new
    arrived(consumer, withdraw(rider, 500, "cash-out"), 201, (rider, "wallet.withdrawal.created"))
    sent = arrived(
        consumer,
        transfer(rider, driver, 1_000, "tip"),
        201,
        (rider, "wallet.transfer.sent"),
        (driver, "wallet.transfer.received"),
    )
    received = next(message for message in sent if message["detail"]["walletId"] == driver)
    assert received["detail"]["ownerId"] == DRIVER
    assert [entry["type"] for entry in received["detail"]["data"]["entries"]] == ["TRANSFER_IN"]  # its own only

    held = hold(rider, 3_000, "ride-1")
    ride = held.body["reservation"]["id"]
    (message,) = arrived(consumer, held, 201, (rider, "reservation.created"))
    assert message["detail"]["data"]["reservation"]["id"] == ride
    arrived(consumer, on_hold("increment_reservation", "increments", ride, {"amount": 500}, "detour"), 201,
            (rider, "reservation.incremented"))  # fmt: skip
    splits = {
        "amount": 2_000,
        "splits": [{"walletId": driver, "amount": 1_500}, {"account": "@revenue", "amount": 500}],
    }
    captured = on_hold("capture_reservation", "capture", ride, splits, "fare")
    arrived(consumer, captured, 200, (rider, "reservation.captured"), (driver, "wallet.capture.received"))
    refunded = on_hold("refund_reservation", "refunds", ride, {"amount": 400}, "goodwill", sub="ops", scopes=ADMIN)
    arrived(consumer, refunded, 201, (rider, "reservation.refunded"), (driver, "wallet.refund.taken"))
    second = hold(rider, 400, "ride-2").body["reservation"]["id"]
    consumer.drain()
    arrived(consumer, on_hold("release_reservation", "release", second, None, "cancel"), 200,
            (rider, "reservation.released"))  # fmt: skip

    # A balance alert: setting it moves no money and sends nothing; crossing it does.
    alerted = set_alerts(rider, 8_000)
    assert (alerted.status, alerted.body["alerts"]) == (200, {"availableBelow": 8_000})
    assert consumer.drain() == []
    available = alerted.body["available"]
    low = arrived(
        consumer,
        withdraw(rider, available - 7_000, "big-cash-out"),
        201,
        (rider, "wallet.withdrawal.created"),
        (rider, "wallet.balance.low"),
    )
    assert [message["detail"]["index"] for message in low] == [0, 1]  # the movement, then its alert
    assert low[1]["detail"]["data"] | {"wallet": None} == {
        "operationId": low[0]["detail"]["operationId"],
        "wallet": None,
        "availableBelow": 8_000,
        "availableBefore": available,
        "available": 7_000,
    }

    # Refused: nothing is written, nothing arrives.
    nothing_arrived(consumer, withdraw(rider, 1_000_000, "too-much"), 409, "insufficient_funds")
    nothing_arrived(consumer, withdraw(rider, 1_000_000, "too-much"), 409, "insufficient_funds")  # kept refusal
    nothing_arrived(consumer, deposit(rider, 0, "nothing"), 422, "validation_error")
    nothing_arrived(consumer, deposit(rider, 5, "top-up"), 422, "idempotency_key_mismatch")
    nothing_arrived(consumer, deposit(rider, 5, "not-mine", sub="mallory"), 404, "not_found")
    nothing_arrived(consumer, set_alerts(rider, 0), 422, "validation_error")
    nothing_arrived(consumer, set_alerts(rider, 5, sub="mallory"), 404, "not_found")

    # Freeze and unfreeze, by the wallet's id; freezing a frozen wallet changes nothing and sends nothing.
    arrived(consumer, admin_wallet_call("freeze_wallet", "freeze", driver), 200, (driver, "wallet.frozen"))
    nothing_arrived(consumer, admin_wallet_call("freeze_wallet", "freeze", driver), 200)
    nothing_arrived(consumer, hold(driver, 100, "frozen-hold", sub=DRIVER), 409, "wallet_frozen")
    arrived(consumer, admin_wallet_call("unfreeze_wallet", "unfreeze", driver), 200, (driver, "wallet.unfrozen"))

    # The expiry function publishes what its run expired (an expiry capture pays the driver).
    hold(rider, 200, "no-show", ttlSeconds=1, onExpiry="capture", captureTo={"walletId": driver})
    hold(rider, 100, "forgotten", ttlSeconds=1)
    consumer.drain()
    time.sleep(1.1)
    assert expire()["expired"] == 2
    expired = consumer.drain()
    assert sorted((m["detail"]["walletId"], m["detail"]["type"]) for m in expired) == sorted(
        [(rider, "reservation.expired"), (driver, "wallet.capture.received")]
    )
    assert len(next(m for m in expired if m["detail"]["walletId"] == rider)["detail"]["data"]["reservationIds"]) == 2

    assert publish(0, monkeypatch) == {"sent": 0, "failed": 0, "pending": 0}  # nothing was left behind
    consumer.assert_everything_arrived(exactly_once=True)
    assert_ledger_consistent(consumer.database)


def test_the_expiry_function_publishes_its_batches_events_and_no_others(consumer, monkeypatch):
    """By its batches' operation ids: another wallet's unsent event, which the function that made it
    may be publishing at this moment, is left to that function or the scheduled publisher."""
    monkeypatch.setenv("EXPIRY_BATCH_SIZE", "1")  # two batches, two operations
    rider = create_wallet(RIDER, opening=1_000).body["wallet"]["id"]
    driver = create_wallet(DRIVER, opening=1_000).body["wallet"]["id"]
    bystander = create_wallet("bystander-3").body["wallet"]["id"]
    hold(rider, 300, "forgotten", ttlSeconds=1)
    hold(driver, 200, "also-forgotten", sub=DRIVER, ttlSeconds=1)
    consumer.drain()
    unrelated = runtime.wallet_service().deposit(bystander, 50)  # committed, not published yet
    time.sleep(1.1)
    report = expire()
    assert (report["expired"], len(set(report["operationIds"]))) == (2, 2)
    messages = consumer.drain()
    assert sorted((m["detail"]["walletId"], m["detail"]["type"]) for m in messages) == sorted(
        [(rider, "reservation.expired"), (driver, "reservation.expired")]
    )
    assert {m["detail"]["operationId"] for m in messages} == set(report["operationIds"])
    (left,) = consumer.outbox(sent=False)
    assert (str(left["walletId"]), left["operationId"]) == (bystander, unrelated.operation_id)
    assert publish(0, monkeypatch)["sent"] == 1
    consumer.assert_everything_arrived(exactly_once=True)


# ---------------------------------------------------------------- a function killed between commit and publish


class Killed(BaseException):
    """The container dying: not an error the handler could catch."""


def test_what_a_killed_function_left_the_scheduled_publisher_sends(consumer, monkeypatch):
    from wallet_lambda import delivery  # imported once lambda_env has set Powertools' variables
    from wallet_lambda.observability import metrics

    rider = create_wallet(RIDER, opening=1_000).body["wallet"]["id"]
    driver = create_wallet(DRIVER).body["wallet"]["id"]
    consumer.drain()

    def killed(*args, **kwargs):
        raise Killed("the container died after the answer, before publishing")

    with monkeypatch.context() as patch:
        patch.setattr(delivery, "publish_committed", killed)
        for call in (
            lambda: deposit(rider, 100, "killed-1"),
            lambda: transfer(rider, driver, 300, "killed-2"),
            lambda: admin_wallet_call("freeze_wallet", "freeze", driver),
        ):
            with pytest.raises(Killed):
                call()
            metrics.clear_metrics()  # what the dead container's invocation had added, never flushed
    assert consumer.drain() == []
    assert len(consumer.outbox(sent=False)) == 4  # committed, not sent: the deposit, both sides, the freeze

    # The client retries the deposit (it may have missed the answer): a replay commits nothing and
    # publishes nothing, not even the original's event.
    retried = deposit(rider, 100, "killed-1")
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert consumer.drain() == []
    assert len(consumer.outbox(sent=False)) == 4

    # The scheduled publisher finds it all once it is older than its threshold, each wallet's in order.
    assert publish(60, monkeypatch) == {"sent": 0, "failed": 0, "pending": 0}  # not yet that old
    assert consumer.drain() == []
    time.sleep(1.1)
    assert publish(1, monkeypatch) == {"sent": 4, "failed": 0, "pending": 0}
    messages = [(m["detail"]["walletId"], m["detail"]["type"]) for m in consumer.drain()]
    assert [message for message in messages if message[0] == rider] == [
        (rider, "wallet.deposit.created"),
        (rider, "wallet.transfer.sent"),
    ]
    assert [message for message in messages if message[0] == driver] == [
        (driver, "wallet.transfer.received"),
        (driver, "wallet.frozen"),
    ]
    consumer.assert_everything_arrived(exactly_once=True)


def test_a_publishing_failure_never_changes_the_answer(consumer, monkeypatch, caplog):
    from wallet_service import DatabaseUnavailable, WalletService

    rider = create_wallet(RIDER, opening=1_000).body["wallet"]["id"]
    consumer.drain()
    caplog.clear()

    def unreachable(self, events):
        raise ClientError({"Error": {"Code": "InternalException", "Message": "EventBridge is down"}}, "PutEvents")

    def outage(self, *args, **kwargs):
        raise DatabaseUnavailable("the database went away after the commit")

    with monkeypatch.context() as patch:
        patch.setattr(EventBridgeSink, "put", unreachable)  # every event refused: counted, left unsent
        answer = deposit(rider, 100, "while-down")
        assert (answer.status, answer.headers["Idempotent-Replayed"]) == (201, "false")
        assert answer.body["wallet"]["balance"] == 1_100
        assert "some events are left for the scheduled publisher" in caplog.messages
        patch.setattr(WalletService, "publish_events", outage)  # publishing itself raises: logged
        frozen = admin_wallet_call("freeze_wallet", "freeze", rider)
        assert (frozen.status, frozen.body["status"]) == (200, "FROZEN")
        assert "publishing the events failed: the scheduled publisher sends them" in caplog.messages
    assert consumer.drain() == []
    assert publish(0, monkeypatch)["sent"] == 2
    assert [m["detail"]["type"] for m in consumer.drain()] == ["wallet.deposit.created", "wallet.frozen"]
    consumer.assert_everything_arrived(exactly_once=True)


def test_no_time_left_leaves_the_events_for_the_scheduled_publisher(consumer, monkeypatch):
    from wallet_lambda import delivery  # imported once lambda_env has set Powertools' variables

    rider = create_wallet(RIDER).body["wallet"]["id"]
    consumer.drain()
    answer = invoke(
        "deposit",
        http_event(
            "POST", "/v1/wallets/{walletId}/deposits", {"walletId": rider}, body={"amount": 5}, idempotency_key="late"
        ),
        LambdaContext("Deposit", timeout_seconds=delivery.PUBLISH_MARGIN_SECONDS + 0.15),
    )
    assert answer.status == 201
    assert consumer.drain() == []
    assert publish(0, monkeypatch)["sent"] == 1
    consumer.assert_everything_arrived(exactly_once=True)


# ---------------------------------------------------------------- PutEvents failing for some entries


class FlakyEvents:
    """moto's events client behind a PutEvents that misbehaves while `failing`, as a throttled or
    degraded EventBridge does, by a seeded draw: a call fails as a whole (ThrottlingException); or
    each of its entries is taken, refused with an ErrorCode, or taken with its answer lost (reported
    refused, so it is sent again: a duplicate with the same id)."""

    def __init__(self, client, seed: int = 16) -> None:
        self.client = client
        self.random = random.Random(seed)
        self.failing = True
        self.calls = self.refused = self.duplicated = 0

    def put_events(self, Entries: list[dict]) -> dict:
        self.calls += 1
        if not self.failing:
            return self.client.put_events(Entries=Entries)
        if self.random.random() < 0.15:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "PutEvents")
        fates = [self.random.choices(("taken", "refused", "lost"), (0.45, 0.35, 0.2))[0] for _ in Entries]
        delivered = [entry for entry, fate in zip(Entries, fates, strict=True) if fate != "refused"]
        answers = iter(self.client.put_events(Entries=delivered)["Entries"] if delivered else ())
        results = []
        for fate in fates:
            if fate == "taken":
                results.append(next(answers))
                continue
            if fate == "lost":
                next(answers)
                self.duplicated += 1
            else:
                self.refused += 1
            results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"})
        return {"FailedEntryCount": sum("ErrorCode" in result for result in results), "Entries": results}


def test_putevents_failing_for_a_while_loses_nothing(consumer, monkeypatch):
    flaky = FlakyEvents(boto3.client("events"))
    sink = EventBridgeSink(BUS, flaky)
    monkeypatch.setattr(runtime, "event_sink", lambda: sink)
    owners = [f"owner-{number}" for number in range(4)]
    wallets = [create_wallet(owner, opening=1_000).body["wallet"]["id"] for owner in owners]
    for turn in range(3):
        for position, (owner, wallet) in enumerate(zip(owners, wallets, strict=True)):
            assert deposit(wallet, 10 + turn, f"d-{turn}", sub=owner).status == 201
            payee = wallets[(position + 1) % len(wallets)]
            assert transfer(wallet, payee, 5, f"t-{turn}", sub=owner).status == 201
    assert flaky.refused  # it did misbehave
    assert flaky.duplicated
    assert consumer.outbox(sent=False), "every event went through: the flaky client held nothing back"

    # While it still fails, a scheduled run sends some, each wallet's in order (checked below).
    publish(0, monkeypatch)
    flaky.failing = False
    report = publish(0, monkeypatch)
    assert (report["failed"], report["pending"]) == (0, 0)
    assert consumer.outbox(sent=False) == []
    consumer.assert_everything_arrived(exactly_once=False)
    copies = Counter(message["detail"]["id"] for message in consumer.received)
    assert max(copies.values()) > 1  # the lost answers did make duplicates, each of one id
    assert_ledger_consistent(consumer.database)
