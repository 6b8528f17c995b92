"""A grown database made of the service's own documents: a small town made through the service, cloned.

The town (`build`) is riders and drivers with USD wallets, and everything a ledger holds, each made
through WalletService's public methods with an idempotency key: opening balances, deposits,
withdrawals (one refused for want of money, its refusal kept under its key), a transfer, holds
captured with a split to a driver's wallet and `@revenue`, in parts (`final: false`) and raised on
the way (increments), released, refunded, captured at expiry to a driver's wallet by the expiry
job, left open (HELD and PARTIALLY_CAPTURED, expiring days later), a wallet frozen and unfrozen,
balance alerts. Most of its wallets are idle, as most of a platform's are: it holds about
TOWN_RATIO ledger documents per wallet, the ratio of the default scale (200,000 / 30,000).

`Town.clone(copy)` is the town again with fresh ids, every id remapped consistently, so that each
copy is a consistent piece of ledger (the audit passes on it): ObjectIds wherever they are (wallet
`_id`, `walletId`, `counterpartyWalletId`, reservation `_id` and `reservationId`, platform
entries' `_id`, the ids of captures, increments, refunds, their splits and sources, `captureTo`),
the same ids written in strings (entry `_id` `<walletId>:<sequence>`, event `_id` `evt_<id>`, the
JSON of an operation's answer and of an event's data), operation ids (`key:` ids derived again from
the copy's owner and the key, as the service derives them; a record's request fingerprint is kept,
since the request's parameters are not stored), an operation record's `callId`, owner ids (and so a
claim's `_id` `{ownerId, currency}`) and the town's reference ids. Events are cloned
as the publisher leaves them (`sent: true`, `sentAt`), and platform postings as the every-minute
roll leaves them: the town is rolled into its checkpoints before it is read (`tail: false`), and
the grown database gets one checkpoint per platform account and currency, holding every copy's
postings (`checkpoints`), as the schedule would have left it.

`grow` clones the town into a database until it holds at least the wanted wallets and ledger
documents, inserting in bulk (insert_many, unordered) straight into `wallets` and `ledger`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from bson import Int64, ObjectId
from pymongo import MongoClient
from pymongo.database import Database

from wallet_service import InsufficientFunds, Request, WalletService
from wallet_service.storage import documents
from wallet_service.storage.routing import bucket_of, new_id, owner_of

CURRENCY = "USD"
TOWN_RATIO = 200_000 / 30_000  # ledger documents per wallet in the town, as at the default scale
DRIVERS = 12
BUSY_RIDERS = 16  # riders with a story beside their wallet
IDLE_RIDERS = 32  # riders who opened a wallet with money in it, and did nothing else (yet)
EMPTY_RIDERS = 11  # riders who opened a wallet and never put money in
LONG_TTL = 6 * 24 * 3600  # the town's open holds expire days after it is made: no job has a backlog
BATCH = 2_000  # documents per insert_many
SENT_AFTER = timedelta(seconds=2)  # a cloned event's sentAt: its createdAt plus this
CLONED_KINDS = frozenset(
    {documents.ENTRY, documents.RESERVATION, documents.OPERATION, documents.WALLET_CLAIM, documents.EVENT}
)

# What the remapping rewrites inside strings: an operation id, a 24-hex ObjectId (alone, in an entry's
# or event's _id, in JSON), and the town's names (owners, references), which all look like town-<what>-<nnn>.
OPERATION_ID = r"(?:key|call|expiry):[0-9a-f]{32,64}(?![0-9a-f])"
HEX_ID = r"(?<![0-9a-f])[0-9a-f]{24}(?![0-9a-f])"
TOWN_NAME = r"town-[a-z]+-\d{3}(?!\d)"
TOKENS = re.compile(f"{OPERATION_ID}|{HEX_ID}|{TOWN_NAME}")


def owner(role: str, number: int) -> str:
    return f"town-{role}-{number:03d}"


def build(service: WalletService, *, tag: str = "town") -> int:
    """Make the town through the service; returns the number of calls made."""
    keys = iter(range(1_000_000))
    calls = 0

    def key() -> str:
        nonlocal calls
        calls += 1
        return f"{tag}-{next(keys)}"

    def ride(number: int) -> Request:
        """A new key for a call about ride `number`, which its entries name."""
        return Request(idempotency_key=key(), reference_type="ride", reference_id=owner("ride", number))

    drivers = [
        service.create_wallet(owner("driver", n), CURRENCY, Request(idempotency_key=key())).wallet.id for n in range(6)
    ]
    drivers += [
        service.create_wallet(
            owner("driver", n), CURRENCY, Request(idempotency_key=key()), opening_balance=2_000
        ).wallet.id
        for n in range(6, DRIVERS)
    ]
    riders = [
        service.create_wallet(
            owner("rider", n),
            CURRENCY,
            Request(idempotency_key=key()),
            opening_balance=5_000 + 100 * n,
            alerts={"availableBelow": 2_000} if n == 3 else None,
        ).wallet.id
        for n in range(BUSY_RIDERS + IDLE_RIDERS)
    ]
    first_empty = BUSY_RIDERS + IDLE_RIDERS
    for n in range(first_empty, first_empty + EMPTY_RIDERS):
        service.create_wallet(owner("rider", n), CURRENCY, Request(idempotency_key=key()))

    def split(driver: str, amount: int, revenue: int) -> list[dict]:
        return [{"walletId": driver, "amount": amount}, {"account": "@revenue", "amount": revenue}]

    def hold(rider: str, amount: int, number: int, **options) -> str:
        options.setdefault("ttl_seconds", LONG_TTL)
        made = service.create_reservation(rider, amount, ride(number), **options)
        return made.reservation.id

    # Rides captured in one go, the driver paid, the platform its share, the rest released.
    for number, (rider, driver) in enumerate(zip(riders[:4], drivers[:4], strict=True)):
        held = hold(rider, 1_500, number)
        service.capture_reservation(held, 1_200, ride(number), splits=split(driver, 960, 240))
    # A ride raised on the way (a detour), then captured.
    held = hold(riders[4], 1_000, 10)
    service.increment_reservation(held, 300, ride(10))
    service.capture_reservation(held, 1_300, ride(10), splits=split(drivers[4], 1_040, 260))
    # A ride captured in parts: a first part that leaves the rest held, then the final part.
    held = hold(riders[5], 2_000, 11)
    service.capture_reservation(held, 800, ride(11), splits=split(drivers[5], 640, 160), final=False)
    service.capture_reservation(held, 900, ride(11), splits=split(drivers[5], 720, 180))
    # A ride cancelled: the hold released.
    service.release_reservation(hold(riders[6], 1_200, 12), ride(12))
    # A ride refunded in part, back from the driver and the platform in proportion.
    held = hold(riders[7], 1_600, 13)
    service.capture_reservation(held, 1_500, ride(13), splits=split(drivers[6], 1_200, 300))
    service.refund_reservation(held, 500, ride(13), reason="late pickup")
    # Rides still going: a hold open, a hold captured in part and still open.
    hold(riders[8], 900, 14)
    held = hold(riders[9], 1_800, 15)
    service.capture_reservation(held, 600, ride(15), splits=split(drivers[7], 480, 120), final=False)
    # A hold nobody captured, captured to its driver's wallet by the expiry job.
    hold(riders[10], 700, 16, ttl_seconds=1, on_expiry="capture", capture_to={"walletId": drivers[8]})
    calls += 1  # the job's run, with no key
    service.expire_reservations(now=documents.utc_now_ms() + timedelta(minutes=5))
    # Money in, money out, between riders; a withdrawal refused (its refusal kept under its key).
    service.deposit(
        riders[11], 2_500, Request(idempotency_key=key(), reference_type="card", reference_id=owner("card", 1))
    )
    service.withdraw(riders[12], 1_000, Request(idempotency_key=key()))
    service.transfer(riders[13], riders[14], 750, Request(idempotency_key=key()))
    with contextlib.suppress(InsufficientFunds):
        service.withdraw(riders[15], 1_000_000, Request(idempotency_key=key()))
    # A driver paid out; a rider frozen and back; the alerted rider's available money run low.
    service.withdraw(drivers[0], 900, Request(idempotency_key=key()))
    calls += 2  # freezing and unfreezing take no key
    service.freeze_wallet(riders[15])
    service.unfreeze_wallet(riders[15])
    held = hold(riders[3], 3_000, 17)
    service.capture_reservation(held, 2_500, ride(17), splits=split(drivers[9], 2_000, 500))
    return calls


@dataclass(frozen=True, slots=True)
class Town:
    """The town's documents as read back, and what the remapping needs to know of them."""

    wallets: tuple[dict, ...]
    ledger: tuple[dict, ...]  # every cloned kind
    checkpoints: tuple[dict, ...]  # one per platform account and currency: never cloned, added up
    object_ids: tuple[str, ...]  # every ObjectId in the town, as hex, found as a value or in a string
    operations: tuple[tuple[str, str | None, str | None], ...]  # (operation id, owner, key) of every id seen

    @classmethod
    def read(cls, database: Database) -> Town:
        wallets = tuple(database[documents.WALLETS].find().sort("_id", 1))
        ledger, checkpoints = [], []
        for document in database[documents.LEDGER].find().sort("_id", 1):
            kind = document.get("kind")
            if kind == documents.CHECKPOINT:
                checkpoints.append(document)
                continue
            if kind not in CLONED_KINDS:
                raise ValueError(f"the town holds a {kind!r} document, which the cloning does not know")
            ledger.append(document)
        object_ids: set[str] = set()
        operations: dict[str, tuple[str | None, str | None]] = {}
        for document in (*wallets, *ledger):
            for value in _values(document):
                if isinstance(value, ObjectId):
                    object_ids.add(str(value))
                elif isinstance(value, str):
                    for token in TOKENS.findall(value):
                        if ":" in token:
                            operations.setdefault(token, (None, None))
                        elif not token.startswith("town-"):
                            object_ids.add(token)
        for document in ledger:
            if document["kind"] == documents.OPERATION and document.get("idempotencyKey") is not None:
                operations[document["_id"]] = (document["ownerId"], document["idempotencyKey"])
        return cls(
            wallets,
            tuple(ledger),
            tuple(checkpoints),
            tuple(sorted(object_ids)),
            tuple((operation_id, *known) for operation_id, known in sorted(operations.items())),
        )

    def clone(self, copy: int) -> tuple[list[dict], list[dict]]:
        """The town's wallets and ledger documents again, every id remapped for copy number `copy`."""
        names: dict[str, str] = {}

        def rename(name: str) -> str:
            return names.setdefault(name, f"{name}-c{copy}")

        hexes = {old: str(ObjectId()) for old in self.object_ids}
        holds = [document for document in self.ledger if document["kind"] == documents.RESERVATION]
        for owned in (*self.wallets, *holds):  # a wallet's or a hold's id carries its (new) owner's bucket
            hexes[str(owned["_id"])] = str(new_id(bucket_of(rename(owned["ownerId"]))))
        operations = {}
        for operation_id, owner_id, key in self.operations:
            if key is not None and owner_id is not None:
                digest = hashlib.sha256(f"{rename(owner_id)}\x00{key}".encode()).hexdigest()
                operations[operation_id] = f"key:{digest}"
            else:
                prefix = operation_id.split(":", 1)[0]
                operations[operation_id] = f"{prefix}:{uuid.uuid4().hex}"

        def token(match: re.Match) -> str:
            found = match.group()
            if ":" in found:
                return operations[found]
            if found.startswith("town-"):
                return rename(found)
            return hexes.get(found, found)

        def remap(value):
            if isinstance(value, ObjectId):
                return ObjectId(hexes[str(value)])
            if isinstance(value, str):
                return TOKENS.sub(token, value)
            if isinstance(value, dict):
                return {name: remap(item) for name, item in value.items()}
            if isinstance(value, list):
                return [remap(item) for item in value]
            return value

        wallets = [remap(wallet) for wallet in self.wallets]
        owners = {wallet["_id"]: wallet["ownerId"] for wallet in wallets}
        for wallet in wallets:
            wallet["bucket"] = bucket_of(wallet["ownerId"])
        ledger = []
        for document in self.ledger:
            cloned = remap(document)
            owner = owner_of(cloned, owners)
            if owner is not None:  # else an expiry batch's record: any bucket, its own kept
                cloned["bucket"] = bucket_of(owner)
            if "callId" in cloned:  # an operation record's: the call that made it
                cloned["callId"] = uuid.uuid4().hex
            if cloned["kind"] == documents.EVENT:
                cloned["sent"] = True
                cloned["sentAt"] = cloned["createdAt"] + SENT_AFTER
            ledger.append(cloned)
        return wallets, ledger


def checkpoints(town: Town, copies: int) -> list[dict]:
    """Each of the town's checkpoints as it stands once `copies` copies of the town are rolled into it."""
    added = []
    for point in town.checkpoints:
        fields = {field: Int64(point[field] * copies) for field in ("balanceDelta", "postings", "rolls")}
        added.append({**point, **fields})
    return added


def _values(value) -> Iterator[object]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _values(item)
    else:
        yield value


@dataclass(frozen=True, slots=True)
class Growth:
    """How a database was grown, and what it held afterwards (counted from the database)."""

    town_wallets: int
    town_documents: int
    town_calls: int
    town_seconds: float  # making the town through the service
    copies: int
    clone_seconds: float  # cloning and inserting every copy
    wallets: int
    documents: int

    @property
    def seconds(self) -> float:
        return self.town_seconds + self.clone_seconds


@dataclass(frozen=True, slots=True)
class Made:
    """A town made through the service, and how long that took."""

    town: Town
    calls: int
    seconds: float


def make(client: MongoClient) -> Made:
    """Make the town on a database of its own, read it back, drop that database."""
    began = time.perf_counter()
    name = f"wallet_bench_town_{uuid.uuid4().hex[:8]}"
    try:
        service = WalletService(client[name], time_budget=30.0)
        service.ensure_indexes()
        calls = build(service)
        while not service.roll_checkpoints().finished:  # as the every-minute roll leaves a ledger
            pass
        made = Town.read(client[name].with_options(codec_options=documents.CODEC_OPTIONS))
    finally:
        client.drop_database(name)
    return Made(made, calls, time.perf_counter() - began)


def grow(
    client: MongoClient,
    database: Database,
    *,
    wallets: int,
    documents_: int,
    made: Made | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Growth:
    """Fill `database` (its indexes made first) with copies of a town (`made`, or one made for it)
    until it holds at least `wallets` wallets and `documents_` ledger documents."""
    WalletService(database).ensure_indexes()
    made = made or make(client)
    town = made.town
    copies = max(math.ceil(wallets / len(town.wallets)), math.ceil(documents_ / len(town.ledger)), 1)
    progress(
        f"grow: a town of {len(town.wallets)} wallets and {len(town.ledger)} ledger documents made in "
        f"{made.seconds:.1f} s ({made.calls} calls); cloning it {copies:,} times"
    )
    began = time.perf_counter()
    pending_wallets: list[dict] = []
    pending_ledger: list[dict] = []
    inserted = 0
    reported = began
    for copy in range(1, copies + 1):
        cloned_wallets, cloned_ledger = town.clone(copy)
        pending_wallets += cloned_wallets
        pending_ledger += cloned_ledger
        last = copy == copies
        if len(pending_wallets) >= BATCH or last:
            database[documents.WALLETS].insert_many(pending_wallets, ordered=False)
            pending_wallets = []
        if len(pending_ledger) >= BATCH or last:
            database[documents.LEDGER].insert_many(pending_ledger, ordered=False)
            inserted += len(pending_ledger)
            pending_ledger = []
            if time.perf_counter() - reported >= 15 or last:
                reported = time.perf_counter()
                elapsed = reported - began
                progress(
                    f"grow: {copy:,} of {copies:,} copies, {inserted:,} ledger documents in {elapsed:.0f} s "
                    f"({inserted / elapsed:,.0f} documents/s)"
                )
    database[documents.LEDGER].insert_many(checkpoints(town, copies))
    return Growth(
        town_wallets=len(town.wallets),
        town_documents=len(town.ledger),
        town_calls=made.calls,
        town_seconds=made.seconds,
        copies=copies,
        clone_seconds=time.perf_counter() - began,
        wallets=database[documents.WALLETS].count_documents({}),
        documents=database[documents.LEDGER].count_documents({}),
    )
