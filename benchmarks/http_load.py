"""`make load`: a bounded HTTP load run against `make run`'s local API, one table per run.

    python -m benchmarks.http_load [--duration 30] [--concurrency 8] [--wallets 16] [--seed 1]
                                   [--threads-sweep 1,2,4,8]

`--concurrency` client threads, each with its own HTTP/1.1 connection (http.client, standard
library only), send a weighted mix of every route for `--duration` seconds and then stop starting
new requests; the ones in flight finish and count. A thread keeps its connection while the server
allows it; `make run`'s server (Werkzeug, as in `sam local start-api`) answers `Connection: close`
every time, so there each request opens a new loopback connection (counted in the header line).

The server is `make run`'s, started here as a child process on a free port
(devtools.local_server) with a fresh embedded database, or with MONGODB_URI's deployment (a
database of its own, dropped afterwards), and stopped at the end; its output is in
.local/load-server.log. With BASE_URL, an API that is already running is used instead; tokens come
from the local development key (devtools.local_auth), which `make run` and `make sam-api` accept.

`--threads-sweep 1,2,4,8` (what `make load` passes) also runs the mix at each of those client thread
counts, the same settings otherwise, one run after the other on the same server; the per-route table
is that of the `--concurrency` run (one of the sweep's when it is in it). For the server it starts,
each function container counts what the database answered it (DATABASE_ANSWERS_DIR, see
benchmarks/load_answers.py), so every run also reports its commits and write conflicts.

Before the clock starts, an admin opens `--wallets` USD wallets, each for an owner of its own and
with a large opening balance, and every route is called once (a warm-up: `make run` imports each
handler on its first call, a cold start that is not load). Each thread drives the wallets
`wallet index % concurrency == thread` as their owners, so the mix keeps its wallets funded:
deposits put in about what withdrawals and captures take out, transfers go to any load wallet,
and the opening balance covers thousands of runs of the mix. An `insufficient_funds` or
`invalid_state` 409 is therefore rare, and counted as a business answer, apart from failures
(every other 4xx, 5xx, and requests that got no answer at all).

Every money request carries a fresh Idempotency-Key. Latencies are measured at the client, from
sending the request to reading the whole answer. Nothing here asserts on timings: figures are
reported, never checked; the exit status is 1 only when a request failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks import load_answers, provenance
from benchmarks.load_answers import AnswerTotals
from devtools.paths import LOCAL

LOG = LOCAL / "load-server.log"  # the server's output, kept for a look after the run
ADMIN_SCOPES = ("wallet:read", "wallet:write", "wallet:admin")
CURRENCY = "USD"
OPENING_BALANCE = 1_000_000_000  # cents: a run of the mix moves a few million at most
REQUEST_TIMEOUT = 30.0
HOLD_TTL_SECONDS = 3600  # longer than any run: no hold of the mix expires under it

# Operations in table order, with their weight in the mix (relative frequency of being picked).
# Holds feed the three operations that finish one (capture partial or full, release) with the
# same total weight, so a thread's open holds stay few; one of those picked with no hold open
# places a hold instead.
MIX: dict[str, int] = {
    "open wallet": 2,
    "deposit": 10,
    "withdraw": 8,
    "transfer": 8,
    "hold": 12,
    "capture partial": 4,
    "capture full": 4,
    "release": 4,
    "get wallet": 12,
    "list transactions": 8,
    "list reservations": 8,
    "get reservation": 8,
    "health": 4,
}
OPERATIONS = tuple(MIX)
NEEDS_HOLD = {"capture partial", "capture full", "release"}
# Answers the service gives a well-formed request for business reasons, not failures.
BUSINESS_CODES = {(409, "insufficient_funds"), (409, "invalid_state")}


# ------------------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (0..1) of ascending values, interpolated linearly between the two
    nearest ranks (numpy's default method); NaN for no values."""
    if not sorted_values:
        return float("nan")
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
    position = fraction * (len(sorted_values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


def classify(status: int | None, code: str | None) -> str:
    """'ok' (2xx), 'business' (an expected refusal of the mix, see BUSINESS_CODES) or 'failed'."""
    if status is not None and 200 <= status < 300:
        return "ok"
    if status is not None and (status, code) in BUSINESS_CODES:
        return "business"
    return "failed"


def answer_label(status: int | None, code: str | None, error: str | None = None) -> str:
    """How a non-2xx answer is counted: '409 insufficient_funds', '503 database_unavailable', 'no answer (timeout)'."""
    if status is None:
        return f"no answer ({error})"
    return f"{status} {code}" if code else str(status)


@dataclass
class OperationStats:
    latencies: list[float] = field(default_factory=list)  # seconds
    outcomes: Counter = field(default_factory=Counter)  # ok / business / failed
    answers: Counter = field(default_factory=Counter)  # non-2xx answers by label

    def add(self, latency: float, status: int | None, code: str | None, error: str | None = None) -> None:
        self.latencies.append(latency)
        outcome = classify(status, code)
        self.outcomes[outcome] += 1
        if outcome != "ok":
            self.answers[answer_label(status, code, error)] += 1

    def merge(self, other: OperationStats) -> None:
        self.latencies.extend(other.latencies)
        self.outcomes.update(other.outcomes)
        self.answers.update(other.answers)


@dataclass(frozen=True)
class Row:
    operation: str
    requests: int
    per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    ok: int
    business: int
    failed: int
    answers: str


def row(operation: str, stats: OperationStats, seconds: float) -> Row:
    ordered = sorted(stats.latencies)
    return Row(
        operation,
        len(ordered),
        len(ordered) / seconds if seconds > 0 else 0.0,
        percentile(ordered, 0.50) * 1000,
        percentile(ordered, 0.95) * 1000,
        percentile(ordered, 0.99) * 1000,
        stats.outcomes["ok"],
        stats.outcomes["business"],
        stats.outcomes["failed"],
        ", ".join(f"{label}: {count}" for label, count in sorted(stats.answers.items())) or "",
    )


def rows(by_operation: dict[str, OperationStats], seconds: float) -> list[Row]:
    total = OperationStats()
    result = []
    for operation in OPERATIONS:
        stats = by_operation.get(operation, OperationStats())
        total.merge(stats)
        result.append(row(operation, stats, seconds))
    result.append(row("**total**", total, seconds))
    return result


def table(result_rows: list[Row]) -> str:
    lines = [
        "| operation | requests | req/s | p50 ms | p95 ms | p99 ms | ok | business 4xx | failed | non-2xx answers |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in result_rows:
        if r.requests == 0:
            lines.append(f"| {r.operation} | 0 | 0 | n/a | n/a | n/a | 0 | 0 | 0 | |")
            continue
        lines.append(
            f"| {r.operation} | {r.requests} | {r.per_second:.1f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.ok} | {r.business} | {r.failed} | {r.answers} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ client


@dataclass(frozen=True)
class Answer:
    status: int
    body: object
    code: str | None  # the problem's `code` for application/problem+json answers


class Client:
    """One HTTP/1.1 connection, kept alive while the server allows it; reopened after it closes it."""

    def __init__(self, base_url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._prefix = parsed.path.rstrip("/")
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self.connections = 0  # opened so far: 1 while the server keeps the connection alive

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self._timeout)
            self.connections += 1
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(
        self, method: str, path: str, body: object = None, *, token: str | None = None, key: str | None = None
    ) -> Answer:
        headers = {"Accept": "application/json, application/problem+json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        connection = self._connect()
        try:
            connection.request(method, self._prefix + path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except BaseException:
            self.close()  # a half-used connection is not reused
            raise
        if response.will_close:
            self.close()
        parsed: object = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
        code = (
            parsed.get("code")
            if isinstance(parsed, dict) and "problem" in (response.getheader("Content-Type") or "")
            else None
        )
        return Answer(response.status, parsed, code if isinstance(code, str) else None)


# ----------------------------------------------------------------------------------------- the mix


@dataclass
class Wallet:
    id: str
    owner: str
    token: str


class LoadFailed(RuntimeError):
    """Setting the run up failed (a wallet could not be opened, the warm-up got an unexpected answer)."""


def expect(answer: Answer, status: int, what: str) -> dict:
    if answer.status != status or not isinstance(answer.body, dict):
        raise LoadFailed(f"{what}: expected {status}, got {answer.status} {answer.body!r}"[:2000])
    return answer.body


class Worker(threading.Thread):
    """One client thread: its connection, its wallets (as their owner), its open holds."""

    def __init__(
        self,
        index: int,
        client: Client,
        wallets: list[Wallet],
        everyone: list[Wallet],
        run_id: str,
        token_for,
        *,
        seed: int,
    ) -> None:
        super().__init__(name=f"load-{index}", daemon=True)
        self.index = index
        self.client = client
        self.wallets = wallets
        self.everyone = everyone
        self.run_id = run_id
        self.token_for = token_for
        self.random = random.Random(seed)
        self.holds: list[tuple[Wallet, str, int]] = []  # (wallet, reservation id, amount) still HELD
        self.seen_holds: list[tuple[Wallet, str]] = []  # recent holds, whatever their status, to read back
        self.stats: dict[str, OperationStats] = defaultdict(OperationStats)
        self.opened = 0
        self.start_barrier: threading.Barrier | None = None
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def key(self) -> str:
        return f"load-{self.run_id}-{uuid.uuid4().hex}"

    def pick(self) -> str:
        operation = self.random.choices(OPERATIONS, weights=[MIX[name] for name in OPERATIONS])[0]
        if operation in NEEDS_HOLD and not self.holds:
            return "hold"
        if operation == "get reservation" and not self.seen_holds:
            return "hold"
        return operation

    def call(self, operation: str, record: bool = True) -> Answer | None:
        """Run one operation of the mix; its latency and answer go to the stats when `record`."""
        method, path, body, token, key, on_answer = self.prepare(operation)
        started = time.perf_counter()
        try:
            answer = self.client.request(method, path, body, token=token, key=key)
        except (OSError, http.client.HTTPException) as error:
            latency = time.perf_counter() - started
            if not record:
                raise LoadFailed(f"warm-up {operation}: {error!r}") from error
            self.stats[operation].add(
                latency, None, None, "timeout" if isinstance(error, TimeoutError) else type(error).__name__
            )
            return None
        latency = time.perf_counter() - started
        if record:
            self.stats[operation].add(latency, answer.status, answer.code)
        if on_answer is not None:
            on_answer(answer)
        return answer

    def prepare(self, operation: str):
        """(method, path, body, token, idempotency key, what to do with the answer) for one operation."""
        rnd = self.random
        wallet = rnd.choice(self.wallets)
        if operation == "open wallet":
            self.opened += 1
            owner = f"load-{self.run_id}-new-{self.index}-{self.opened}"
            return "POST", "/v1/wallets", {"currency": CURRENCY}, self.token_for(owner), self.key(), None
        if operation == "deposit":
            body = {"amount": rnd.randint(1_000, 5_000), "referenceType": "load", "referenceId": self.run_id}
            return "POST", f"/v1/wallets/{wallet.id}/deposits", body, wallet.token, self.key(), None
        if operation == "withdraw":
            body = {"amount": rnd.randint(500, 3_000)}
            return "POST", f"/v1/wallets/{wallet.id}/withdrawals", body, wallet.token, self.key(), None
        if operation == "transfer":
            others = [other for other in self.everyone if other.id != wallet.id] or self.everyone
            body = {"fromWalletId": wallet.id, "toWalletId": rnd.choice(others).id, "amount": rnd.randint(100, 2_000)}
            return "POST", "/v1/transfers", body, wallet.token, self.key(), None
        if operation == "hold":
            amount = rnd.randint(500, 3_000)

            def placed(answer: Answer, wallet: Wallet = wallet, amount: int = amount) -> None:
                if answer.status == 201 and isinstance(answer.body, dict):
                    reservation = answer.body["reservation"]["id"]
                    self.holds.append((wallet, reservation, amount))
                    self.seen_holds = [*self.seen_holds[-19:], (wallet, reservation)]

            body = {"amount": amount, "ttlSeconds": HOLD_TTL_SECONDS}
            return "POST", f"/v1/wallets/{wallet.id}/reservations", body, wallet.token, self.key(), placed
        if operation in NEEDS_HOLD:
            owner, reservation, amount = self.holds.pop(rnd.randrange(len(self.holds)))
            body = {"amount": max(1, amount // 2)} if operation == "capture partial" else {}
            action = "release" if operation == "release" else "capture"
            return "POST", f"/v1/reservations/{reservation}/{action}", body, owner.token, self.key(), None
        if operation == "get wallet":
            return "GET", f"/v1/wallets/{wallet.id}", None, wallet.token, None, None
        if operation == "list transactions":
            return "GET", f"/v1/wallets/{wallet.id}/transactions?limit=20", None, wallet.token, None, None
        if operation == "list reservations":
            return "GET", f"/v1/wallets/{wallet.id}/reservations?status=HELD&limit=20", None, wallet.token, None, None
        if operation == "get reservation":
            owner, reservation = rnd.choice(self.seen_holds)
            return "GET", f"/v1/reservations/{reservation}", None, owner.token, None, None
        if operation == "health":
            return "GET", "/health", None, None, None, None
        raise ValueError(f"unknown operation {operation!r}")

    def warm_up(self) -> None:
        """Every operation once, unrecorded, checked: a mistake in the mix fails the run before the clock starts."""
        expected = {"open wallet": 201, "deposit": 201, "withdraw": 201, "transfer": 201, "hold": 201}
        for operation in OPERATIONS:
            if operation in NEEDS_HOLD or operation == "get reservation":
                self.call("hold", record=False)
            answer = self.call(operation, record=False)
            assert answer is not None
            expect(answer, expected.get(operation, 200), f"warm-up {operation}")

    def run(self) -> None:
        try:
            assert self.start_barrier is not None
            self.start_barrier.wait()
            while not self.stop.is_set():
                self.call(self.pick())
        except BaseException as error:  # reported by the main thread
            self.error = error
        finally:
            self.client.close()


# ------------------------------------------------------------------------------------------ the run


@dataclass(frozen=True)
class Settings:
    duration: float
    concurrency: int
    wallets: int
    seed: int
    base_url: str | None
    threads_sweep: tuple[int, ...] = ()

    def thread_counts(self) -> list[int]:
        """Every run's client threads, in the order they run: the sweep's and --concurrency."""
        return sorted({*self.threads_sweep, self.concurrency})


@dataclass
class RunResult:
    concurrency: int
    seconds: float
    stats: dict[str, OperationStats]
    connections: int  # TCP connections the threads opened during the run
    answers: AnswerTotals | None = None  # the database's answers to the service (None: not counted)

    def total(self) -> Row:
        return rows(self.stats, self.seconds)[-1]


def open_wallets(base_url: str, count: int, run_id: str, token_for) -> list[Wallet]:
    client = Client(base_url)
    admin = token_for(f"load-{run_id}-admin", ADMIN_SCOPES)
    wallets = []
    try:
        for index in range(count):
            owner = f"load-{run_id}-owner-{index}"
            body = {"currency": CURRENCY, "ownerId": owner, "openingBalance": OPENING_BALANCE}
            opened = expect(
                client.request("POST", "/v1/wallets", body, token=admin, key=f"load-{run_id}-open-{index}"),
                201,
                f"opening wallet {index}",
            )
            wallets.append(Wallet(opened["wallet"]["id"], owner, token_for(owner)))
    finally:
        client.close()
    return wallets


def run_load(
    base_url: str, settings: Settings, token_for, concurrency: int, answers_dir: Path | None = None
) -> RunResult:
    """One run of the mix on `concurrency` client threads; the database's answers from `answers_dir` if given."""
    run_id = uuid.uuid4().hex[:8]
    progress(f"opening {settings.wallets} wallets of {OPENING_BALANCE} cents each")
    wallets = open_wallets(base_url, settings.wallets, run_id, token_for)
    workers = []
    for index in range(concurrency):
        own = [wallet for position, wallet in enumerate(wallets) if position % concurrency == index]
        own = own or [wallets[index % len(wallets)]]  # fewer wallets than threads: share them
        workers.append(
            Worker(index, Client(base_url), own, wallets, run_id, token_for, seed=settings.seed * 1000 + index)
        )
    progress("warm-up: every route once (make run imports each handler on its first call)")
    workers[0].warm_up()
    barrier = threading.Barrier(len(workers) + 1)
    for worker in workers:
        worker.start_barrier = barrier
        worker.start()
    progress(f"load: {concurrency} threads for {settings.duration:g} s")
    # Every thread waits at the barrier, so no request is in flight: the counts so far are the setup's.
    answers_before = load_answers.read(answers_dir) if answers_dir else None
    barrier.wait()
    started = time.perf_counter()
    time.sleep(settings.duration)
    for worker in workers:  # no new requests from here; the ones in flight finish and count
        worker.stop.set()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    # Containers write their counts before answering, so every finished request is in them.
    answers = load_answers.read(answers_dir) - answers_before if answers_before is not None else None
    for worker in workers:
        if worker.error is not None:
            raise LoadFailed(f"thread {worker.name} stopped: {worker.error!r}") from worker.error
    merged: dict[str, OperationStats] = defaultdict(OperationStats)
    for worker in workers:
        for operation, stats in worker.stats.items():
            merged[operation].merge(stats)
    connections = sum(worker.client.connections for worker in workers)
    return RunResult(concurrency, seconds, dict(merged), connections, answers)


def progress(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


@contextmanager
def target(settings: Settings) -> Iterator[tuple[str, str, Path | None]]:
    """(base URL, what the database is, the folder of the database's answers): BASE_URL's API (whose
    answers are not available), else make run's server started here, counting them."""
    if settings.base_url:
        yield settings.base_url.rstrip("/"), "the running API's own", None
        return
    from devtools.container_aids import ANSWERS_DIR_VARIABLE
    from devtools.local_server import running_server

    answers_dir = Path(tempfile.mkdtemp(prefix="load-answers-"))
    environment = {ANSWERS_DIR_VARIABLE: str(answers_dir)}
    uri = os.environ.get("MONGODB_URI")
    database = f"wallet_load_{uuid.uuid4().hex[:12]}"
    if uri:
        environment["MONGODB_DATABASE"] = database
    log = LOG
    log.parent.mkdir(exist_ok=True)
    progress(f"starting make run's server (log: {log})")
    try:
        with running_server(log, environment) as server:
            described = f"MONGODB_URI, database {database}" if uri else f"embedded SecantusDB {_secantus()}, fresh"
            yield server.base, described, answers_dir
    finally:
        shutil.rmtree(answers_dir, ignore_errors=True)
        if uri:
            from pymongo import MongoClient

            with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
                client.drop_database(database)


def _secantus() -> str:
    try:
        return version("secantusdb")
    except PackageNotFoundError:
        return "(version unknown)"


def parse_args(argv: list[str] | None) -> Settings:
    def env(name: str, default: str) -> str:
        return os.environ.get(name) or default

    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_load", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=float(env("LOAD_DURATION", "30")), help="seconds (LOAD_DURATION)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=int(env("LOAD_CONCURRENCY", "8")), help="client threads (LOAD_CONCURRENCY)"
    )
    parser.add_argument(
        "--wallets",
        type=int,
        default=int(env("LOAD_WALLETS", "16")),
        help="wallets the mix moves money between (LOAD_WALLETS)",
    )
    parser.add_argument("--seed", type=int, default=int(env("LOAD_SEED", "1")), help="seed of the mix (LOAD_SEED)")
    parser.add_argument(
        "--base-url", default=os.environ.get("BASE_URL") or None, help="use this running API instead (BASE_URL)"
    )
    parser.add_argument(
        "--threads-sweep",
        default=env("LOAD_THREADS_SWEEP", ""),
        help="also run at each of these client thread counts, e.g. 1,2,4,8 (LOAD_THREADS_SWEEP; make load: 1,2,4,8)",
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.concurrency < 1 or args.wallets < 2:
        parser.error("need --duration > 0, --concurrency >= 1 and --wallets >= 2 (transfers need two)")
    try:
        sweep = thread_counts(args.threads_sweep)
    except ValueError as error:
        parser.error(f"--threads-sweep: {error}")
    return Settings(args.duration, args.concurrency, args.wallets, args.seed, args.base_url, sweep)


def thread_counts(text: str) -> tuple[int, ...]:
    """'1,2,4,8' as (1, 2, 4, 8); '' as ()."""
    counts = [part.strip() for part in text.split(",") if part.strip()]
    if not all(count.isdigit() and int(count) >= 1 for count in counts):
        raise ValueError(f"expected positive thread counts separated by commas, such as 1,2,4,8, not {text!r}")
    return tuple(sorted({int(count) for count in counts}))


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    from devtools.local_auth import DEFAULT_SCOPES, issue_token

    tokens: dict[tuple[str, tuple[str, ...]], str] = {}
    lock = threading.Lock()

    def token_for(owner: str, scopes: tuple[str, ...] = DEFAULT_SCOPES) -> str:
        with lock:
            if (owner, scopes) not in tokens:
                tokens[owner, scopes] = issue_token(owner, scopes)
            return tokens[owner, scopes]

    started = datetime.now(UTC)
    host = provenance.machine()
    results: dict[int, RunResult] = {}
    with target(settings) as (base_url, database, answers_dir):
        for concurrency in settings.thread_counts():
            results[concurrency] = run_load(base_url, settings, token_for, concurrency, answers_dir)
    main_run = results[settings.concurrency]
    print(
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {host}, Python {platform.python_version()}, "
        f"commit {provenance.commit()}; "
        f"{'BASE_URL ' + base_url if settings.base_url else 'make run started here'}, database: {database}; "
        f"{settings.concurrency} client threads for {main_run.seconds:.1f} s "
        f"({main_run.connections} connections opened), "
        f"{settings.wallets} wallets, seed {settings.seed}.\n"
    )
    print(table(rows(main_run.stats, main_run.seconds)))
    print()
    print(load_answers.describe(main_run.answers))
    if settings.threads_sweep:
        print(
            f"\nBy client threads (the same settings otherwise; {len(results)} runs of {settings.duration:g} s one "
            "after the other on the same server, each with wallets of its own):\n"
        )
        print(sweep_table(list(results.values())))
        print(
            "\nEach thread moves money on wallets of its own, but transfers credit any of the run's wallets, so from "
            "2 threads up two transactions can write one wallet at once: the one that writes second is answered "
            "112 WriteConflict (and retried by the service), and the driver's abort of that transaction, which the "
            "server has already ended, 251 NoSuchTransaction."
        )
        if main_run.answers is None:
            print()
            print(load_answers.describe(None))
    return 1 if any(result.total().failed for result in results.values()) else 0


def sweep_table(results: list[RunResult]) -> str:
    """One row per run: its totals, and what the database answered the service during it."""
    lines = [
        "| client threads | requests | req/s | p50 ms | p95 ms | p99 ms | failed | commits | write conflicts (112) "
        "| by function | NoSuchTransaction (251) | other failed answers |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for result in sorted(results, key=lambda result: result.concurrency):
        total = result.total()
        answers = result.answers
        if answers is None:
            database = "n/a | n/a | n/a | n/a | n/a"
        else:
            where = ", ".join(f"{function} {count}" for function, count in answers.conflicts_by_function.most_common())
            others = ", ".join(f"{label}: {count}" for label, count in sorted(answers.others.items()))
            database = (
                f"{answers.commits} | {answers.write_conflicts} | {where} | {answers.no_such_transaction} | {others}"
            )
        lines.append(
            f"| {result.concurrency} | {total.requests} | {total.per_second:.1f} | {total.p50_ms:.1f} "
            f"| {total.p95_ms:.1f} | {total.p99_ms:.1f} | {total.failed} | {database} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
