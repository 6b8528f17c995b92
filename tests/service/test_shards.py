"""On a sharded cluster, each movement stays on the shards of the owners it moves money for: the
simulated router (devtools/shard_router.py) maps every command the service sent, grouped into its
transactions, onto SHARDS shards with zones of whole bucket ranges, as `make shard-plan` sets them
up. One shard for anything an owner does alone (with the platform's accounts, a keyed refusal and
a replay included) and for each batch of the expiry job; a transfer, a split capture and a refund
reach only the shards of the owners involved. The registry of opened accounts is unsharded (the
primary shard), read outside the transactions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from devtools.shard_router import PRIMARY, Router, Unit, route
from wallet_service import InsufficientFunds, Request, WalletService
from wallet_service.storage.routing import bucket_of, zone_of
from wallet_service.use_cases.publishing import PublishReport

SHARDS = 4
ROUTER = Router(SHARDS)


def owner_on(shard: int, role: str) -> str:
    """An owner id whose bucket falls in the shard's zone."""
    return next(f"{role}-{n}" for n in range(10_000) if zone_of(bucket_of(f"{role}-{n}"), SHARDS) == shard)


@pytest.fixture
def zoned(service_database, clock) -> WalletService:
    service = WalletService(service_database, time_budget=20.0, clock=lambda: clock[0], zones=SHARDS)
    service.ensure_indexes()
    return service


def units_of(service_commands, call: Callable[[], object]) -> list[Unit]:
    service_commands.clear()
    call()
    return route(ROUTER, [(next(iter(command)), command) for command in service_commands.sent])


def shards_of(units: list[Unit]) -> list[set[int]]:
    """The shards each transaction reached."""
    return [unit.shards for unit in units if unit.transaction]


def test_what_an_owner_does_alone_reaches_the_owners_shard_only(zoned, service_commands, clock):
    rider = owner_on(2, "rider")
    wallet = zoned.create_wallet(rider, "USD", opening_balance=50_000).wallet.id
    zoned.open_account("@tips", "USD")
    hold_id: list[str] = []
    calls: dict[str, Callable[[], object]] = {
        "create_wallet": lambda: zoned.create_wallet(rider, "EUR", Request(idempotency_key="eur"), opening_balance=5),
        "deposit": lambda: zoned.deposit(wallet, 1_000, Request(idempotency_key="top-up")),
        "a replay": lambda: zoned.deposit(wallet, 1_000, Request(idempotency_key="top-up")),
        "withdraw": lambda: zoned.withdraw(wallet, 300, Request(owner_id=rider)),
        "create_reservation": lambda: hold_id.append(zoned.create_reservation(wallet, 4_000).reservation.id),
        "increment_reservation": lambda: zoned.increment_reservation(hold_id[0], 500),
        "capture to platform accounts": lambda: zoned.capture_reservation(
            hold_id[0],
            1_000,
            splits=[{"account": "@tips", "amount": 200}, {"account": "@revenue", "amount": 800}],
            final=False,
        ),
        "capture_reservation": lambda: zoned.capture_reservation(hold_id[0], 1_000, final=False),
        "refund to the rider from @revenue": lambda: zoned.refund_reservation(hold_id[0], 300),
        "release_reservation": lambda: zoned.release_reservation(hold_id[0]),
        "freeze_wallet": lambda: zoned.freeze_wallet(wallet),
        "unfreeze_wallet": lambda: zoned.unfreeze_wallet(wallet),
    }
    for name, call in calls.items():
        units = units_of(service_commands, call)
        assert shards_of(units), name
        assert all(shards == {2} for shards in shards_of(units)), (name, shards_of(units))
        outside = set().union(*(unit.shards for unit in units if not unit.transaction))
        assert outside <= {2, PRIMARY}, (name, outside)  # the registry of opened accounts is on the primary

    def refused_then_replayed() -> None:
        for _ in range(2):
            with pytest.raises(InsufficientFunds):
                zoned.withdraw(wallet, 10**9, Request(idempotency_key="too-much"))

    units = units_of(service_commands, refused_then_replayed)
    assert len(shards_of(units)) >= 2  # the refused attempt and the refusal kept under its key
    assert all(shards == {2} for shards in shards_of(units)), shards_of(units)


def test_money_between_owners_reaches_their_shards_only(zoned, service_commands):
    rider, other, driver = owner_on(0, "rider"), owner_on(2, "rider"), owner_on(3, "driver")
    rider_wallet = zoned.create_wallet(rider, "USD", opening_balance=10_000).wallet.id
    other_wallet = zoned.create_wallet(other, "USD").wallet.id
    driver_wallet = zoned.create_wallet(driver, "USD").wallet.id
    units = units_of(service_commands, lambda: zoned.transfer(rider_wallet, other_wallet, 100))
    assert shards_of(units) == [{0, 2}]
    held = zoned.create_reservation(rider_wallet, 3_000).reservation.id
    split = [{"walletId": driver_wallet, "amount": 2_000}, {"account": "@revenue", "amount": 1_000}]
    units = units_of(service_commands, lambda: zoned.capture_reservation(held, splits=split))
    assert shards_of(units) == [{0, 3}]
    sources = [{"walletId": driver_wallet, "amount": 500}, {"account": "@revenue", "amount": 200}]
    units = units_of(service_commands, lambda: zoned.refund_reservation(held, 700, sources=sources))
    assert shards_of(units) == [{0, 3}]


def test_each_expiry_batch_stays_on_one_shard(zoned, service_commands, clock):
    """Holds due on every shard, and one that captures to a wallet on another shard: a batch per
    shard, and that hold alone (the only transaction on two shards)."""
    wallets = {
        shard: zoned.create_wallet(owner_on(shard, "rider"), "USD", opening_balance=9_000).wallet.id
        for shard in range(SHARDS)
    }
    for shard, wallet in wallets.items():
        for amount in (100, 200):
            zoned.create_reservation(wallet, amount + shard, ttl_seconds=1)
    payee = wallets[3]
    captured = zoned.create_reservation(
        wallets[1], 700, ttl_seconds=1, on_expiry="capture", capture_to={"walletId": payee}
    )
    clock[0] += timedelta(seconds=5)
    report: list = []
    units = units_of(service_commands, lambda: report.append(zoned.expire_reservations(batch_size=100)))
    assert report[0].expired == 2 * SHARDS + 1
    assert len(report[0].operation_ids) == SHARDS + 1
    assert sorted(map(sorted, shards_of(units))) == [[0], [1], [1, 3], [2], [3]]
    assert zoned.get_reservation(captured.reservation.id).captured_amount == 700  # to the payee, at expiry


def test_the_publisher_reads_and_marks_one_shard_at_a_time(zoned, service_commands):
    for shard in range(SHARDS):
        zoned.create_wallet(owner_on(shard, "rider"), "USD", opening_balance=100)

    class Sink:
        def put(self, events):
            return [True] * len(events)

    report: list[PublishReport] = []
    units = units_of(service_commands, lambda: report.append(zoned.publish_events(Sink(), older_than_seconds=0)))
    assert report[0].sent == SHARDS
    scans, targeted = units[0], units[1:]  # the scheduled publisher's search: every shard (documented)
    assert scans.shards == set(range(SHARDS))
    assert len(targeted) == 2 * SHARDS  # a read and a mark per shard
    assert all(len(unit.shards) == 1 for unit in targeted)


def test_a_platform_account_has_a_checkpoint_per_shard_each_rolled_on_its_own(zoned, service_commands, database):
    """@revenue's postings go with the owners on their other side, so over every shard: each zone
    has its checkpoint there, each roll is a transaction on one shard, and the balance adds them up."""
    for shard in range(SHARDS):
        wallet = zoned.create_wallet(owner_on(shard, "rider"), "USD", opening_balance=1_000).wallet.id
        zoned.capture_reservation(zoned.create_reservation(wallet, 100 + shard).reservation.id)
    units = units_of(service_commands, zoned.roll_checkpoints)
    rolls = shards_of(units)
    assert all(len(shards) == 1 for shards in rolls), rolls
    assert {shard for shards in rolls for shard in shards} == set(range(SHARDS))
    checkpoints = list(database["ledger"].find({"kind": "checkpoint", "account": "@revenue"}))
    assert sorted(zone_of(point["bucket"], SHARDS) for point in checkpoints) == list(range(SHARDS))
    assert sum(point["balanceDelta"] for point in checkpoints) == sum(100 + shard for shard in range(SHARDS))
    assert zoned.get_account("@revenue", "USD").balance == sum(100 + shard for shard in range(SHARDS))
