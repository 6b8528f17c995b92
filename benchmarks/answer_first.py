"""A deposit's HTTP latency with its events on, against the same deployment with no event sink.

Two `make run` servers on the run's database (one database of their own): one publishing to an
events file once each answer has left (as deployed: wallet_lambda.after_answer), one with
EVENTS_FILE=off (no bus: the events wait in the outbox). Each deposit goes to a wallet of the server's
own; the servers alternate request by request, so noise hits both alike. Reported: p50 and p99 of
each, their ratio, and that every event of the publishing server reached its file. Nothing here
checks a timing.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from devtools.local_auth import issue_token
from devtools.local_server import running_server

from .http_load import percentile

SERVERS = ("events", "no sink")
WARM_UP = 20  # deposits on each server before measuring: containers started, connections open


@dataclass(frozen=True, slots=True)
class HttpLatency:
    requests: int  # measured deposits per server
    p50_ms: dict[str, float]
    p99_ms: dict[str, float]
    events_delivered: int  # events of the measured deposits found in the publishing server's file
    events_seconds: float  # from the last answer until its event was in the file

    @property
    def p50_ratio(self) -> float:
        return self.p50_ms["events"] / self.p50_ms["no sink"]


def http_latency(uri: str, requests: int) -> HttpLatency:
    database = f"bench_http_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="wallet-bench-http-") as folder, ExitStack() as stack:
        events = Path(folder) / "events.jsonl"
        common = {"MONGODB_URI": uri, "MONGODB_DATABASE": database, "EXPIRY_INTERVAL_SECONDS": "3600"}
        servers = {
            "events": stack.enter_context(
                running_server(Path(folder) / "events.log", {**common, "EVENTS_FILE": str(events)})
            ),
            "no sink": stack.enter_context(
                running_server(Path(folder) / "no-sink.log", {**common, "EVENTS_FILE": "off"})
            ),
        }
        admin = issue_token("bench", ("wallet:admin",))
        owners = {name: f"http-{name.replace(' ', '-')}-{uuid.uuid4().hex[:6]}" for name in SERVERS}
        wallets = {name: _open(servers[name], owners[name], admin) for name in SERVERS}
        tokens = {name: issue_token(owners[name]) for name in SERVERS}
        seconds: dict[str, list[float]] = {name: [] for name in SERVERS}
        for number in range(WARM_UP + requests):
            for name in SERVERS if number % 2 else SERVERS[::-1]:
                began = time.perf_counter()
                status, _, answer = servers[name].json(
                    "POST",
                    f"/v1/wallets/{wallets[name]}/deposits",
                    {"amount": 1},
                    token=tokens[name],
                    key=f"http-{number}",
                )
                elapsed = time.perf_counter() - began
                if status != 201:
                    raise RuntimeError(f"a deposit on the {name} server answered {status}: {answer}")
                if number >= WARM_UP:
                    seconds[name].append(elapsed)
        answered = time.monotonic()
        expected = WARM_UP + requests + 1  # the opening's event, then one per deposit
        while _events_of(events, wallets["events"]) < expected and time.monotonic() - answered < 10:
            time.sleep(0.01)
        waited = time.monotonic() - answered
        delivered = _events_of(events, wallets["events"])
    ordered = {name: sorted(values) for name, values in seconds.items()}
    return HttpLatency(
        requests=requests,
        p50_ms={name: statistics.median(values) * 1000 for name, values in ordered.items()},
        p99_ms={name: percentile(values, 0.99) * 1000 for name, values in ordered.items()},
        events_delivered=delivered - 1 - WARM_UP,
        events_seconds=waited,
    )


def _open(server, owner: str, admin: str) -> str:
    status, _, opened = server.json("POST", "/v1/wallets", {"currency": "USD", "ownerId": owner}, token=admin)
    if status != 201:
        raise RuntimeError(f"opening a wallet answered {status}: {opened}")
    return opened["wallet"]["id"]


def _events_of(path: Path, wallet: str) -> int:
    if not path.exists():
        return 0
    ids = {
        line["detail"]["id"]
        for line in map(json.loads, path.read_text().splitlines())
        if line["detail"]["walletId"] == wallet
    }
    return len(ids)
