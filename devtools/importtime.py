"""Cold start of every Lambda function: its handler module's import, then what the first
invocation pays on top (`make importtime`).

For each functions/<name>/app.py, a fresh `python -X importtime` process with only the function's
folder and the layer (layers/wallet) on PYTHONPATH, as Lambda lays them out (/var/task and
/opt/python), and the variables Lambda sets, so that Powertools' Tracer behaves as deployed
(`Tracing: Active`: X-Ray's Lambda sampler), imports the module and then, in the same process:

- **init**: `wallet_lambda.runtime.wallet_service()`, what the first invocation of a container does
  before anything else: the MongoClient, its connection, `ensure_indexes`;
- **first call**: `lambda_handler` with the function's sample event from events/ (the rest of the
  first invocation: Powertools and pydantic setting up on first use, modules imported lazily);
- **warm call**: `lambda_handler` again with the same event on a second set of documents (a new
  Idempotency-Key), which is what every later invocation of the container pays.

In each function's warm-up run it also counts the connections the container holds, as the server
sees them: a separate client asks `currentOp` for the connections of the container's appName before
the first call, after it, and after a few warm calls; the container's own pool events tell its pooled
connections from its monitors. It prints them with what the client's settings
(`wallet_lambda.runtime.CLIENT_SETTINGS`) predict, and the formula for a replica set of any size,
and exits 1 if a container holds more than predicted.

The database is the embedded one, started in this process (or MONGODB_URI's); each run gets a
database of its own, with the indexes already in place as in a deployed stage, and the documents
the events name (a rider's and a driver's wallet and a hold, twice over), so every call is a
success (2xx) on the path it exists for; the seed's own events are marked sent, so a call publishes
only the events it makes. One discarded warm-up run (it writes the bytecode caches),
then `--repeat` measured runs; the table shows medians. The imports: the cumulative time of the
top-level `app` import and its three heaviest dependencies: for each package, the cumulative time
of the imports our own code (app, wallet_lambda, wallet_service) made of it, with everything those pulled
in that was not loaded yet; disjoint, so they add up. Imports that happen during init and the
first call (lazy ones) are reported apart.

    python -m devtools.importtime [--repeat 5] [--function deposit ...] [--import-only] [--no-lambda-env] [--sam-build]

`--import-only` measures the import alone (no database). `--sam-build` measures what `make
sam-build` produced instead (.aws-sam/build), with bytecode writing off as on Lambda's read-only
file system: what a deployed cold start pays.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from devtools import lambda_inputs
from devtools.paths import EVENTS, FUNCTIONS, LAYER, SAM_BUILD

FUNCTIONS = FUNCTIONS
LAYER = LAYER
SAM_BUILD = SAM_BUILD
EVENTS = EVENTS
MODULE = "app"
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")
PHASE = "importtime-phase: "  # a line the child writes to stderr when a phase begins
RESULT = "importtime-result: "  # the child's timings, one JSON line on stdout
PHASES = ("init", "first", "warm")  # after the import: wallet_service(), the first call, a warm call
EVENTS_VARIABLE = "IMPORTTIME_EVENTS"
CONTEXT_VARIABLE = "IMPORTTIME_CONTEXT"
CONNECTIONS_VARIABLE = "IMPORTTIME_CONNECTIONS"  # "1": count the container's connections (the warm-up run)
OBSERVER_APP_NAME = "importtime-observer"  # the client that counts them, not counted itself
EXTRA_WARM_CALLS = 3  # after the measured warm call, while counting: a pool that grew would show
# When the container's connections are counted: after the import, after the first call (init included,
# as in Lambda's first invocation), and after the last warm call.
CONNECTION_MOMENTS = {
    "before": "before the first call",
    "first": "after the first call",
    "warm": f"after {1 + EXTRA_WARM_CALLS} warm calls",
}
CONTEXT_FILE = Path(lambda_inputs.__file__)  # read by the child, which has no devtools on its path
# The ids the sample events carry (tests/handlers/test_events.py swaps them the same way).
RIDER_WALLET = "65f0c0ffee0000000000a001"
DRIVER_WALLET = "65f0c0ffee0000000000a002"
RESERVATION = "65f0c0ffee0000000000b001"
RIDER = "rider-42"  # the events' caller
TRACE_ID = "Root=1-6b06e9e4-1ffb8796edd9f71beb87c19a;Parent=53995c3f42cd8ad8;Sampled=1"

# Run in the measured process after `-X importtime`: import the handler, then init, a first and a
# warm call, each phase announced on stderr so the import lines can be told apart.
CHILD = f"""
import {MODULE}
import json, os, sys, time
from wallet_lambda import runtime

# Lambda's context, read from its file: devtools is not on this clean process's path.
context_file = os.environ[{CONTEXT_VARIABLE!r}]
context_code = {{"__name__": "lambda_context"}}
exec(compile(open(context_file).read(), context_file, "exec"), context_code)
Context = context_code["LambdaContext"]

def phase(name):
    sys.stderr.write({PHASE!r} + name + "\\n")
    sys.stderr.flush()

with open(os.environ[{EVENTS_VARIABLE!r}]) as file:
    events = json.load(file)

# The container's connections as the server sees them, counted between the timed phases: those of
# the container's appName that a separate client's currentOp lists and that were not there before
# it started (a test process's, under the same name); its pool's own events say which are pooled.
counting = os.environ.get({CONNECTIONS_VARIABLE!r}) == "1"
connections = {{}}
if counting:
    phase("count")
    from pymongo import MongoClient, monitoring

    observer = MongoClient(os.environ["MONGODB_URI"], appname={OBSERVER_APP_NAME!r})  # made before the listener

    class PoolConnections(monitoring.ConnectionPoolListener):
        open = 0

        def connection_created(self, event):
            self.open += 1

        def connection_closed(self, event):
            self.open -= 1

    for name in ("pool_created", "pool_ready", "pool_cleared", "pool_closed", "connection_ready",
                 "connection_check_out_started", "connection_check_out_failed", "connection_checked_out",
                 "connection_checked_in"):
        setattr(PoolConnections, name, lambda self, event: None)
    pooled = PoolConnections()
    monitoring.register(pooled)  # heard by the clients made from now on: the container's
    app_name = os.environ["POWERTOOLS_SERVICE_NAME"]  # the runtime's appname

    def app_of(op):
        return ((op.get("clientMetadata") or {{}}).get("application") or {{}}).get("name", op.get("appName"))

    def app_connections():
        inprog = observer.admin.command("currentOp", {{"$all": True}})["inprog"]
        return {{op["connectionId"] for op in inprog if app_of(op) == app_name}}

    already_there = app_connections()

    def count(moment):
        connections[moment] = {{"total": len(app_connections() - already_there), "pool": pooled.open}}

    count("before")

phase("init")
started = time.perf_counter()
runtime.wallet_service()
initialized = time.perf_counter()
phase("first")
first = {MODULE}.lambda_handler(events["first"], Context())
called = time.perf_counter()
if counting:
    phase("count")
    count("first")
phase("warm")
warm_started = time.perf_counter()
warm = {MODULE}.lambda_handler(events["warm"], Context())
done = time.perf_counter()
phase("end")
if counting:
    for _ in range({EXTRA_WARM_CALLS}):  # replays or refusals of the same request: they use the database too
        {MODULE}.lambda_handler(events["warm"], Context())
    count("warm")
print({RESULT!r} + json.dumps({{
    "init_us": round((initialized - started) * 1e6),
    "first_us": round((called - initialized) * 1e6),
    "warm_us": round((done - warm_started) * 1e6),
    "statuses": [answer.get("statusCode", 200) for answer in (first, warm)],
    "connections": connections,
}}), flush=True)
"""


# The function's own code: its module and the layer's packages. Everything else it imports is a dependency.
OWN_PACKAGES = {MODULE} | {path.parent.name for path in LAYER.glob("*/__init__.py")}


@dataclass
class Node:
    name: str
    self_us: int
    cumulative_us: int
    children: list[Node] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    cumulative_us: int  # the top-level `import app`, everything it pulled in included
    # Each dependency package, by the imports our own code made of it: their cumulative times
    # (each with what it pulled in). Python imports a module once, so these are disjoint.
    dependencies_us: dict[str, int]
    # After the import (absent with --import-only): microseconds per phase (init, first, warm),
    # and the imports each phase made, by top-level package (cumulative times of its top-level imports).
    phases_us: dict[str, int] = field(default_factory=dict)
    lazy_imports_us: dict[str, dict[str, int]] = field(default_factory=dict)
    # When counted: the container's connections at each of CONNECTION_MOMENTS, {"total", "pool"}.
    connections: dict[str, dict[str, int]] = field(default_factory=dict)


def parse_tree(stderr: str) -> list[Node]:
    """The top-level imports of `-X importtime` output, as trees. Lines come in post-order (a module
    after everything it imported), indented two spaces per level."""
    pending: dict[int, list[Node]] = defaultdict(list)
    roots: list[Node] = []
    for line in stderr.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        depth = len(match[3]) // 2
        node = Node(match[4], int(match[1]), int(match[2]), pending.pop(depth + 1, []))
        (roots if depth == 0 else pending[depth]).append(node)
    return roots


def split_phases(stderr: str) -> dict[str, str]:
    """The child's stderr cut at its phase lines: "import" (before the first one), then each phase."""
    sections: dict[str, list[str]] = defaultdict(list)
    current = "import"
    for line in stderr.splitlines():
        if line.startswith(PHASE):
            current = line.removeprefix(PHASE).strip()
        else:
            sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def imports_by_package(stderr: str) -> dict[str, int]:
    """The top-level imports of a stretch of -X importtime output, by top-level package: what that
    stretch of code spent importing (each import with everything it pulled in)."""
    packages: dict[str, int] = defaultdict(int)
    for root in parse_tree(stderr):
        packages[root.name.split(".")[0]] += root.cumulative_us
    return dict(packages)


def parse(stderr: str, module: str = MODULE) -> Sample:
    for root in parse_tree(split_phases(stderr).get("import", "")):
        if root.name == module:
            break
    else:
        raise ValueError(f"no top-level `import {module}` in the -X importtime output:\n{stderr[-2000:]}")
    dependencies: dict[str, int] = defaultdict(int)

    def walk(node: Node) -> None:
        for child in node.children:
            package = child.name.split(".")[0]
            if package in OWN_PACKAGES:
                walk(child)
            else:
                dependencies[package] += child.cumulative_us

    walk(root)
    return Sample(root.cumulative_us, dict(dependencies))


def parse_invocation(stdout: str, stderr: str, sample: Sample) -> tuple[Sample, list[int]]:
    """`sample` with the child's phase timings (its result line) and each phase's lazy imports; and
    the status codes of the first and the warm call."""
    results = [line.removeprefix(RESULT) for line in stdout.splitlines() if line.startswith(RESULT)]
    if not results:
        raise ValueError(f"no {RESULT.strip()} line in the child's output:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    timings = json.loads(results[-1])
    sections = split_phases(stderr)
    return Sample(
        sample.cumulative_us,
        sample.dependencies_us,
        {name: timings[f"{name}_us"] for name in PHASES},
        {name: imports_by_package(sections.get(name, "")) for name in PHASES},
        timings.get("connections", {}),
    ), timings["statuses"]


@dataclass(frozen=True)
class Layout:
    """Where a function's code and the layer are read from."""

    sam_build: bool = False  # .aws-sam/build (`make sam-build`) instead of the sources

    def function_dir(self, name: str) -> Path:
        if self.sam_build:  # SAM names the folder after the logical id: capture_reservation -> CaptureReservation
            return SAM_BUILD / "".join(part.capitalize() for part in name.split("_"))
        return FUNCTIONS / name

    @property
    def layer(self) -> Path:
        return SAM_BUILD / "WalletLayer" / "python" if self.sam_build else LAYER


def environment(function_dir: Path, layer: Path, *, lambda_env: bool, write_bytecode: bool) -> dict[str, str]:
    """A clean environment: nothing from this shell's PYTHONPATH, nothing from tests/ or devtools/."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(function_dir), str(layer)]),
        "PYTHONNOUSERSITE": "1",
        "POWERTOOLS_SERVICE_NAME": "wallet",
        "POWERTOOLS_METRICS_NAMESPACE": "Wallet",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # Events go to a scratch file, as make run's do: the first call publishes its events too.
        "EVENTS_FILE": str(Path(tempfile.gettempdir()) / "wallet-importtime-events.jsonl"),
    }
    if not write_bytecode:  # Lambda's /var/task and /opt are read-only: no __pycache__ is ever written there
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    if lambda_env:
        env.update(
            {
                "LAMBDA_TASK_ROOT": str(function_dir),
                "AWS_LAMBDA_FUNCTION_NAME": f"wallet-{function_dir.name}",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
                # What Lambda sets with `Tracing: Active`; segments go to no daemon here (UDP, unanswered).
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
                "_X_AMZN_TRACE_ID": TRACE_ID,
            }
        )
    return env


# ------------------------------------------------------------------ the database and the events


@dataclass(frozen=True)
class Database:
    """Where the measured process finds its database: a URI, and a client here to prepare each run's."""

    uri: str
    client: object  # pymongo.MongoClient (imported lazily: --import-only needs no database)


@contextmanager
def database_server() -> Iterator[Database]:
    """MONGODB_URI's deployment, else the embedded server started in this process for the run."""
    from pymongo import MongoClient

    from devtools.embedded_mongo import EmbeddedMongo, external_uri

    uri = external_uri()
    embedded = None
    if uri is None:
        embedded = EmbeddedMongo()
        uri = embedded.start()
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            yield Database(uri, client)
    finally:
        if embedded is not None:
            embedded.stop()


def _service(database):
    from wallet_service import WalletService

    return WalletService(database)


class AcceptingSink:
    """Takes every event: the seed's events count as sent, so no measured call publishes them."""

    def put(self, events) -> list[bool]:
        return [True] * len(events)


def seed(database, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """Indexes, as a deployed stage has them, and for the events of function `name` two sets of the
    documents they name: {example id: real id} for the first call and for the warm call, their
    events already sent. None for create_wallet and open_account, whose events open something
    (nothing may exist yet)."""
    service = _service(database)
    service.ensure_indexes()
    if name in ("create_wallet", "open_account"):
        return None
    sets = []
    for currency in ("USD", "EUR"):  # one wallet per owner and currency
        rider = service.create_wallet(RIDER, currency, opening_balance=100_000).wallet.id
        driver = service.create_wallet("driver-7", currency).wallet.id
        hold = service.create_reservation(rider, 2_000, ttl_seconds=900).reservation.id
        if name == "refund_reservation":  # a refund gives back what a capture took
            service.capture_reservation(hold)
        sets.append({RIDER_WALLET: rider, DRIVER_WALLET: driver, RESERVATION: hold})
    published = service.publish_events(AcceptingSink(), older_than_seconds=0, time_limit=30)
    if published.pending or published.failed:
        raise RuntimeError(f"the seed's events were not all marked sent: {published}")
    return sets[0], sets[1]


def events_for(name: str, ids: tuple[dict[str, str], dict[str, str]] | None) -> dict[str, dict]:
    """The function's sample event for the first call and for the warm call (other documents, a new
    Idempotency-Key; for create_wallet, another caller)."""
    text = (EVENTS / f"{name}.json").read_text()
    if ids is None:
        # Another caller, another account: the warm call opens something new too.
        first, warm = text, text.replace(f'"{RIDER}"', f'"{RIDER}-warm"').replace('\\"@tips\\"', '\\"@tips-warm\\"')
    else:
        first, warm = text, text
        for example in ids[0]:
            first, warm = first.replace(example, ids[0][example]), warm.replace(example, ids[1][example])
    events = {"first": json.loads(first), "warm": json.loads(warm)}
    headers = events["warm"].get("headers") or {}
    if "idempotency-key" in headers:
        headers["idempotency-key"] += "-warm"
    return events


# ------------------------------------------------------------------------------------ measuring


def measure_once(
    name: str,
    *,
    lambda_env: bool,
    layout: Layout = Layout(),
    database: Database | None = None,
    count_connections: bool = False,
) -> Sample:
    """One fresh process: the import, and with a `database` also init, a first and a warm call (and,
    `count_connections`, the container's connections around them)."""
    function_dir = layout.function_dir(name)
    if not (function_dir / f"{MODULE}.py").is_file():
        raise FileNotFoundError(
            f"{function_dir / MODULE}.py does not exist" + (" (run `make sam-build`)" if layout.sam_build else "")
        )
    env = environment(function_dir, layout.layer, lambda_env=lambda_env, write_bytecode=not layout.sam_build)
    code = f"import {MODULE}"
    database_name = None
    with tempfile.TemporaryDirectory(prefix="importtime-") as scratch:
        if database is not None:
            database_name = f"importtime_{uuid.uuid4().hex[:12]}"
            events_file = Path(scratch) / "events.json"
            events_file.write_text(json.dumps(events_for(name, seed(database.client[database_name], name))))
            env |= {
                "MONGODB_URI": database.uri,
                "MONGODB_DATABASE": database_name,
                EVENTS_VARIABLE: str(events_file),
                CONTEXT_VARIABLE: str(CONTEXT_FILE),
                CONNECTIONS_VARIABLE: "1" if count_connections else "",
            }
            code = CHILD
        try:
            completed = subprocess.run(
                [sys.executable, "-X", "importtime", "-c", code],
                cwd=function_dir,  # `-c` puts the working directory first on sys.path: the function's folder
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
        finally:
            if database is not None:
                database.client.drop_database(database_name)
    if completed.returncode != 0:
        raise RuntimeError(f"functions/{name}/app.py failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-3000:]}")
    sample = parse(completed.stderr)
    if database is None:
        return sample
    sample, statuses = parse_invocation(completed.stdout, completed.stderr, sample)
    if not all(200 <= status < 300 for status in statuses):
        raise RuntimeError(
            f"functions/{name}: the first and warm calls answered {statuses}:\n{completed.stdout[-3000:]}"
        )
    return sample


@dataclass(frozen=True)
class Result:
    name: str
    median_ms: float
    heaviest: list[tuple[str, float]]  # (dependency package, median ms of importing it)
    phases_ms: dict[str, float] = field(default_factory=dict)  # median ms of init, first and warm calls
    lazy_ms: dict[str, float] = field(default_factory=dict)  # median ms of imports made during init and first call
    lazy_heaviest: list[tuple[str, float]] = field(default_factory=list)
    connections: dict[str, dict[str, int]] = field(default_factory=dict)  # the warm-up run's count (Sample's)

    @property
    def cold_start_ms(self) -> float:
        """What the first request of a fresh container pays in our code: import, init, first call."""
        return self.median_ms + self.phases_ms["init"] + self.phases_ms["first"]


def _median_by_package(dictionaries: list[dict[str, int]]) -> dict[str, float]:
    packages = set().union(*dictionaries)
    return {package: statistics.median(d.get(package, 0) for d in dictionaries) / 1000 for package in packages}


def _heaviest(by_package: dict[str, float], count: int = 3) -> list[tuple[str, float]]:
    return sorted(by_package.items(), key=lambda item: (-item[1], item[0]))[:count]


def measure(
    name: str, *, repeat: int, lambda_env: bool, layout: Layout = Layout(), database: Database | None = None
) -> Result:
    # The warm-up run writes the bytecode caches; its timings are discarded, so it counts the connections.
    warm_up = measure_once(name, lambda_env=lambda_env, layout=layout, database=database, count_connections=True)
    samples = [measure_once(name, lambda_env=lambda_env, layout=layout, database=database) for _ in range(repeat)]
    heaviest = _heaviest(_median_by_package([sample.dependencies_us for sample in samples]))
    median_ms = statistics.median(sample.cumulative_us for sample in samples) / 1000
    if database is None:
        return Result(name, median_ms, heaviest)
    phases = {phase: statistics.median(sample.phases_us[phase] for sample in samples) / 1000 for phase in PHASES}
    cold = [
        {
            package: sample.lazy_imports_us["init"].get(package, 0) + sample.lazy_imports_us["first"].get(package, 0)
            for package in {*sample.lazy_imports_us["init"], *sample.lazy_imports_us["first"]}
        }
        for sample in samples
    ]
    lazy = {
        phase: statistics.median(sum(sample.lazy_imports_us[phase].values()) for sample in samples) / 1000
        for phase in PHASES
    }
    return Result(name, median_ms, heaviest, phases, lazy, _heaviest(_median_by_package(cold)), warm_up.connections)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu})"


def table(results: list[Result]) -> str:
    if not results or not results[0].phases_ms:
        lines = [
            "| function | import ms | top 3 heaviest imports (ms, with what each pulled in) |",
            "| --- | ---: | --- |",
        ]
        for result in results:
            heaviest = ", ".join(f"{package} {ms:.0f}" for package, ms in result.heaviest)
            lines.append(f"| {result.name} | {result.median_ms:.0f} | {heaviest} |")
        return "\n".join(lines)
    lines = [
        "| function | import ms | init ms | first call ms | cold start ms | warm call ms "
        "| top 3 heaviest imports (ms) | imported during init + first call (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for result in results:
        heaviest = ", ".join(f"{package} {ms:.0f}" for package, ms in result.heaviest)
        lazy_total = result.lazy_ms["init"] + result.lazy_ms["first"]
        packages = ", ".join(f"{package} {ms:.0f}" for package, ms in result.lazy_heaviest if ms >= 0.5)
        lazy = "none" if lazy_total < 0.5 else f"{lazy_total:.0f}" + (f" ({packages})" if packages else "")
        phases = result.phases_ms
        lines.append(
            f"| {result.name} | {result.median_ms:.0f} | {phases['init']:.0f} | {phases['first']:.0f} "
            f"| {result.cold_start_ms:.0f} | {phases['warm']:.1f} | {heaviest} | {lazy} |"
        )
    return "\n".join(lines)


def _held(counted: dict[str, int] | None) -> str:
    if not counted:
        return "-"
    total, pool = counted["total"], counted["pool"]
    return f"{total} ({pool} pool, {total - pool} monitoring)" if total else "0"


def connections_report(results: list[Result]) -> tuple[str, bool]:
    """The connections each function's container held (functions that held the same, in one row),
    what the client's settings predict, and the formula for a replica set; and whether every
    container held at most what the settings predict."""
    from wallet_lambda.runtime import CLIENT_SETTINGS, MONITOR_CONNECTIONS, connections_per_container

    on_primary, on_secondary = connections_per_container()
    pool, mode = CLIENT_SETTINGS["maxPoolSize"], CLIENT_SETTINGS["serverMonitoringMode"]
    monitors = MONITOR_CONNECTIONS[mode]
    rows: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for result in results:
        rows[tuple(_held(result.connections.get(moment)) for moment in CONNECTION_MOMENTS)].append(result.name)
    lines = [
        "Connections one container holds, as the server's currentOp lists them (the container's appName, "
        "asked by a separate client); pooled ones by the client's own pool events, the rest are its monitors:",
        "",
        "| functions | " + " | ".join(CONNECTION_MOMENTS.values()) + " |",
        "| --- |" + " ---: |" * len(CONNECTION_MOMENTS),
    ]
    for counts, names in rows.items():
        label = f"all {len(names)}" if len(rows) == 1 and len(names) > 1 else ", ".join(names)
        lines.append(f"| {label} | " + " | ".join(counts) + " |")
    over = [
        result.name
        for result in results
        if any(counted["total"] > on_primary for counted in result.connections.values())
    ]
    lines += [
        "",
        f"The client's settings (wallet_lambda.runtime.CLIENT_SETTINGS): maxPoolSize {pool}, "
        f'serverMonitoringMode "{mode}" ({monitors} monitoring connection{"s" * (monitors > 1)} per server): '
        f"at most {on_primary} per container on the primary (or a single server), {on_secondary} on each secondary.",
        "C warm containers on an N-node replica set hold at most (every read and write goes to the primary)",
        f"  on the primary:                 C x ({pool} pool + {monitors} monitoring) = {on_primary} x C",
        f"  on each of the N-1 secondaries: C x {monitors} monitoring = {on_secondary} x C",
        "and C is at most the functions' reserved concurrency, summed (template.yaml's Capacity parameters).",
    ]
    if over:
        lines.append(f"MORE THAN THE SETTINGS PREDICT: {', '.join(over)}")
    return "\n".join(lines), not over


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.importtime", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per function (default 5)")
    parser.add_argument("--function", action="append", help="only this function (repeatable)")
    parser.add_argument(
        "--import-only", action="store_true", help="only import each handler (no database, no invocation)"
    )
    parser.add_argument(
        "--no-lambda-env",
        dest="lambda_env",
        action="store_false",
        help="no Lambda variables (Tracer disabled, X-Ray's centralized sampler): a plain local process",
    )
    parser.add_argument(
        "--sam-build",
        action="store_true",
        help="import the functions and the layer as `make sam-build` left them in .aws-sam/build, writing no bytecode",
    )
    args = parser.parse_args(argv)

    layout = Layout(sam_build=args.sam_build)
    names = args.function or sorted(path.parent.name for path in FUNCTIONS.glob("*/app.py"))
    started = datetime.now(UTC)
    with nullcontext() if args.import_only else database_server() as database:
        results = [
            measure(name, repeat=args.repeat, lambda_env=args.lambda_env, layout=layout, database=database)
            for name in names
        ]
    where = "" if args.import_only else (", MONGODB_URI" if os.environ.get("MONGODB_URI") else ", embedded database")
    print(
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {machine()}, Python {platform.python_version()}; "
        f"median of {args.repeat} fresh processes per function, "
        f"{'Lambda environment (tracing on)' if args.lambda_env else 'plain local process'}, "
        f"{'.aws-sam/build as shipped, no bytecode written' if args.sam_build else 'sources with bytecode cached'}"
        f"{where}.\n"
    )
    print(table(results))
    if args.import_only:
        return 0
    report, as_predicted = connections_report(results)
    print(f"\n{report}")
    return 0 if as_predicted else 1


if __name__ == "__main__":
    sys.exit(main())
