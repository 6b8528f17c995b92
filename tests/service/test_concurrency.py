"""Many threads racing on the same wallets and holds through one shared WalletService.

Every call that succeeds or fails is recorded; afterwards the database must agree with the
successful answers exactly: money conserved, every idempotency key applied once, every hold
closed once, and the whole ledger consistent. Expected refusals (not enough money, a hold that
is already closed, a retry budget spent on collisions) are counted; anything else fails the test.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from bson import ObjectId
from pymongo.database import Database

from tests.ledger_checks import assert_ledger_consistent, total_money
from wallet_service import (
    Conflict,
    InsufficientFunds,
    InvalidState,
    Movement,
    OnExpiry,
    Request,
    ReservationStatus,
    ValidationFailed,
    WalletExists,
    WalletService,
)
from wallet_service.ledger.limits import MAX_INCREMENTS
from wallet_service.storage.documents import ENTRY, LEDGER, OPERATION, utc_now_ms

EXPECTED_ERRORS = (InsufficientFunds, InvalidState, Conflict)
JOIN_TIMEOUT = 240


@dataclass(frozen=True)
class Call:
    """One service call, replayable with the same idempotency key by any thread.

    `label` tells calls apart, so two keyless calls with the same arguments are two calls."""

    label: str
    method: str
    args: tuple
    key: str | None = None
    options: tuple[tuple[str, object], ...] = ()  # keyword arguments, as (name, value) pairs

    def run(self, service: WalletService) -> Movement:
        return getattr(service, self.method)(
            *self.args, request=Request(idempotency_key=self.key), **dict(self.options)
        )


@dataclass
class Outcomes:
    """What every call returned or raised, recorded from many threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    results: dict[Call, list[Movement]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[Call, list[Exception]] = field(default_factory=lambda: defaultdict(list))
    unexpected: list[str] = field(default_factory=list)
    expected: tuple[type[Exception], ...] = EXPECTED_ERRORS

    def attempt(self, service: WalletService, call: Call) -> Movement | None:
        try:
            result = call.run(service)
        except self.expected as error:
            with self.lock:
                self.errors[call].append(error)
            return None
        except Exception:
            with self.lock:
                self.unexpected.append(f"{call}:\n{traceback.format_exc()}")
            return None
        with self.lock:
            self.results[call].append(result)
        return result

    def error_counts(self) -> Counter:
        return Counter(type(error).__name__ for errors in self.errors.values() for error in errors)

    def first_results(self) -> dict[Call, Movement]:
        return {call: results[0] for call, results in self.results.items()}


def run_threads(workers: list[Callable[[], None]]) -> None:
    """Start the workers together and wait for all of them; a worker's own crash fails the test."""
    barrier = threading.Barrier(len(workers))
    crashes: list[str] = []

    def start(worker: Callable[[], None]) -> None:
        try:
            barrier.wait()
            worker()
        except BaseException:
            crashes.append(traceback.format_exc())

    threads = [threading.Thread(target=start, args=(worker,), daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    assert crashes == [], "\n".join(crashes)


def assert_keys_applied_once(database: Database, outcomes: Outcomes) -> None:
    """Each key's operation appears with exactly one movement's entries, and every answer for a key is that movement."""
    ledger = database[LEDGER]
    keyed_calls = {call for call in [*outcomes.results, *outcomes.errors] if call.key is not None}
    for call in keyed_calls:
        results = outcomes.results.get(call, [])
        records = list(ledger.find({"kind": OPERATION, "idempotencyKey": call.key}))
        # Only a spent retry budget leaves a call's outcome unknown to its caller.
        ambiguous = any(isinstance(error, Conflict) for error in outcomes.errors.get(call, []))
        if not results:
            # A refused keyed call keeps its refusal under its key: the record names the same code.
            refusals = [record for record in records if "refusal" in record]
            codes = {getattr(error, "code", None) for error in outcomes.errors.get(call, [])}
            assert all(record["refusal"]["code"] in codes for record in refusals), (call, refusals)
            assert len(records) - len(refusals) <= (1 if ambiguous else 0), (call, records)
            continue
        first = results[0]
        for other in results[1:]:
            assert other.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"}), call
        # Only the call whose own transaction committed hears replayed=False.
        originals = sum(not result.replayed for result in results)
        assert originals == 1 or (ambiguous and originals == 0), (call, [result.replayed for result in results])
        assert [record["_id"] for record in records] == [first.operation_id], call
        stored = {str(entry["_id"]) for entry in ledger.find({"kind": ENTRY, "operationId": first.operation_id})}
        assert stored == {entry.id for entry in (*first.entries, *first.account_entries)}, call


def applied_movements(database: Database, outcomes: Outcomes, before: set[str]) -> dict[str, tuple[str, Movement]]:
    """Every operation committed during the race (operation id -> (operation, movement)), read from the
    operation records and checked against the answers: each answer is its record's result, and a record
    no answer explains can only come from a call that gave up on a spent retry budget."""
    records = {
        record["_id"]: (record["operation"], Movement.model_validate_json(record["result"]))
        for record in database[LEDGER].find(
            {
                "kind": OPERATION,
                "_id": {"$nin": list(before)},
                "operation": {"$ne": "expire_reservations"},
                "result": {"$exists": True},  # not a keyed refusal: those moved nothing
            }
        )
    }
    answered: set[str] = set()
    for call, results in outcomes.results.items():
        for result in results:
            assert result.operation_id in records, (call, result)
            operation, stored = records[result.operation_id]
            assert operation == call.method
            assert stored.model_dump(exclude={"replayed"}) == result.model_dump(exclude={"replayed"}), call
            answered.add(result.operation_id)
    gave_up = sum(
        1
        for call, errors in outcomes.errors.items()
        if call not in outcomes.results and any(isinstance(error, Conflict) for error in errors)
    )
    assert len(set(records) - answered) <= gave_up
    return records


def operation_ids(database: Database) -> set[str]:
    return {record["_id"] for record in database[LEDGER].find({"kind": OPERATION}, {"_id": 1})}


# ---------------------------------------------------------------- one wallet, sixteen threads


def test_sixteen_threads_racing_on_one_wallet(service: WalletService, database: Database) -> None:
    threads, calls_per_thread, opening = 16, 10, 10_000
    wallet = service.create_wallet("racer", "USD", opening_balance=opening).wallet.id
    setup = operation_ids(database)
    outcomes = Outcomes()
    published: list[tuple[int, Call]] = []  # calls any thread may repeat, published before they run
    published_lock = threading.Lock()

    def worker(number: int) -> None:
        rng = random.Random(number)
        holds: list[tuple[str, int]] = []
        for step in range(calls_per_thread):
            key = f"t{number}-c{step}"
            choice = rng.choices(
                ["deposit", "withdraw", "hold", "capture", "release", "repeat"], weights=[2, 3, 4, 3, 2, 3]
            )[0]
            if choice in ("capture", "release") and not holds:
                choice = "hold"
            with published_lock:
                others = [call for owner, call in published if owner != number]
            if choice == "repeat" and not others:
                choice = "withdraw"
            if choice == "repeat":
                outcomes.attempt(service, rng.choice(others))
                continue
            if choice == "deposit":
                call = Call(key, "deposit", (wallet, rng.randint(1, 600)), key)
            elif choice == "withdraw":
                call = Call(key, "withdraw", (wallet, rng.randint(1, 800)), key)
            elif choice == "hold":
                call = Call(key, "create_reservation", (wallet, rng.randint(1, 800)), key)
            elif choice == "capture":
                hold_id, amount = holds.pop(rng.randrange(len(holds)))
                partial = rng.random() < 0.5
                call = Call(key, "capture_reservation", (hold_id, rng.randint(1, amount) if partial else None), key)
            else:
                hold_id, _ = holds.pop(rng.randrange(len(holds)))
                call = Call(key, "release_reservation", (hold_id,), key)
            with published_lock:
                published.append((number, call))
            result = outcomes.attempt(service, call)
            if result is not None and call.method == "create_reservation":
                assert result.reservation is not None
                holds.append((result.reservation.id, result.reservation.amount))

    run_threads([lambda number=number: worker(number) for number in range(threads)])
    assert outcomes.unexpected == [], "\n".join(outcomes.unexpected)

    assert_ledger_consistent(database)
    final = service.get_wallet(wallet)
    assert final.available >= 0
    for results in outcomes.results.values():
        for result in results:
            assert result.wallet.available >= 0, result
            assert result.wallet.held >= 0, result
    assert_keys_applied_once(database, outcomes)

    # Money is conserved: the final figures follow from the committed movements, which are the answers.
    for call, result in outcomes.first_results().items():
        if call.method in ("deposit", "withdraw", "create_reservation"):
            assert [entry.amount for entry in result.entries] == [call.args[1]], call
        elif call.method == "capture_reservation" and call.args[1] is not None:
            assert result.reservation is not None
            assert result.reservation.captured_amount == call.args[1], call
    deposits = withdrawals = captured = held = 0
    for operation, movement in applied_movements(database, outcomes, setup).values():
        if operation == "deposit":
            deposits += movement.entries[0].amount
        elif operation == "withdraw":
            withdrawals += movement.entries[0].amount
        elif operation == "create_reservation":
            assert movement.reservation is not None
            held += movement.reservation.amount
        else:
            assert movement.reservation is not None
            captured += movement.reservation.captured_amount
            held -= movement.reservation.amount
    assert final.balance == opening + deposits - withdrawals - captured
    assert final.held == held
    assert total_money(database) == final.balance

    # The race really happened: calls succeeded, some keys were answered twice, some calls were refused.
    replays = sum(result.replayed for results in outcomes.results.values() for result in results)
    counts = outcomes.error_counts()
    print(f"one wallet: {len(outcomes.results)} keys applied, {replays} replays, refusals {dict(counts)}")
    assert len(outcomes.results) >= threads * calls_per_thread // 4
    assert replays > 0


# ---------------------------------------------------------------- expiry racing captures and releases


def test_expiry_runs_race_captures_and_releases(service: WalletService, database: Database) -> None:
    wallets = [service.create_wallet(f"owner-{n}", "EUR", opening_balance=10_000).wallet.id for n in range(3)]
    rng = random.Random(7)
    holds: dict[str, int] = {}
    for number in range(30):
        movement = service.create_reservation(wallets[number % 3], rng.randint(10, 300))
        assert movement.reservation is not None
        holds[movement.reservation.id] = movement.reservation.amount
    money = total_money(database)
    setup = operation_ids(database)
    # Due from the expiry runs' point of view only: the captures below use the real clock.
    later = utc_now_ms() + timedelta(hours=1)
    outcomes = Outcomes()
    reports = []

    def expire() -> None:
        reports.append(service.expire_reservations(now=later, batch_size=4))

    def close_holds(number: int) -> None:
        worker_rng = random.Random(100 + number)
        order = list(holds)
        worker_rng.shuffle(order)
        for hold_id in order:
            if worker_rng.random() < 0.5:
                continue
            action = worker_rng.choice(["capture", "partial", "release"])
            label = f"{number}-{hold_id}"
            if action == "release":
                call = Call(label, "release_reservation", (hold_id,))
            else:
                amount = worker_rng.randint(1, holds[hold_id]) if action == "partial" else None
                call = Call(label, "capture_reservation", (hold_id, amount))
            outcomes.attempt(service, call)

    run_threads([expire, expire, *[lambda number=number: close_holds(number) for number in range(4)]])
    assert outcomes.unexpected == [], "\n".join(outcomes.unexpected)
    assert set(outcomes.error_counts()) <= {"InvalidState", "Conflict"}
    assert len(reports) == 2
    assert all((report.skipped, report.failed) == (0, 0) for report in reports), reports

    closings: dict[str, list[Movement]] = defaultdict(list)
    for results in outcomes.results.values():
        for result in results:
            assert result.reservation is not None
            closings[result.reservation.id].append(result)
    applied_movements(database, outcomes, setup)

    statuses = Counter()
    captured_total = 0
    for hold_id, amount in holds.items():
        hold = service.get_reservation(hold_id)
        statuses[hold.status] += 1
        assert hold.status is not ReservationStatus.HELD, hold
        entries = list(
            database[LEDGER].find({"kind": ENTRY, "walletId": {"$exists": True}, "reservationId": ObjectId(hold_id)})
        )
        types = sorted(entry["type"] for entry in entries)
        closing = [entry for entry in entries if entry["type"] != "HOLD"]
        assert types.count("HOLD") == 1, types
        assert len({entry["operationId"] for entry in closing}) == 1, closing
        answers = closings.get(hold_id, [])
        if hold.status is ReservationStatus.EXPIRED:
            assert answers == [], answers
            assert [entry["type"] for entry in closing] == ["EXPIRE"]
        else:
            # Exactly one capture or release won, and the stored hold is what it answered.
            assert len(answers) == 1, (hold, answers)
            assert answers[0].reservation == hold
            assert {entry["operationId"] for entry in closing} == {answers[0].operation_id}
            expected = {"CAPTURE"} if hold.status is ReservationStatus.CAPTURED else {"RELEASE"}
            if hold.captured_amount and hold.released_amount:
                expected = {"CAPTURE", "RELEASE"}
            assert {entry["type"] for entry in closing} == expected
        assert hold.captured_amount + hold.released_amount == amount
        captured_total += hold.captured_amount

    print(f"expiry race: {dict(statuses)}, reports {[report.expired for report in reports]}")
    assert sum(report.expired for report in reports) == statuses[ReservationStatus.EXPIRED]
    assert total_money(database) == money - captured_total
    for wallet in wallets:
        assert service.get_wallet(wallet).held == 0
    assert_ledger_consistent(database)


# ---------------------------------------------------------------- holds that follow a ride, raced by the expiry job


def test_raises_captures_in_parts_and_releases_race_the_expiry_job(service: WalletService, database: Database) -> None:
    """Four threads raise, capture in parts, capture and release the same holds (and repeat each
    other's keyed calls) while two expiry runs end them as their time comes, a cutoff moving ahead
    of the clock the calls see; some holds capture what they still hold at expiry, to @revenue or
    to another wallet. At the end every hold's figures add up and each of its movements happened
    once: its entries are its first HOLD, one HOLD per increment, one CAPTURE per capture (each
    arriving where it was sent) and one release or expiry of the rest, each from a call that was
    answered (or an expiry run), and exactly one call or expiry ended it."""
    wallets = [service.create_wallet(f"rider-{n}", "USD", opening_balance=20_000).wallet.id for n in range(3)]
    rng = random.Random(11)
    first_amounts: dict[str, int] = {}
    for number in range(24):
        expiry = rng.choice(["release", "release", "capture", "capture to a wallet"])
        options: dict = {} if expiry == "release" else {"on_expiry": "capture"}
        if expiry == "capture to a wallet":
            options["capture_to"] = {"walletId": wallets[(number + 1) % 3]}
        ttl = 3_600 if number < 2 else rng.randint(60, 3_600)
        movement = service.create_reservation(wallets[number % 3], rng.randint(50, 500), ttl_seconds=ttl, **options)
        assert movement.reservation is not None
        first_amounts[movement.reservation.id] = movement.reservation.amount
    # Two long rides, which many calls are about: raised from every side up to the most increments.
    busy = list(first_amounts)[:2]
    quiet = list(first_amounts)[2:]
    money = total_money(database)
    setup = operation_ids(database)
    start = utc_now_ms()
    # A part asked for after another thread took or released what it counted on is refused on its amount.
    outcomes = Outcomes(expected=(*EXPECTED_ERRORS, ValidationFailed))
    published: list[Call] = []  # keyed calls any thread may repeat, published before they run
    published_lock = threading.Lock()
    reports = []
    riders, calls_per_rider = 4, 30
    progress = Counter()  # calls made, and riders done

    def expire(number: int) -> None:
        # The holds come due one after another as the rides go on: the cutoff moves from the start
        # to an hour after it (the longest first TTL) with the calls made.
        while progress["riders done"] < riders:
            share = progress["calls"] / (riders * calls_per_rider)
            cutoff = start + timedelta(seconds=3_600 * share + 60 * number)
            reports.append(service.expire_reservations(now=cutoff, batch_size=3))
            time.sleep(0.005)

    def ride(number: int) -> None:
        try:
            take_rides(number)
        finally:
            with published_lock:
                progress["riders done"] += 1

    def take_rides(number: int) -> None:
        worker_rng = random.Random(200 + number)
        for step in range(calls_per_rider):
            with published_lock:
                progress["calls"] += 1
            action = worker_rng.choices(["raise", "part", "capture", "release", "repeat"], weights=[8, 5, 2, 2, 3])[0]
            with published_lock:
                earlier = list(published)
            if action == "repeat" and earlier:
                outcomes.attempt(service, worker_rng.choice(earlier))
                continue
            # The long rides end (a capture, a release, the expiry) only near the end of the run.
            if action in ("capture", "release") and step < calls_per_rider - 5:
                hold_id = worker_rng.choice(quiet)
            else:
                hold_id = worker_rng.choice(busy if worker_rng.random() < 0.6 else list(first_amounts))
            label = f"ride-{number}-{step}"
            key = label if worker_rng.random() < 0.75 else None
            if action in ("raise", "repeat"):  # nothing to repeat yet: a raise
                ttl = worker_rng.choice([None, None, 600, 7_200])  # perhaps pushing the hold's expiry out
                options = () if ttl is None else (("ttl_seconds", ttl),)
                call = Call(label, "increment_reservation", (hold_id, worker_rng.randint(1, 200)), key, options)
            elif action == "part":
                part = worker_rng.randint(1, 150)
                call = Call(label, "capture_reservation", (hold_id, part), key, (("final", False),))
            elif action == "capture":
                call = Call(label, "capture_reservation", (hold_id, worker_rng.choice([None, 100])), key)
            else:
                call = Call(label, "release_reservation", (hold_id,), key)
            if key is not None:
                with published_lock:
                    published.append(call)
            outcomes.attempt(service, call)

    run_threads(
        [
            *(lambda number=number: expire(number) for number in range(2)),
            *(lambda number=number: ride(number) for number in range(riders)),
        ]
    )
    assert outcomes.unexpected == [], "\n".join(outcomes.unexpected)
    at_most: set[str] = set()  # holds a raise was refused as raised the most times already
    for call, errors in outcomes.errors.items():
        for error in errors:
            if isinstance(error, ValidationFailed):
                assert call.method == "capture_reservation", (call, error)
                assert [problem.field for problem in error.errors] == ["amount"], (call, error)
            if call.method == "increment_reservation" and f"raised {MAX_INCREMENTS} times" in error.message:
                at_most.add(call.args[0])
    # The holds still open (their expiry pushed out past the runs' cutoffs) end at a last run.
    reports.append(service.expire_reservations(now=start + timedelta(days=8), batch_size=5))
    assert all((report.skipped, report.failed) == (0, 0) for report in reports), reports
    assert_ledger_consistent(database)
    assert_keys_applied_once(database, outcomes)
    by_hold: dict[str, list[tuple[str, Movement]]] = defaultdict(list)
    for operation, movement in applied_movements(database, outcomes, setup).values():
        assert movement.reservation is not None
        by_hold[movement.reservation.id].append((operation, movement))

    statuses: Counter = Counter()
    to_accounts = 0
    for hold_id, first_amount in first_amounts.items():
        hold = service.get_reservation(hold_id)
        statuses[hold.status] += 1
        # Its figures add up, and nothing is left held.
        assert hold.status in (ReservationStatus.CAPTURED, ReservationStatus.RELEASED, ReservationStatus.EXPIRED)
        assert hold.amount == first_amount + sum(increment.amount for increment in hold.increments), hold
        assert len(hold.increments) == MAX_INCREMENTS if hold_id in at_most else len(hold.increments) <= MAX_INCREMENTS
        assert hold.held_amount == 0, hold
        assert hold.captured_amount + hold.released_amount == hold.amount, hold
        assert hold.captured_amount == sum(capture.amount for capture in hold.captures), hold
        # Its increments and captures are the answered calls' (or a call's that gave up on a spent
        # retry budget, whose record is there), each once; the expiry's capture is the only other.
        movements = by_hold.get(hold_id, [])
        raised = [
            movement.reservation.increments[-1]
            for operation, movement in movements
            if operation == "increment_reservation"
        ]
        assert sorted(increment.id for increment in raised) == sorted(increment.id for increment in hold.increments)
        assert all(increment in hold.increments for increment in raised), (raised, hold.increments)
        captured = [
            movement.reservation.captures[-1] for operation, movement in movements if operation == "capture_reservation"
        ]
        assert all(capture in hold.captures for capture in captured), (captured, hold.captures)
        by_expiry = [capture for capture in hold.captures if capture not in captured]
        endings = [
            movement
            for operation, movement in movements
            if movement.reservation.status in (ReservationStatus.CAPTURED, ReservationStatus.RELEASED)
        ]
        if hold.status is ReservationStatus.EXPIRED:
            assert endings == [], endings
            expected_by_expiry = 1 if hold.on_expiry is OnExpiry.CAPTURE else 0
            assert [capture.final for capture in by_expiry] == [True] * expected_by_expiry, hold
        else:
            assert by_expiry == [], hold
            # Exactly one call ended it, and the hold is as that call answered.
            assert len(endings) == 1, (hold, endings)
            assert endings[0].reservation == hold
        # Its entries: one movement each, the captured money arriving where each capture sent it.
        entries = list(database[LEDGER].find({"kind": ENTRY, "reservationId": ObjectId(hold_id)}))
        own = [entry for entry in entries if entry.get("walletId") == ObjectId(hold.wallet_id)]
        kinds = Counter(entry["type"] for entry in own)
        assert sorted(entry["amount"] for entry in own if entry["type"] == "HOLD") == sorted(
            [first_amount, *(increment.amount for increment in hold.increments)]
        )
        assert sorted(entry["amount"] for entry in own if entry["type"] == "CAPTURE") == sorted(
            capture.amount for capture in hold.captures
        )
        closing = "EXPIRE" if hold.status is ReservationStatus.EXPIRED else "RELEASE"
        assert kinds[closing] == (1 if hold.released_amount else 0), (hold, kinds)
        assert sum(entry["amount"] for entry in own if entry["type"] == closing) == hold.released_amount, hold
        assert set(kinds) <= {"HOLD", "CAPTURE", closing}, kinds
        sent: Counter = Counter()
        arrived: Counter = Counter()
        for entry in own:
            if entry["type"] == "CAPTURE":
                sent[entry["operationId"]] += entry["amount"]
        for entry in entries:
            if entry["type"] == "CAPTURE_IN":
                arrived[entry["operationId"]] += entry["amount"]
                to_accounts += entry["amount"] if "account" in entry else 0
        assert sent == arrived, (sent, arrived)
        answered = {movement.operation_id for _, movement in movements}
        for entry in entries:
            operation_id = entry["operationId"]
            assert operation_id in answered or operation_id in setup or operation_id.startswith("expiry:"), entry

    operations = Counter(operation for movements in by_hold.values() for operation, _ in movements)
    print(
        f"holds that follow a ride: {dict(statuses)}, calls committed {dict(operations)}, {len(reports)} expiry "
        f"runs expired {sum(report.expired for report in reports[:-1])} (the last one {reports[-1].expired}), "
        f"refusals {dict(outcomes.error_counts())}, {len(at_most)} raised the most times"
    )
    assert sum(report.expired for report in reports) == statuses[ReservationStatus.EXPIRED]
    assert total_money(database) == money - to_accounts  # captures to wallets stay among the wallets
    for wallet in wallets:
        assert service.get_wallet(wallet).held == 0
    # The race really happened: holds were raised and captured in parts, and some expired.
    assert operations["increment_reservation"] > 0, operations
    partial = [
        movement
        for movements in by_hold.values()
        for _, movement in movements
        if movement.reservation.status is ReservationStatus.PARTIALLY_CAPTURED
    ]
    assert partial, operations
    assert statuses[ReservationStatus.EXPIRED] > 0, statuses


# ---------------------------------------------------------------- transfers in both directions


def test_transfers_racing_in_both_directions(service: WalletService, database: Database) -> None:
    threads, transfers_per_thread, opening = 8, 12, 5_000
    first = service.create_wallet("left", "GBP", opening_balance=opening).wallet.id
    second = service.create_wallet("right", "GBP", opening_balance=opening).wallet.id
    setup = operation_ids(database)
    outcomes = Outcomes()

    def worker(number: int) -> None:
        rng = random.Random(1_000 + number)
        for step in range(transfers_per_thread):
            source, destination = (first, second) if (number + step) % 2 else (second, first)
            label = f"transfer-{number}-{step}"
            call = Call(label, "transfer", (source, destination, rng.randint(1, 2_000)), label)
            if rng.random() < 0.5:
                call = Call(label, "transfer", call.args)
            outcomes.attempt(service, call)
            if call.key is not None and rng.random() < 0.3:
                outcomes.attempt(service, call)

    run_threads([lambda number=number: worker(number) for number in range(threads)])
    assert outcomes.unexpected == [], "\n".join(outcomes.unexpected)
    assert set(outcomes.error_counts()) <= {"InsufficientFunds", "Conflict"}

    for call, result in outcomes.first_results().items():
        source, destination, amount = call.args
        assert result.counterparty_wallet is not None
        assert (result.wallet.id, result.counterparty_wallet.id) == (source, destination)
        assert [entry.amount for entry in result.entries] == [amount, amount]
        assert result.wallet.available >= 0
    net = {first: opening, second: opening}
    for _, movement in applied_movements(database, outcomes, setup).values():
        assert movement.counterparty_wallet is not None
        net[movement.wallet.id] -= movement.entries[0].amount
        net[movement.counterparty_wallet.id] += movement.entries[0].amount
    assert service.get_wallet(first).balance == net[first]
    assert service.get_wallet(second).balance == net[second]
    assert total_money(database) == 2 * opening
    assert_keys_applied_once(database, outcomes)
    # Keyless calls are never answered twice: each has its own operation record.
    keyless = [results for call, results in outcomes.results.items() if call.key is None]
    assert all(len(results) == 1 and not results[0].replayed for results in keyless)
    moved = {"kind": OPERATION, "result": {"$exists": True}}  # keyed refusals are kept too, moving nothing
    assert database[LEDGER].count_documents(moved) == len(setup) + len(outcomes.results)
    assert_ledger_consistent(database)


# ---------------------------------------------------------------- one owner's wallet, opened at once


def test_opening_one_owners_wallet_from_eight_threads_opens_one(service: WalletService, database: Database) -> None:
    """Eight requests (each with its own key) open the same owner's USD wallet at once: one wallet,
    and every other request is told which one it is."""
    opened: list[Movement] = []
    refused: list[WalletExists] = []
    lock = threading.Lock()

    def open_wallet(number: int) -> None:
        try:
            movement = service.create_wallet(
                "twin", "USD", Request(idempotency_key=f"open-{number}"), opening_balance=100
            )
        except WalletExists as error:
            with lock:
                refused.append(error)
        else:
            with lock:
                opened.append(movement)

    run_threads([lambda number=number: open_wallet(number) for number in range(8)])
    assert len(opened) == 1
    assert len(refused) == 7
    assert {error.existing_wallet_id for error in refused} == {opened[0].wallet.id}
    assert database["wallets"].count_documents({"ownerId": "twin"}) == 1
    assert total_money(database) == 100
    assert_ledger_consistent(database)


def test_the_audit_beside_live_traffic_sees_every_movement_whole(service: WalletService, database: Database) -> None:
    """Four threads move money (deposits, withdrawals, transfers, split captures, refunds) while the
    audit runs again and again: each run reads in snapshot transactions, so it never sees half a
    movement and never reports a discrepancy that is not there."""
    wallets = [service.create_wallet(f"live-{n}", "USD", opening_balance=50_000).wallet.id for n in range(4)]
    stop = threading.Event()
    failures: list[str] = []

    def traffic(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                payer, payee = rng.sample(wallets, 2)
                choice = rng.random()
                try:
                    if choice < 0.3:
                        service.deposit(payer, rng.randint(1, 500))
                    elif choice < 0.5:
                        service.withdraw(payer, rng.randint(1, 500))
                    elif choice < 0.7:
                        service.transfer(payer, payee, rng.randint(1, 500))
                    else:
                        hold = service.create_reservation(payer, 300).reservation.id
                        splits = [{"walletId": payee, "amount": 200}, {"account": "@revenue", "amount": 100}]
                        service.capture_reservation(hold, splits=splits)
                        service.refund_reservation(hold, rng.randint(1, 300))
                except (InsufficientFunds, Conflict):
                    pass
        except Exception:  # surfaced below
            failures.append(traceback.format_exc())

    threads = [threading.Thread(target=traffic, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    reports = []
    try:
        for _ in range(6):
            reports.append(service.audit_ledger(batch_size=1))  # one wallet a transaction: movements land between
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert [report.discrepancies for report in reports] == [()] * len(reports)
    assert reports[-1].entries > reports[0].entries  # money moved while it ran
    assert_ledger_consistent(database)
