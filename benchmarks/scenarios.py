"""What one call of each benchmarked operation is, and the wallets and holds it needs beforehand.

Every money-moving call carries its own idempotency key, as real API calls do. A call that
ends in `Conflict` (the service's retry budget spent on collisions) is retried by the caller
with the same key, as the error asks. A scenario's setup (wallets, holds to capture or
release) happens in `prepare`, outside any measurement.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wallet_service import Conflict, Request, WalletService

CURRENCY = "USD"
RICH = 10**12  # opening balance: enough for every withdrawal, hold and transfer of a run
HOLD = 100  # amount of each hold that is then captured or released
# A partial capture: the remaining 40 is released in the same transaction (final, the default), or
# stays held (capture_part: final false).
PARTIAL_CAPTURE = 60
CALLER_RETRIES = 3  # retries of a call answered with Conflict before the caller gives up on it

# In table order. Throughput is measured for all of them but create_wallet.
OPERATIONS = (
    "create_wallet",
    "deposit",
    "withdraw",
    "transfer",
    "create_reservation",
    "capture_reservation",
    "release_reservation",
)
THROUGHPUT_OPERATIONS = OPERATIONS[1:]
# Counted for round trips only: a capture split between a driver's wallet and @revenue (one more
# wallet to update), a refund of such a capture (back from both, to the rider), a hold raised (an
# increment, a detour on the way) and a capture in parts (final false: the rest stays held).
# A replay of a deposit's key, which moves nothing and publishes nothing, is counted too.
ROUND_TRIP_ONLY = ("capture_split", "refund_reservation", "increment_reservation", "capture_part", "deposit_replay")
DRIVER_SHARE = 45  # of a split capture of PARTIAL_CAPTURE; the rest goes to @revenue
REFUND = 30
INCREMENT = 25  # each increment raises its own hold by this much

# Call number n of an operation with idempotency key `key`; the same n and key replay the same request.
Action = Callable[[int, str], object]


@dataclass
class Scenario:
    """What the calls of one operation act on, and a function making the next call.

    `call()` returns how often the caller retried that call after a Conflict, and raises the last
    Conflict when the caller gives up. `wallet_id` is the wallet the calls take money from or give
    it to (None for create_wallet); `holds`, for an operation on holds, the hold of each call in order;
    `spare_holds`, holds on the same wallet for someone else's calls (see `prepare`).
    """

    call: Callable[[], int]
    wallet_id: str | None
    holds: list[str]
    spare_holds: list[str]


def prepare(service: WalletService, operation: str, tag: str, calls: int, *, spare_holds: int = 0) -> Scenario:
    """Set up what `calls` calls of `operation` need; return the scenario making them.

    `tag` must be unique within the database: it names the owners and the idempotency keys. For an
    operation on holds (HOLD_OPERATIONS), `spare_holds` more holds are made, alternately with the calls' own, so that
    both sets sit side by side in the collection (a server that scans finds them equally fast).
    """
    wallet_id = None
    holds: list[str] = []
    spares: list[str] = []
    if operation != "create_wallet":
        wallet_id = service.create_wallet(f"{tag}-owner", CURRENCY, opening_balance=RICH).wallet.id
    if operation in HOLD_OPERATIONS:
        for hold in make_holds(service, wallet_id, tag, calls + spare_holds):
            mine = len(spares) == spare_holds or (len(holds) < calls and len(holds) <= len(spares))
            (holds if mine else spares).append(hold)
    act = _action(service, operation, tag, wallet_id, holds)
    numbers = itertools.count()

    def call() -> int:
        number = next(numbers)
        for retries in itertools.count():
            try:
                act(number, f"{tag}-{number}")
            except Conflict:
                if retries == CALLER_RETRIES:
                    raise
            else:
                return retries
        raise AssertionError("unreachable")

    return Scenario(call, wallet_id, holds, spares)


# The operations whose calls each act on a hold of their own, made beforehand.
HOLD_OPERATIONS = (
    "capture_reservation",
    "release_reservation",
    "capture_split",
    "refund_reservation",
    "increment_reservation",
    "capture_part",
)


def make_holds(service: WalletService, wallet_id: str, tag: str, count: int) -> list[str]:
    """`count` holds of HOLD on the wallet, made through the service, to capture or release."""
    return [
        service.create_reservation(wallet_id, HOLD, Request(idempotency_key=f"{tag}-hold-{n}")).reservation.id
        for n in range(count)
    ]


def _action(service: WalletService, operation: str, tag: str, wallet_id, holds: list[str]) -> Action:
    if operation == "create_wallet":
        return lambda n, key: service.create_wallet(
            f"{tag}-owner-{n}", CURRENCY, Request(idempotency_key=key), opening_balance=1_000
        )
    if operation == "deposit":
        return lambda n, key: service.deposit(wallet_id, 100, Request(idempotency_key=key))
    if operation == "deposit_replay":  # every call the same request: the first deposits, the rest replay it
        return lambda n, key: service.deposit(wallet_id, 100, Request(idempotency_key=f"{tag}-replayed"))
    if operation == "withdraw":
        return lambda n, key: service.withdraw(wallet_id, 1, Request(idempotency_key=key))
    if operation == "transfer":
        payee_id = service.create_wallet(f"{tag}-payee", CURRENCY).wallet.id
        return lambda n, key: service.transfer(wallet_id, payee_id, 1, Request(idempotency_key=key))
    if operation == "create_reservation":
        return lambda n, key: service.create_reservation(wallet_id, 1, Request(idempotency_key=key))
    if operation == "capture_reservation":
        return lambda n, key: service.capture_reservation(holds[n], PARTIAL_CAPTURE, Request(idempotency_key=key))
    if operation == "release_reservation":
        return lambda n, key: service.release_reservation(holds[n], Request(idempotency_key=key))
    if operation == "increment_reservation":
        return lambda n, key: service.increment_reservation(holds[n], INCREMENT, Request(idempotency_key=key))
    if operation == "capture_part":
        return lambda n, key: service.capture_reservation(
            holds[n], PARTIAL_CAPTURE, Request(idempotency_key=key), final=False
        )
    if operation in ("capture_split", "refund_reservation"):
        driver_id = service.create_wallet(f"{tag}-driver", CURRENCY).wallet.id
        splits = [
            {"walletId": driver_id, "amount": DRIVER_SHARE},
            {"account": "@revenue", "amount": PARTIAL_CAPTURE - DRIVER_SHARE},
        ]
        if operation == "capture_split":
            return lambda n, key: service.capture_reservation(
                holds[n], PARTIAL_CAPTURE, Request(idempotency_key=key), splits=splits
            )
        for hold in holds:  # each refund's hold, captured beforehand (outside any measurement)
            service.capture_reservation(hold, PARTIAL_CAPTURE, splits=splits)
        return lambda n, key: service.refund_reservation(holds[n], REFUND, Request(idempotency_key=key))
    raise ValueError(f"unknown operation {operation!r}")


def create_due_holds(service: WalletService, tag: str, holds: int, wallets: int) -> None:
    """`holds` holds spread evenly over `wallets` wallets, all due at `expiry_cutoff()`; in turn
    (EXPIRY_MIX) one to release at expiry, one to capture to @revenue, one to capture to a driver's
    wallet (a wallet of its own, holding nothing)."""
    wallet_ids = [
        service.create_wallet(f"{tag}-owner-{index}", CURRENCY, opening_balance=RICH).wallet.id
        for index in range(wallets)
    ]
    driver_id = service.create_wallet(f"{tag}-driver", CURRENCY).wallet.id
    on_expiry = (
        {"on_expiry": "release"},
        {"on_expiry": "capture"},
        {"on_expiry": "capture", "capture_to": {"walletId": driver_id}},
    )
    for index in range(holds):
        service.create_reservation(
            wallet_ids[index % wallets],
            1,
            Request(idempotency_key=f"{tag}-hold-{index}"),
            ttl_seconds=60,
            **on_expiry[index % len(on_expiry)],
        )


def expiry_cutoff() -> datetime:
    """A `now` for expire_reservations at which every hold made by `create_due_holds` is due."""
    return datetime.now(UTC) + timedelta(hours=1)
