"""schemas/wallet-event.schema.json: every event a story of every kind publishes is valid against it
(format checking on), every type appears, the schema tells the kinds apart, and its Wallet,
LedgerEntry and Reservation parts are what the models generate today.

    python -m tests.service.test_event_schema    # rewrite the schema's model parts from the models
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from pydantic.json_schema import models_json_schema

from wallet_service import Request, WalletService, event_detail
from wallet_service.ledger.limits import MAX_OWNER_ID_LENGTH
from wallet_service.ledger.models import LedgerEntry, Reservation, Wallet
from wallet_service.storage.outbox import EVENT_TYPE_NAMES

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "wallet-event.schema.json"
# The models whose serialised JSON an event's data carries; their schemas (and the ones they refer
# to) are the file's generated $defs. Everything else in the file is written by hand.
MODELS = (Wallet, LedgerEntry, Reservation)
HAND_WRITTEN = {"MovementData", "ReservationData", "ExpiryData", "BalanceAlertData"}


def model_defs() -> dict[str, Any]:
    """The $defs the models generate, as a consumer receives them (camelCase, serialisation mode)."""
    _, generated = models_json_schema([(model, "serialization") for model in MODELS], by_alias=True)
    return generated["$defs"]


@cache
def committed() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


@cache
def validator() -> Draft202012Validator:
    return Draft202012Validator(committed(), format_checker=Draft202012Validator.FORMAT_CHECKER)


class Sink:
    """Takes every event as a consumer gets it: the detail, through JSON."""

    def __init__(self) -> None:
        self.received: list[dict] = []

    def put(self, events: Sequence[dict]) -> list[bool]:
        self.received.extend(json.loads(json.dumps(event_detail(event))) for event in events)
        return [True] * len(events)


def test_the_schema_is_a_valid_draft_2020_12_schema_with_format_checking():
    Draft202012Validator.check_schema(committed())
    assert committed()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # Without rfc3339-validator installed, jsonschema would pass any string as a date-time.
    assert "date-time" in Draft202012Validator.FORMAT_CHECKER.checkers


def test_the_models_parts_are_what_the_models_generate():
    defs = committed()["$defs"]
    generated = model_defs()
    stale = sorted(name for name in generated if defs.get(name) != generated[name])
    assert not stale, (
        f"{SCHEMA.name} is stale for {stale}: run `.venv/bin/python -m tests.service.test_event_schema` and commit it"
    )
    assert set(defs) == HAND_WRITTEN | set(generated), "a $def neither written by hand nor generated"


def test_the_envelope_is_what_publishing_sends():
    schema = committed()
    assert schema["properties"]["type"]["enum"] == list(EVENT_TYPE_NAMES)
    assert schema["required"] == list(schema["properties"])
    assert schema["additionalProperties"] is False
    assert schema["properties"]["ownerId"]["maxLength"] == MAX_OWNER_ID_LENGTH
    # Each type's data, said once: the if/then branches name every type exactly once.
    named = []
    for branch in schema["allOf"]:
        condition = branch["if"]["properties"]["type"]
        named += condition.get("enum", [condition.get("const")])
    assert sorted(named) == list(EVENT_TYPE_NAMES)


def story(service: WalletService, clock: list[datetime]) -> None:
    """Every kind of event: each movement, a split capture and its refund, freeze and unfreeze,
    a balance alert both ways, and an expiry that releases one hold and captures another to a wallet."""
    rider = service.create_wallet("rider", "USD", opening_balance=5_000, alerts={"availableBelow": 1_000}).wallet.id
    driver = service.create_wallet("driver", "USD").wallet.id
    service.deposit(rider, 500, Request(reference_type="top-up", reference_id="t-1"))
    service.withdraw(rider, 200)
    service.transfer(rider, driver, 300, Request(metadata={"note": "tip"}))
    ride = service.create_reservation(rider, 1_000, Request(reference_type="ride", reference_id="r-1")).reservation.id
    service.increment_reservation(ride, 200)
    service.capture_reservation(
        ride, 900, splits=[{"walletId": driver, "amount": 700}, {"account": "@revenue", "amount": 200}]
    )
    service.refund_reservation(ride, 300, reason="detour not taken")
    service.release_reservation(service.create_reservation(rider, 100).reservation.id)
    service.freeze_wallet(driver)
    service.unfreeze_wallet(driver)
    service.withdraw(rider, 3_600)  # available 4,400 -> 800: low
    service.deposit(rider, 400)  # 1,200: restored
    service.create_reservation(rider, 50, ttl_seconds=60)
    service.create_reservation(rider, 70, ttl_seconds=60, on_expiry="capture", capture_to={"walletId": driver})
    clock[0] += timedelta(seconds=61)
    assert service.expire_reservations().expired == 2


@pytest.fixture
def published(database) -> list[dict]:
    """The story's events, as the scheduled publisher sends them."""
    clock = [datetime.now(UTC).replace(microsecond=0)]
    service = WalletService(database, clock=lambda: clock[0], time_budget=20.0)
    story(service, clock)
    sink = Sink()
    report = service.publish_events(sink, older_than_seconds=0, time_limit=60.0)
    assert (report.failed, report.pending) == (0, 0)
    assert report.sent == len(sink.received) > 0
    return sink.received


def test_every_published_event_is_valid_and_every_type_is_seen(published):
    for event in published:
        errors = sorted(validator().iter_errors(event), key=lambda error: list(error.absolute_path))
        assert not errors, (event["type"], [f"{list(error.absolute_path)}: {error.message}" for error in errors])
        assert event["data"]["operationId"] == event["operationId"]
        assert event["data"]["wallet"]["id"] == event["walletId"]
    seen = {event["type"] for event in published}
    assert sorted(seen) == list(EVENT_TYPE_NAMES), f"never published: {sorted(set(EVENT_TYPE_NAMES) - seen)}"
    assert len({event["id"] for event in published}) == len(published)


def test_each_wallets_events_arrive_in_version_order(published):
    by_wallet: dict[str, list[tuple[int, int]]] = {}
    for event in published:
        by_wallet.setdefault(event["walletId"], []).append((event["version"], event["index"]))
    for wallet, order in by_wallet.items():
        assert order == sorted(order), wallet
        assert len(set(order)) == len(order), wallet


def test_the_schema_tells_the_kinds_apart(published):
    """Each kind's data is checked for what it must carry, and format checking is live."""
    first = {}
    for event in published:
        first.setdefault(event["type"], event)

    def refused(event: dict) -> None:
        with pytest.raises(ValidationError):
            validator().validate(event)

    expired = first["reservation.expired"]
    refused({**expired, "data": {key: value for key, value in expired["data"].items() if key != "reservationIds"}})
    captured = first["reservation.captured"]
    refused({**captured, "data": {key: value for key, value in captured["data"].items() if key != "reservation"}})
    refused({**first["wallet.deposit.created"], "data": captured["data"]})  # a reservation where none belongs
    low = first["wallet.balance.low"]
    refused({**low, "index": 0})
    refused({**low, "data": {**low["data"], "available": "800"}})
    deposit = first["wallet.deposit.created"]
    refused({**deposit, "occurredAt": "yesterday"})
    refused({**deposit, "id": "evt_" + "z" * 24})
    refused({**deposit, "type": "wallet.deposit.updated"})
    refused({**deposit, "extra": 1})
    refused({key: value for key, value in deposit.items() if key != "sequence"})
    entry = deposit["data"]["entries"][0]
    refused({**deposit, "data": {**deposit["data"], "entries": [{**entry, "createdAt": "not a time"}]}})
    refused({**deposit, "data": {**deposit["data"], "entries": [{**entry, "type": "GIFT"}]}})


def main() -> None:
    """Rewrite the schema's generated $defs from the models, keeping the hand-written parts."""
    schema = committed()
    schema["$defs"] = {name: part for name, part in schema["$defs"].items() if name in HAND_WRITTEN} | model_defs()
    SCHEMA.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {SCHEMA}")


if __name__ == "__main__":
    main()
