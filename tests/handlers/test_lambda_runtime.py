"""The Lambda runtime: where the database URI comes from, and the scheduled expiry function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import pytest
from moto import mock_aws

from devtools.lambda_inputs import scheduled_event
from devtools.paths import FUNCTIONS, LAYER
from tests.lambda_harness import LambdaContext, function_module, http_event, invoke
from tests.ledger_checks import assert_ledger_consistent
from wallet_lambda import runtime


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def test_uri_from_an_ssm_secure_string(lambda_env, monkeypatch, mongo_uri, aws):
    boto3.client("ssm").put_parameter(Name="/wallet/test/mongodb-uri", Value=mongo_uri, Type="SecureString")
    monkeypatch.delenv("MONGODB_URI")
    monkeypatch.setenv("MONGODB_URI_PARAMETER", "/wallet/test/mongodb-uri")
    runtime.reset()
    assert runtime.database_uri() == mongo_uri
    assert invoke("health", http_event("GET", "/health", sub=None)).status == 200


def test_uri_from_secrets_manager(lambda_env, monkeypatch, mongo_uri, aws):
    boto3.client("secretsmanager").create_secret(Name="wallet/test/mongodb-uri", SecretString=mongo_uri)
    monkeypatch.delenv("MONGODB_URI")
    monkeypatch.setenv("MONGODB_URI_SECRET", "wallet/test/mongodb-uri")
    runtime.reset()
    assert runtime.database_uri() == mongo_uri
    assert invoke("health", http_event("GET", "/health", sub=None)).status == 200


def test_environment_overrides_the_stored_uri(lambda_env, monkeypatch, mongo_uri, aws):
    monkeypatch.setenv("MONGODB_URI_PARAMETER", "/does/not/exist")  # never read: MONGODB_URI wins
    assert runtime.database_uri() == mongo_uri


def test_no_uri_configured_is_a_clear_error(lambda_env, monkeypatch):
    monkeypatch.delenv("MONGODB_URI")
    with pytest.raises(RuntimeError, match="MONGODB_URI"):
        runtime.database_uri()


def test_one_client_per_container(lambda_env):
    assert runtime.wallet_service() is runtime.wallet_service()


def test_scheduled_expiry_releases_due_holds(lambda_env, mongo_client, capsys):
    service = runtime.wallet_service()
    wallet = service.create_wallet("rider", "USD", opening_balance=1_000).wallet.id
    due = service.create_reservation(wallet, 300, ttl_seconds=1).reservation.id
    later = service.create_reservation(wallet, 200, ttl_seconds=3_600).reservation.id
    time.sleep(1.1)
    report = function_module("expire_reservations").lambda_handler(
        scheduled_event("wallet-ExpireReservations"), LambdaContext()
    )
    assert (report["expired"], report["skipped"], report["failed"]) == (1, 0, 0)
    assert service.get_reservation(due).status == "EXPIRED"
    assert service.get_reservation(later).status == "HELD"
    assert service.get_wallet(wallet).held == 200
    assert_ledger_consistent(mongo_client[lambda_env])
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(document.get("HoldsExpired") in (1, 1.0, [1.0]) for document in metrics), metrics


def test_scheduled_expiry_fails_loudly_when_batches_fail(lambda_env, monkeypatch):
    from wallet_service import ExpiryReport, WalletService

    def failing(self, *args, **kwargs):
        return ExpiryReport(expired=3, skipped=0, failed=2, failed_reservation_ids=("a", "b"))

    monkeypatch.setattr(WalletService, "expire_reservations", failing)
    module = function_module("expire_reservations")
    with pytest.raises(module.ExpiryIncomplete):  # Lambda's asynchronous retries then run it again
        module.lambda_handler(scheduled_event("wallet-ExpireReservations"), LambdaContext())


@pytest.mark.parametrize(
    ("remaining_millis", "at_most", "seconds"),
    [
        (10_000, runtime.REQUEST_DATABASE_SECONDS, 5.0),  # an HTTP request: the retry budget, not the Lambda's 9.5 s
        (3_000, runtime.REQUEST_DATABASE_SECONDS, 2.5),  # less time left than the budget: leave the response margin
        (60_000, None, 59.5),  # the expiry job: all but the margin
        (100, None, 0.2),  # never below the minimum
    ],
)
def test_database_deadline(remaining_millis, at_most, seconds):
    from pymongo import _csot

    assert _csot.get_timeout() is None
    with runtime.database_deadline(remaining_millis, at_most=at_most):
        assert _csot.get_timeout() == pytest.approx(seconds)
    assert _csot.get_timeout() is None


# ---------------------------------------------------------------- where the events go


def test_the_event_sink_comes_from_the_environment(monkeypatch, tmp_path):
    from wallet_lambda.event_sinks import EventBridgeSink, FileSink

    def chosen():
        runtime.reset()
        return runtime.event_sink()

    monkeypatch.delenv("EVENTS_FILE", raising=False)
    monkeypatch.delenv("EVENT_BUS_NAME", raising=False)
    assert chosen() is None  # the events wait in the outbox
    monkeypatch.setenv("EVENT_BUS_NAME", "")  # sam local: the template's GetAtt left unresolved
    assert chosen() is None
    monkeypatch.setenv("EVENT_BUS_NAME", "wallet-prod-wallet-events")
    sink = chosen()
    assert isinstance(sink, EventBridgeSink)
    assert sink.bus_name == "wallet-prod-wallet-events"
    assert sink._client is None  # no boto3 client until there is something to send
    assert runtime.event_sink() is sink  # one per container
    monkeypatch.setenv("EVENTS_FILE", str(tmp_path / "events.jsonl"))  # make run: a file instead
    sink = chosen()
    assert isinstance(sink, FileSink)
    assert sink.path == tmp_path / "events.jsonl"
    runtime.reset()


def stored_event(**changes) -> dict:
    """An event document as the outbox stores it (wallet_service.storage.outbox.event)."""
    from datetime import UTC, datetime

    from bson import Int64, ObjectId

    document = {
        "_id": f"evt_{ObjectId()}",
        "kind": "event",
        "type": "wallet.deposit.created",
        "walletId": ObjectId("65f0c0ffee0000000000a001"),
        "ownerId": "rider-42",
        "currency": "USD",
        "version": Int64(7),
        "index": 0,
        "sequence": Int64(5),
        "operationId": "key:abc",
        "occurredAt": datetime(2026, 11, 30, 12, 0, 1, 250_000, tzinfo=UTC),
        "data": {"operationId": "key:abc", "wallet": {"id": "65f0c0ffee0000000000a001"}, "entries": []},
        "sent": False,
        "createdAt": datetime(2026, 11, 30, 12, 0, 1, 250_000, tzinfo=UTC),
    }
    return document | changes


class RecordingEvents:
    """An events client that answers PutEvents with an ErrorCode for the entries at `refuse`."""

    def __init__(self, refuse: frozenset[int] = frozenset()) -> None:
        self.refuse = refuse
        self.calls: list[list[dict]] = []

    def put_events(self, Entries):  # boto3's keyword
        self.calls.append(Entries)
        results = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
            if position in self.refuse
            else {"EventId": f"id-{position}"}
            for position in range(len(Entries))
        ]
        return {"FailedEntryCount": len(self.refuse), "Entries": results}


def test_the_eventbridge_sink_puts_one_entry_per_event_and_accepts_those_without_an_error_code():
    from wallet_lambda.event_sinks import EventBridgeSink
    from wallet_service import event_detail

    events = [stored_event(), stored_event(type="wallet.balance.low", index=1), stored_event(version=8)]
    client = RecordingEvents(refuse=frozenset({1}))
    sink = EventBridgeSink("wallet-events", client)
    assert sink.put(events) == [True, False, True]
    (entries,) = client.calls
    assert [entry["DetailType"] for entry in entries] == [
        "wallet.deposit.created",
        "wallet.balance.low",
        "wallet.deposit.created",
    ]
    for entry, event in zip(entries, events, strict=True):
        assert set(entry) == {"Source", "DetailType", "Detail", "EventBusName", "Time"}
        assert (entry["Source"], entry["EventBusName"], entry["Time"]) == (
            "wallet-service",
            "wallet-events",
            event["occurredAt"],
        )
        assert json.loads(entry["Detail"]) == event_detail(event)
    assert json.loads(entries[0]["Detail"])["occurredAt"] == "2026-11-30T12:00:01.250000Z"
    assert sink.put([]) == []
    assert len(client.calls) == 1


def test_the_eventbridge_sink_creates_its_client_on_first_use(monkeypatch, aws):
    from wallet_lambda.event_sinks import CLIENT_MAX_ATTEMPTS, EventBridgeSink

    boto3.client("events").create_event_bus(Name="wallet-events")
    sink = EventBridgeSink("wallet-events")
    assert sink._client is None
    assert sink.put([stored_event()]) == [True]
    config = sink.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 2.0)
    assert config.retries["total_max_attempts"] == CLIENT_MAX_ATTEMPTS


def test_the_file_sink_writes_each_event_as_eventbridge_hands_it_to_a_target(tmp_path, capsys):
    from wallet_lambda.event_sinks import TARGET_EVENT_KEYS, FileSink
    from wallet_service import event_detail

    path = tmp_path / "local" / "events.jsonl"
    sink = FileSink(path)
    events = [stored_event(), stored_event(type="wallet.frozen", version=8)]
    assert sink.put(events) == [True, True]
    assert sink.put(events[:1]) == [True]  # appended: a second delivery of one event, with its id
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 3
    for line, event in zip(lines, [*events, events[0]], strict=True):
        assert set(line) == TARGET_EVENT_KEYS
        assert (line["version"], line["source"], line["resources"]) == ("0", "wallet-service", [])
        assert line["detail-type"] == event["type"]
        assert line["time"] == "2026-11-30T12:00:01Z"
        assert line["detail"] == event_detail(event)
    assert len({line["id"] for line in lines}) == 3  # EventBridge's own id per delivery; detail.id is the event's
    logged = [line for line in capsys.readouterr().err.splitlines() if " event " in line]
    assert len(logged) == 3
    assert logged[1].endswith(f"event wallet.frozen wallet 65f0c0ffee0000000000a001 {events[1]['_id']}")


def test_publishing_after_the_answer_sends_what_the_call_committed(lambda_env, monkeypatch, tmp_path, caplog):
    from wallet_lambda import delivery
    from wallet_service import committed_events

    monkeypatch.setenv("EVENTS_FILE", str(tmp_path / "events.jsonl"))
    runtime.reset()
    service = runtime.wallet_service()
    context = LambdaContext()
    with committed_events() as opened:
        wallet = service.create_wallet("rider", "USD").wallet
    with committed_events() as nothing:
        service.get_wallet(wallet.id)
    assert delivery.publish_committed(nothing, context) is None
    with committed_events() as deposited:
        service.deposit(wallet.id, 5)
    assert delivery.publish_committed(deposited, context).sent == 2  # the opening's too: same wallet
    assert delivery.publish_committed(opened, context).sent == 0  # sent already
    with committed_events() as frozen:
        service.freeze_wallet(wallet.id)
    assert delivery.publish_committed(frozen, LambdaContext(timeout_seconds=1.1)) is None  # no time left: logged
    assert "no time left to publish the events: the scheduled publisher sends them" in caplog.messages
    assert delivery.publish_committed(frozen, context).sent == 1
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("function", ["expire_reservations", "publish_events"])
def test_the_scheduled_functions_leave_the_operations_table_unimported(function):
    """Its schemas would add some 10 ms to their cold start: only the HTTP functions need it."""
    code = "import sys, app; print(sorted(name for name in sys.modules if name.startswith('wallet_lambda.')))"
    path = os.pathsep.join([str(FUNCTIONS / function), str(LAYER)])
    imported = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, check=True
    ).stdout
    assert "wallet_lambda.delivery" in imported
    assert "wallet_lambda.operations" not in imported


@pytest.mark.parametrize(
    ("remaining_millis", "seconds"),
    [(10_000, 2.0), (2_500, 1.5), (1_100, 0.1)],  # capped; the remaining time less the margin; too little
)
def test_publishing_after_a_commit_takes_at_most_a_couple_of_seconds(remaining_millis, seconds):
    from wallet_lambda import delivery

    assert delivery.publish_seconds(remaining_millis, at_most=delivery.COMMIT_PUBLISH_SECONDS) == pytest.approx(seconds)
    assert delivery.MINIMUM_PUBLISH_SECONDS > 0.1
