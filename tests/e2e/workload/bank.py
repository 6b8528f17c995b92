"""A bank workload over HTTP, after Jepsen's: concurrent clients move money between wallets while
the expiry schedule runs, then the whole ledger is checked from the API and from the database.

Holds follow rides: clients raise them on the way (increments, some pushing the expiry out),
capture them in parts (captures that are not final) and then in full or release them, and some
holds capture what they still hold when they expire (to @revenue or to a driver's wallet).

Clients behave as a careful real client does: every money-moving request carries an
Idempotency-Key, and a timeout, a dropped connection, a 5xx or a 409 `conflict` is retried with the
same key and body until a definite answer comes (honouring Retry-After), so each key's operation
either happened once or was refused. `Workload.run` returns the figures; `Workload.check` asserts
the invariants. Sizes come from `WorkloadSize` (make test's bounded run, or `make soak`'s).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo.database import Database

from benchmarks.http_load import percentile
from devtools.local_auth import issue_token
from devtools.local_server import Server
from tests.ledger_checks import assert_ledger_consistent
from wallet_service.storage.documents import CODEC_OPTIONS, ENTRY, LEDGER, RESERVATION, WALLETS

CURRENCIES = ("USD", "EUR")
ADMIN_SCOPE = "wallet:admin"
OPENING_BALANCE = 50_000
LONG_HOLD_SECONDS = 3600  # outlives the run: closed by a client or by the final release
SHORT_HOLD_SECONDS = (1, 2)  # left to the expiry schedule
PUSHED_OUT_SECONDS = (600, 3_600, 7_200)  # how far a raise may push a long hold's expiry (never due in the run)
PAST_LIFETIME_SECONDS = 7 * 24 * 3600  # 7 days from now: past 7 days from the hold's placing, always refused
MAX_INCREMENTS = 10
CLIENT_TIMEOUT_SECONDS = 15
IMPATIENT_SHARE = 0.08
IMPATIENT_TIMEOUT_SECONDS = 0.005
FUNCTION_FAILED = {"message": "Internal Server Error"}  # API Gateway's answer when the function dies
GIVE_UP_SECONDS = 180  # a request still without a definite answer after this fails the run
SLOW_REQUEST_SECONDS = 1.0  # a request taking longer is kept in Figures.slow_requests, with when it began
TERMINAL = {"CAPTURED", "RELEASED", "EXPIRED"}
OPEN = ("HELD", "PARTIALLY_CAPTURED")
EXPIRY = "expiry:"  # the operation ids of the expiry schedule's batches


@dataclass(frozen=True)
class WorkloadSize:
    owners: int  # each owns one wallet per currency
    clients: int
    operations_per_client: int

    @classmethod
    def from_environment(cls, owners: int, clients: int, operations_per_client: int) -> WorkloadSize:
        """The given size, unless WORKLOAD_OWNERS / WORKLOAD_CLIENTS / WORKLOAD_OPERATIONS say otherwise."""
        return cls(
            owners=int(os.environ.get("WORKLOAD_OWNERS") or owners),
            clients=int(os.environ.get("WORKLOAD_CLIENTS") or clients),
            operations_per_client=int(os.environ.get("WORKLOAD_OPERATIONS") or operations_per_client),
        )


@dataclass(frozen=True)
class WalletRef:
    id: str
    owner: str
    currency: str


@dataclass
class Hold:
    id: str
    wallet: WalletRef
    amount: int  # what it held when placed
    short: bool  # left to the expiry schedule
    on_expiry: str = "release"
    held: int = 0  # what it still holds, as the latest answer about it said (others may have changed it since)
    due: float = float("inf")  # when it expires, by the client's monotonic clock (about)


@dataclass
class Answer:
    """The definite answer to one operation (one Idempotency-Key), after any retries."""

    operation: str
    key: str | None
    status: int
    body: dict
    attempts: int
    replayed: bool


class Unresolved(AssertionError):
    pass


@dataclass
class Figures:
    operations: Counter = field(default_factory=Counter)  # by operation
    outcomes: Counter = field(default_factory=Counter)  # by (operation, status or problem code)
    retries: Counter = field(default_factory=Counter)  # by cause: timeout, network, 5xx status, conflict
    replayed: int = 0  # answers marked Idempotent-Replayed (a retry of something that had happened)
    wall_seconds: float = 0.0
    request_seconds: list[float] = field(default_factory=list)  # every HTTP request, faults included
    operation_seconds: list[float] = field(default_factory=list)  # first attempt to definite answer
    # (began, seconds) of each request over SLOW_REQUEST_SECONDS, began in seconds since the run started
    slow_requests: list[tuple[float, float]] = field(default_factory=list)

    def latency(self) -> str:
        """p50, p99 and max of every request and of every operation (its retries included)."""
        parts = []
        for name, values in (("request", self.request_seconds), ("operation", self.operation_seconds)):
            ordered = sorted(values)
            if ordered:
                p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
                parts.append(
                    f"{name} p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
                )
        return "; ".join(parts)

    def table(self) -> str:
        lines = [f"{'operation':<12} {'calls':>6}  outcomes"]
        for operation, count in sorted(self.operations.items()):
            outcomes = ", ".join(
                f"{outcome} {number}"
                for (name, outcome), number in sorted(self.outcomes.items(), key=str)
                if name == operation
            )
            lines.append(f"{operation:<12} {count:>6}  {outcomes}")
        total = sum(self.operations.values())
        retries = ", ".join(f"{cause} {count}" for cause, count in sorted(self.retries.items())) or "none"
        lines.append(
            f"{total} operations in {self.wall_seconds:.1f} s ({total / max(self.wall_seconds, 1e-9):.0f}/s); "
            f"retries: {retries}; replayed answers: {self.replayed}"
        )
        lines.append(f"latency ({len(self.request_seconds)} requests): {self.latency()}")
        return "\n".join(lines)


class Workload:
    def __init__(self, server: Server, database: Database, size: WorkloadSize, *, seed: int | None = None) -> None:
        self.server = server
        self.database = database.with_options(codec_options=CODEC_OPTIONS)
        self.size = size
        if seed is None:
            seed = int(os.environ.get("WORKLOAD_SEED") or random.randrange(1 << 30))
        self.seed = seed
        self.run_id = uuid.uuid4().hex[:8]
        self.figures = Figures()
        self.wallets: list[WalletRef] = []
        self.tokens: dict[str, str] = {}
        self.admin_token = issue_token(f"bank-ops-{self.run_id}", (ADMIN_SCOPE,))
        self.answers: list[Answer] = []
        self.holds: dict[str, Hold] = {}
        self.open_holds: list[Hold] = []  # long holds not yet closed by a client
        self.short_holds: list[Hold] = []  # raised and captured in parts until they expire
        self.captured_holds: list[Hold] = []  # captured: the platform may refund them
        self._lock = threading.Lock()
        self._keys = itertools.count()
        self._failures: list[BaseException] = []
        self._started = time.monotonic()

    # -- the run -----------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self._started

    def progress(self) -> float:
        """The share of the clients' operations answered so far (0 to 1)."""
        with self._lock:
            done = sum(count for operation, count in self.figures.operations.items() if operation != "open")
        return done / (self.size.clients * self.size.operations_per_client)

    def raise_failures(self) -> None:
        """What went wrong in a run made on another thread (run() raises it there)."""
        if self._failures:
            raise self._failures[0]

    def run(self) -> Figures:
        """Open the wallets and let the clients loose until each has done its operations."""
        try:
            return self._run()
        except BaseException as failure:
            with self._lock:
                if failure not in self._failures:
                    self._failures.append(failure)
            raise

    def _run(self) -> Figures:
        self._started = started = time.monotonic()
        self.platform_before = {currency: self._platform_balance(currency) for currency in CURRENCIES}
        for index in range(self.size.owners):
            owner = f"bank-{self.run_id}-{index}"
            self.tokens[owner] = issue_token(owner)
            for currency in CURRENCIES:
                answer = self.request(
                    "open",
                    "POST",
                    "/v1/wallets",
                    {"currency": currency, "ownerId": owner, "openingBalance": OPENING_BALANCE},
                    token=self.admin_token,
                    key=self._key(),
                )
                assert answer.status == 201, answer
                self.wallets.append(WalletRef(answer.body["wallet"]["id"], owner, currency))
        # Rides whose hold captures at expiry, in every currency and to either place, so that the
        # schedule captures some holds during every run (the clients place more at random).
        rng = random.Random(self.seed - 1)
        for currency in CURRENCIES:
            rider, driver = rng.sample([wallet for wallet in self.wallets if wallet.currency == currency], 2)
            for capture_to in ({"walletId": driver.id}, {"account": "@revenue"}):
                self._place_hold(rng, rider, short=True, expiry={"onExpiry": "capture", "captureTo": capture_to})
        clients = [
            threading.Thread(target=self._client, args=(random.Random(self.seed + number),), name=f"client-{number}")
            for number in range(self.size.clients)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        self.raise_failures()
        self.figures.wall_seconds = time.monotonic() - started
        return self.figures

    def _client(self, rng: random.Random) -> None:
        operations = (
            (self._deposit, 14),
            (self._withdraw, 14),
            (self._transfer, 20),
            (self._hold, 20),
            (self._raise, 8),
            (self._capture_part, 8),
            (self._capture, 12),
            (self._release, 8),
            (self._refund, 4),
            (self._read, 12),
        )
        actions, weights = zip(*operations, strict=True)
        try:
            for _ in range(self.size.operations_per_client):
                rng.choices(actions, weights)[0](rng)
        except BaseException as failure:  # surfaced by run(); the other clients finish their work
            with self._lock:
                self._failures.append(failure)

    def _amount(self, rng: random.Random) -> int:
        # Mostly small; now and then more than a wallet can have, for insufficient-funds answers.
        return rng.randint(60_000, 120_000) if rng.random() < 0.05 else rng.randint(1, 4_000)

    def _deposit(self, rng: random.Random) -> None:
        wallet = rng.choice(self.wallets)
        self._money("deposit", "POST", f"/v1/wallets/{wallet.id}/deposits", {"amount": self._amount(rng)}, wallet, rng)

    def _withdraw(self, rng: random.Random) -> None:
        wallet = rng.choice(self.wallets)
        self._money(
            "withdraw", "POST", f"/v1/wallets/{wallet.id}/withdrawals", {"amount": self._amount(rng)}, wallet, rng
        )

    def _transfer(self, rng: random.Random) -> None:
        source = rng.choice(self.wallets)
        others = [wallet for wallet in self.wallets if wallet.currency == source.currency and wallet != source]
        target = source if rng.random() < 0.05 else rng.choice(others)
        body = {"fromWalletId": source.id, "toWalletId": target.id, "amount": self._amount(rng)}
        answer = self._money("transfer", "POST", "/v1/transfers", body, source, rng)
        if source.id == target.id:
            assert answer.status == 422, answer  # a transfer to itself is refused

    def _hold(self, rng: random.Random) -> None:
        wallet = rng.choice(self.wallets)
        expiry: dict = {}
        if rng.random() < 0.3:  # a no-show fee, a pre-agreed fare: what is still held at expiry is captured
            expiry["onExpiry"] = "capture"
            place = rng.choice(["@revenue by default", "@revenue", "a driver"])
            if place == "@revenue":
                expiry["captureTo"] = {"account": "@revenue"}
            elif place == "a driver":
                expiry["captureTo"] = {"walletId": self._driver(rng, wallet).id}
        self._place_hold(rng, wallet, short=rng.random() < 0.3, expiry=expiry)

    def _place_hold(self, rng: random.Random, wallet: WalletRef, *, short: bool, expiry: dict) -> None:
        ttl = rng.choice(SHORT_HOLD_SECONDS) if short else LONG_HOLD_SECONDS
        body = {
            "amount": self._amount(rng),
            "ttlSeconds": ttl,
            "referenceType": "ride",
            "referenceId": uuid.uuid4().hex,
            **expiry,
        }
        answer = self._money("hold", "POST", f"/v1/wallets/{wallet.id}/reservations", body, wallet, rng)
        if answer.status == 201:
            reservation = answer.body["reservation"]
            assert reservation["onExpiry"] == expiry.get("onExpiry", "release"), reservation
            amount = reservation["amount"]
            hold = Hold(
                reservation["id"], wallet, amount, short, reservation["onExpiry"], amount, time.monotonic() + ttl
            )
            with self._lock:
                self.holds[hold.id] = hold
                (self.short_holds if short else self.open_holds).append(hold)

    def _driver(self, rng: random.Random, rider: WalletRef) -> WalletRef:
        """Another wallet in the rider's currency."""
        return rng.choice([wallet for wallet in self.wallets if wallet.currency == rider.currency and wallet != rider])

    def _any_open_hold(self, rng: random.Random) -> Hold | None:
        """A hold still open as far as the clients know (long or short), left where it is: mostly
        one not yet due, now and then a short one about to expire or expired (racing the schedule)."""
        with self._lock:
            now = time.monotonic()
            self.short_holds = [hold for hold in self.short_holds if hold.due > now - 5]
            candidates = [*self.open_holds, *self.short_holds]
            if rng.random() < 0.9:
                candidates = [hold for hold in candidates if hold.due > now + 0.2]
            return rng.choice(candidates) if candidates else None

    def _seen(self, hold: Hold, reservation: dict) -> None:
        """What an answer says of a hold: what it still holds, whether it is open, whether it captured."""
        with self._lock:
            hold.held = reservation["heldAmount"]
            if reservation["status"] not in OPEN:
                for listed in (self.open_holds, self.short_holds):
                    if hold in listed:
                        listed.remove(hold)
            if reservation["capturedAmount"] and hold not in self.captured_holds:
                self.captured_holds.append(hold)

    def _raise(self, rng: random.Random) -> None:
        """The ride grows on the way (a detour, a wait): raise its hold, a long one's expiry perhaps pushed out."""
        hold = self._any_open_hold(rng)
        if hold is None:
            return self._hold(rng)
        # Mostly a little more; now and then more than the wallet has.
        amount = rng.randint(60_000, 120_000) if rng.random() < 0.05 else rng.randint(1, 1_500)
        body: dict = {"amount": amount, "referenceType": "detour"}
        past_lifetime = False
        if not hold.short and rng.random() < 0.4:
            body["ttlSeconds"] = rng.choice(PUSHED_OUT_SECONDS)
        elif not hold.short and rng.random() < 0.1:
            body["ttlSeconds"] = PAST_LIFETIME_SECONDS
            past_lifetime = True
        answer = self._money("raise", "POST", f"/v1/reservations/{hold.id}/increments", body, hold.wallet, rng)
        if answer.status == 201:
            assert not past_lifetime, answer  # a hold never lives past 7 days from its placing
            reservation = answer.body["reservation"]
            increment = reservation["increments"][-1]
            assert len(reservation["increments"]) <= MAX_INCREMENTS, reservation
            assert (increment["amount"], increment["expiresAt"]) == (body["amount"], reservation["expiresAt"])
            self._seen(hold, reservation)
        elif answer.status == 422:
            # Pushed past 7 days after it was placed, the only field a raise sent here may be refused on.
            assert past_lifetime, answer
            assert [error["field"] for error in answer.body["errors"]] == ["ttlSeconds"], answer
        else:
            # Ended or past its expiry (or raised the most times already), or more than the wallet has.
            assert answer.body["code"] in ("invalid_state", "insufficient_funds"), answer

    def _capture_part(self, rng: random.Random) -> None:
        """A leg of the ride is paid: a capture that is not final takes part and leaves the rest held."""
        hold = self._any_open_hold(rng)
        if hold is None:
            return self._hold(rng)
        part = rng.randint(1, max(1, hold.held // 2))
        body: dict = {"amount": part, "final": False, "referenceType": "fare_leg"}
        if rng.random() < 0.5:
            body["splits"] = self._splits(rng, hold, part)
        answer = self._money("capture part", "POST", f"/v1/reservations/{hold.id}/capture", body, hold.wallet, rng)
        if answer.status == 200:
            reservation = answer.body["reservation"]
            capture = reservation["captures"][-1]
            assert (capture["amount"], capture["final"]) == (part, reservation["status"] == "CAPTURED"), reservation
            assert reservation["status"] in ("PARTIALLY_CAPTURED", "CAPTURED"), reservation
            assert reservation["releasedAmount"] == 0, reservation  # nothing is released by a capture that is not final
            self._seen(hold, reservation)
        else:
            assert self._stale(answer) or answer.body.get("code") == "invalid_state", answer

    def _splits(self, rng: random.Random, hold: Hold, fare: int) -> list[dict]:
        """A ride's fare: most to a driver (another owner's wallet in the currency), the rest to @revenue."""
        driver = self._driver(rng, hold.wallet)
        share = rng.randint(0, fare)
        return [
            split
            for split in ({"walletId": driver.id, "amount": share}, {"account": "@revenue", "amount": fare - share})
            if split["amount"]
        ]

    @staticmethod
    def _stale(answer: Answer) -> bool:
        """A capture refused because the hold holds less than the client counted on (another client
        took part of it first): a 422 on the amount, or on splits meant to add up to all it holds."""
        errors = answer.body.get("errors") or []
        return (
            answer.status == 422
            and bool(errors)
            and all(error["field"] in ("amount", "splits") and "still holds" in error["message"] for error in errors)
        )

    def _pick_hold(self, rng: random.Random) -> Hold | None:
        with self._lock:
            # Usually take a hold off the list; sometimes leave it there, so that two clients race to close it.
            if not self.open_holds:
                return None
            index = rng.randrange(len(self.open_holds))
            return self.open_holds[index] if rng.random() < 0.15 else self.open_holds.pop(index)

    def _capture(self, rng: random.Random) -> None:
        hold = self._pick_hold(rng)
        if hold is None:
            return self._hold(rng)
        # All it still holds, or part of it (the rest released), as far as this client knows.
        amount = rng.randint(1, max(1, hold.held)) if rng.random() < 0.5 else None
        body: dict = {} if amount is None else {"amount": amount}
        if rng.random() < 0.5:
            body["splits"] = self._splits(rng, hold, hold.held if amount is None else amount)
        answer = self._money("capture", "POST", f"/v1/reservations/{hold.id}/capture", body, hold.wallet, rng)
        self._closed(hold, answer)

    def _refund(self, rng: random.Random) -> None:
        """The platform refunds part of a captured ride (a driver who spent the money meanwhile is a 409)."""
        with self._lock:
            hold = rng.choice(self.captured_holds) if self.captured_holds else None
        if hold is None:
            return self._capture(rng)
        body = {"amount": rng.randint(1, hold.amount), "reason": "workload"}
        answer = self.request(
            "refund", "POST", f"/v1/reservations/{hold.id}/refunds", body, token=self.admin_token, key=self._key()
        )
        assert answer.status == 201 or answer.body.get("code") in ("invalid_state", "insufficient_funds"), answer

    def _release(self, rng: random.Random) -> None:
        hold = self._pick_hold(rng)
        if hold is None:
            return self._hold(rng)
        answer = self._money("release", "POST", f"/v1/reservations/{hold.id}/release", {}, hold.wallet, rng)
        self._closed(hold, answer)

    def _closed(self, hold: Hold, answer: Answer) -> None:
        """A final capture or a release answered: the hold is closed now (by this call or a racing
        one), or still open when the capture counted on more than it holds (the final release closes it)."""
        assert answer.status == 200 or answer.body.get("code") == "invalid_state" or self._stale(answer), answer
        if answer.status == 200:
            reservation = answer.body["reservation"]
            assert reservation["status"] in ("CAPTURED", "RELEASED"), reservation
            assert reservation["heldAmount"] == 0, reservation
            self._seen(hold, reservation)
        with self._lock:
            if hold in self.open_holds:
                self.open_holds.remove(hold)

    def _read(self, rng: random.Random) -> None:
        wallet = rng.choice(self.wallets)
        token = self.tokens[wallet.owner]
        path = rng.choice((f"/v1/wallets/{wallet.id}", f"/v1/wallets/{wallet.id}/transactions?limit=20", "/health"))
        answer = self.request("read", "GET", path, None, token=token)
        assert answer.status == 200, answer
        if path == f"/v1/wallets/{wallet.id}":
            self._check_snapshot(answer.body)

    def _money(
        self, operation: str, method: str, path: str, body: dict, wallet: WalletRef, rng: random.Random | None = None
    ) -> Answer:
        # Now and then a client gives up on its first attempt long before the answer can come, and
        # retries with the same key while the first request may still be running.
        impatient = rng is not None and rng.random() < IMPATIENT_SHARE
        answer = self.request(
            operation, method, path, body, token=self.tokens[wallet.owner], key=self._key(), impatient=impatient
        )
        if answer.status < 300:
            for name in ("wallet", "counterpartyWallet"):
                if answer.body.get(name):
                    self._check_snapshot(answer.body[name])
        else:
            # A definite refusal is a business answer, never a server failure.
            assert answer.status in (404, 409, 422), answer
        return answer

    def _key(self) -> str:
        return f"{self.run_id}-{next(self._keys)}"

    def _check_snapshot(self, wallet: dict) -> None:
        assert wallet["available"] == wallet["balance"] - wallet["held"], wallet
        assert wallet["available"] >= 0, wallet
        assert wallet["held"] >= 0, wallet

    def request(
        self,
        operation: str,
        method: str,
        path: str,
        body: dict | None,
        *,
        token: str,
        key: str | None = None,
        impatient: bool = False,
    ) -> Answer:
        """Send until a definite answer: retry timeouts, dropped connections, 503, the gateway's 500
        for a function that died, and 409 `conflict`, with the same key and body, sleeping as
        Retry-After says."""
        began = time.monotonic()
        deadline = began + GIVE_UP_SECONDS
        attempts = 0
        while True:
            attempts += 1
            sent = time.monotonic()
            try:
                timeout = IMPATIENT_TIMEOUT_SECONDS if impatient and attempts == 1 else CLIENT_TIMEOUT_SECONDS
                status, headers, raw = self.server.call(method, path, body, token=token, key=key, timeout=timeout)
            except TimeoutError:
                cause, pause = "timeout", 0.1
                self._took(sent, deliberate=timeout == IMPATIENT_TIMEOUT_SECONDS)
            except OSError:
                cause, pause = "network", 0.1
                self._took(sent)
            else:
                self._took(sent)
                parsed = json.loads(raw) if raw else {}
                code = parsed.get("code") if isinstance(parsed, dict) else None
                if status < 500 and not (status == 409 and code == "conflict"):
                    answer = Answer(
                        operation, key, status, parsed, attempts, headers.get("Idempotent-Replayed") == "true"
                    )
                    with self._lock:
                        self.figures.operation_seconds.append(time.monotonic() - began)
                        self.figures.replayed += answer.replayed
                        self.figures.operations[operation] += 1
                        self.figures.outcomes[(operation, code or str(status))] += 1
                        self.answers.append(answer)
                    return answer
                if status == 500 and parsed == FUNCTION_FAILED:
                    cause, pause = "500 function failed", 0.1  # the gateway's: the function was killed
                else:
                    assert status in (409, 503), (status, parsed)  # anything else is a defect, not a transient
                    assert headers.get("Retry-After"), (status, headers)
                    cause, pause = f"{status} {code}", float(headers["Retry-After"])
            with self._lock:
                self.figures.retries[cause] += 1
            if time.monotonic() > deadline:
                raise Unresolved(f"{method} {path} (key {key}) had no definite answer after {attempts} attempts")
            time.sleep(pause * random.uniform(0.5, 1.0))

    def _took(self, sent: float, *, deliberate: bool = False) -> None:
        """Count one request's latency; not a first attempt the client itself cut short."""
        if not deliberate:
            seconds = time.monotonic() - sent
            with self._lock:
                self.figures.request_seconds.append(seconds)
                if seconds > SLOW_REQUEST_SECONDS:
                    self.figures.slow_requests.append((sent - self._started, seconds))

    def settle(self) -> None:
        """Until the schedule has expired every short hold (TTL a second or two; long ones an hour),
        so that nothing moves while the checks read."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            short = {"kind": RESERVATION, "status": {"$in": OPEN}, "expiresAt": {"$lt": _now_plus(60)}}
            if self.database[LEDGER].count_documents(short) == 0:
                return
            time.sleep(0.5)
        raise AssertionError("the expiry schedule left due holds HELD")

    # -- the checks --------------------------------------------------------------------------

    def check(self) -> None:
        """Every invariant, from the API and from the database, once the short holds are due and
        expired; then close the open holds and check again."""
        self.settle()
        self.check_ledger()
        self.close_remaining_holds()
        self.check_ledger()
        self.check_holds_closed()

    def check_ledger(self) -> None:
        assert_ledger_consistent(self.database)
        api_totals: Counter = Counter()
        by_expiry: Counter = Counter()  # what expiries captured to platform accounts, per currency
        for wallet in self.wallets:
            api_totals[wallet.currency] += self._check_wallet_from_api(wallet, by_expiry)
        platform = self._acknowledged_platform_totals()
        platform.update(by_expiry)  # update, not +: a Counter sum drops the negative totals (@funding's)
        for currency in CURRENCIES:
            # Money is conserved: the wallets hold exactly what the platform's accounts gave out,
            # as the clients were told it (and the holds say their expiries captured), as the API
            # shows it and as the database has it.
            net = -platform[currency]
            assert api_totals[currency] == net, (currency, api_totals[currency], net)
            stored = sum(
                wallet["balance"]
                for wallet in self.database[WALLETS].find({"_id": {"$in": self._ids(currency)}}, {"balance": 1})
            )
            assert stored == net, (currency, stored, net)
            # The platform's accounts moved by what the clients were told (other runs on this database
            # moved them before), and with every wallet of the currency they sum to zero.
            on_accounts = self._platform_balance(currency)
            assert on_accounts - self.platform_before[currency] == platform[currency], (currency, on_accounts)
            everywhere = sum(wallet["balance"] for wallet in self.database[WALLETS].find({"currency": currency}))
            assert everywhere + on_accounts == 0, (currency, everywhere, on_accounts)
        self._check_each_key_moved_money_at_most_once()

    def _platform_balance(self, currency: str) -> int:
        """@funding, @payouts and @revenue in a currency, as an administrator reads them."""
        total = 0
        for name in ("@funding", "@payouts", "@revenue"):
            answer = self.request(
                "check", "GET", f"/v1/accounts/{name}?currency={currency}", None, token=self.admin_token
            )
            assert answer.status == 200, answer
            total += answer.body["balance"]
        return total

    def _ids(self, currency: str) -> list:
        return [ObjectId(wallet.id) for wallet in self.wallets if wallet.currency == currency]

    def _check_wallet_from_api(self, wallet: WalletRef, by_expiry: Counter) -> int:
        """The wallet as its owner sees it: balance and held are the sums of its journal and of what
        its open holds still hold, and each hold's figures add up. Adds what its holds' expiries
        captured to platform accounts to `by_expiry`."""
        token = self.tokens[wallet.owner]
        shown = self.request("check", "GET", f"/v1/wallets/{wallet.id}", None, token=token).body
        entries = self._pages(f"/v1/wallets/{wallet.id}/transactions", token)
        assert [entry["sequence"] for entry in entries] == list(range(len(entries), 0, -1)), wallet
        assert shown["sequence"] == len(entries), wallet
        assert shown["balance"] == sum(entry["balanceDelta"] for entry in entries), wallet
        assert shown["held"] == sum(entry["heldDelta"] for entry in entries), wallet
        # Available was never negative: after every entry in the wallet's history.
        assert all(entry["balanceAfter"] - entry["heldAfter"] >= 0 for entry in entries), wallet
        holds = self._pages(f"/v1/wallets/{wallet.id}/reservations", token)
        for hold in holds:
            self._check_hold_figures(hold)
            if hold["status"] == "EXPIRED" and hold["onExpiry"] == "capture":
                # The expiry's capture is the hold's last, of all it still held then, to its captureTo.
                capture = hold["captures"][-1]
                place = {name: value for name, value in hold["captureTo"].items() if value is not None}
                assert capture["final"], hold
                assert [(split.get("walletId"), split.get("account")) for split in capture["splits"]] == [
                    (place.get("walletId"), place.get("account"))
                ], hold
                if "account" in place:
                    by_expiry[hold["currency"]] += capture["amount"]
        # What the wallet holds is what its open holds still hold, by status too.
        assert shown["held"] == sum(hold["heldAmount"] for hold in holds if hold["status"] in OPEN), wallet
        for status in OPEN:
            listed = self._pages(f"/v1/wallets/{wallet.id}/reservations?status={status}", token)
            assert sorted(hold["id"] for hold in listed) == sorted(
                hold["id"] for hold in holds if hold["status"] == status
            )
        return shown["balance"]

    def _check_hold_figures(self, hold: dict) -> None:
        """All a hold held is its first amount and its increments (at most 10, the expiry after each
        never past 7 days after it was placed), and it is captured, released or still held: only
        an ended hold released anything, and an open one still holds something."""
        first = self.holds[hold["id"]].amount
        increments = hold["increments"]
        assert len(increments) <= MAX_INCREMENTS, hold
        assert hold["amount"] == first + sum(increment["amount"] for increment in increments), hold
        assert hold["capturedAmount"] + hold["releasedAmount"] + hold["heldAmount"] == hold["amount"], hold
        assert hold["capturedAmount"] == sum(capture["amount"] for capture in hold["captures"]), hold
        assert hold["refundedAmount"] <= hold["capturedAmount"], hold
        latest = _parse(hold["createdAt"]) + timedelta(seconds=PAST_LIFETIME_SECONDS)
        assert all(_parse(increment["expiresAt"]) <= latest for increment in increments), hold
        if hold["status"] in OPEN:
            assert hold["heldAmount"] > 0, hold
            assert hold["releasedAmount"] == 0, hold
        else:
            assert hold["heldAmount"] == 0, hold
        assert min(hold["capturedAmount"], hold["releasedAmount"], hold["heldAmount"]) >= 0, hold

    def _pages(self, path: str, token: str) -> list[dict]:
        items: list[dict] = []
        cursor = None
        while True:
            query = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
            separator = "&" if "?" in path else "?"
            answer = self.request(
                "check", "GET", f"{path}{separator}{urllib.parse.urlencode(query)}", None, token=token
            )
            assert answer.status == 200, answer
            items.extend(answer.body["items"])
            cursor = answer.body["nextCursor"]
            if not cursor:
                return items

    def _acknowledged_platform_totals(self) -> Counter:
        """The platform accounts' postings by currency (deposits funded, withdrawals paid out,
        captures and refunds to and from @revenue), from the answers the clients got."""
        totals: Counter = Counter()
        for answer in self._first_success_per_key():
            for entry in answer.body.get("accountEntries", ()):
                totals[entry["currency"]] += entry["balanceDelta"]
        return totals

    def _first_success_per_key(self) -> list[Answer]:
        first: dict[str, Answer] = {}
        for answer in self.answers:
            if answer.status < 300 and answer.body.get("operationId"):
                first.setdefault(answer.key or answer.body["operationId"], answer)
        return list(first.values())

    def _check_each_key_moved_money_at_most_once(self) -> None:
        """Every key's answers agree, and the journal holds exactly the entries of the operations
        that were acknowledged: nothing applied twice, nothing applied that no client was told of."""
        by_key: dict[str, list[Answer]] = defaultdict(list)
        for answer in self.answers:
            if answer.key is not None:
                by_key[answer.key].append(answer)
        for key, answers in by_key.items():
            assert len({json.dumps(answer.body, sort_keys=True) for answer in answers}) == 1, key
        journal: dict[str, list[dict]] = defaultdict(list)
        wallet_ids = [ObjectId(wallet.id) for wallet in self.wallets]
        for entry in self.database[LEDGER].find({"kind": ENTRY, "walletId": {"$in": wallet_ids}}):
            if entry["operationId"].startswith(EXPIRY):  # the schedule's, checked with the holds
                assert entry["type"] in ("EXPIRE", "CAPTURE", "CAPTURE_IN"), entry
                assert str(entry["reservationId"]) in self.holds, entry
            else:
                journal[entry["operationId"]].append(entry)
        acknowledged = {answer.body["operationId"]: answer for answer in self._first_success_per_key()}
        assert set(journal) == set(acknowledged), "journal operations differ from the acknowledged ones"
        for operation_id, answer in acknowledged.items():
            stored = {entry["_id"]: entry for entry in journal[operation_id]}
            shown = {entry["id"]: entry for entry in answer.body["entries"]}
            assert set(shown) <= set(stored), (operation_id, answer)
            for entry_id, entry in shown.items():
                assert (stored[entry_id]["type"], stored[entry_id]["amount"]) == (entry["type"], entry["amount"])
            unseen = [entry for entry_id, entry in stored.items() if entry_id not in shown]
            if unseen and answer.body.get("reservation"):
                # A capture paying another owner's wallet: its CAPTURE_IN is not shown to the payer,
                # and is the split the capture names.
                splits = answer.body["reservation"]["captures"][-1]["splits"]
                paid = {(split["walletId"], split["amount"]) for split in splits if split["walletId"]}
                assert {(str(entry["walletId"]), entry["amount"]) for entry in unseen} == paid, (unseen, splits)
                assert all(entry["type"] == "CAPTURE_IN" for entry in unseen), unseen
            elif unseen:  # a transfer to another owner's wallet: its TRANSFER_IN is not shown to the sender
                (sent,) = shown.values()
                (received,) = unseen
                assert (sent["type"], received["type"]) == ("TRANSFER_OUT", "TRANSFER_IN"), (sent, received)
                assert str(received["walletId"]) == sent["counterpartyWalletId"], (sent, received)
                assert received["amount"] == sent["amount"], (sent, received)

    def close_remaining_holds(self) -> None:
        for hold in list(self.holds.values()):
            if hold.short:
                continue
            self._closed(hold, self._money("close", "POST", f"/v1/reservations/{hold.id}/release", {}, hold.wallet))

    def check_holds_closed(self) -> None:
        """Every hold ended in exactly one terminal state, all it held (its first amount and its
        increments) captured or released; short ones the clients left alone expired, each ended by
        one expiry: an EXPIRE of what it still held, or for onExpiry capture a CAPTURE of it that
        arrived at its captureTo."""
        documents = {
            str(document["_id"]): document
            for document in self.database[LEDGER].find({"kind": RESERVATION, "_id": {"$in": self._hold_ids()}})
        }
        assert set(documents) == set(self.holds), "holds acknowledged to clients are missing"
        for hold_id, hold in self.holds.items():
            document = documents[hold_id]
            assert document["status"] in TERMINAL, document
            increments = document.get("increments", [])
            assert len(increments) <= MAX_INCREMENTS, document
            assert document["amount"] == hold.amount + sum(increment["amount"] for increment in increments), document
            assert document["capturedAmount"] + document["releasedAmount"] == document["amount"], document
            assert document.get("onExpiry", "release") == hold.on_expiry, document
        expired = [document for document in documents.values() if document["status"] == "EXPIRED"]
        assert all(self.holds[str(document["_id"])].short for document in expired), "a long hold expired"
        by_expiry: dict = defaultdict(list)
        batches = {"$gte": EXPIRY, "$lt": EXPIRY[:-1] + ";"}  # the ids that start with "expiry:"
        query = {"kind": ENTRY, "operationId": batches, "reservationId": {"$in": self._hold_ids()}}
        for entry in self.database[LEDGER].find(query):
            by_expiry[entry["reservationId"]].append(entry)
        assert set(by_expiry) <= {document["_id"] for document in expired}, "an expiry moved a hold it did not end"
        for document in expired:
            entries = by_expiry[document["_id"]]
            assert len({entry["operationId"] for entry in entries}) == 1, entries  # one batch ended it
            moved = sorted((entry["type"], entry["amount"]) for entry in entries)
            if document["onExpiry"] == "capture":
                capture = document["captures"][-1]
                assert capture["final"], document
                still_held = capture["amount"]
                assert moved == [("CAPTURE", still_held), ("CAPTURE_IN", still_held)], (document, moved)
                arrived = next(entry for entry in entries if entry["type"] == "CAPTURE_IN")
                assert (arrived.get("walletId"), arrived.get("account")) == (
                    document["captureTo"].get("walletId"),
                    document["captureTo"].get("account"),
                ), (document, arrived)
            else:
                assert moved == [("EXPIRE", document["releasedAmount"])], (document, moved)

    def _hold_ids(self) -> list:
        return [ObjectId(hold_id) for hold_id in self.holds]


def _now_plus(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)
