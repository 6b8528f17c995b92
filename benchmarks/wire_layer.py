"""What the wire layer in front of the embedded server costs per round trip.

Calls through the two paths alternate, so both see the same server state (the embedded
server slows down as its collections grow, which would otherwise favour whichever ran first).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack

from pymongo import MongoClient

from devtools.embedded_mongo import EmbeddedMongo
from wallet_core import WalletService

PINGS = 2000
DEPOSITS = 300
WARM_UP = 20


def measure(server: EmbeddedMongo) -> str:
    """A markdown table: median microseconds per ping and per deposit, directly and through the layer."""
    with ExitStack() as stack:
        clients = {}
        for path, uri in (("mongoeco directly", server.direct_uri), ("through the wire layer", server.uri)):
            clients[path] = MongoClient(uri, serverSelectionTimeoutMS=5000)
            stack.callback(clients[path].close)
        pings = _alternate(
            {path: (lambda ping=client.admin.command: ping("ping")) for path, client in clients.items()}, PINGS
        )
        deposits = _alternate({path: _deposit_call(client, stack) for path, client in clients.items()}, DEPOSITS)
    direct, layered = clients
    lines = [
        "| path | µs per round trip (ping, median) | µs per deposit (3 round trips, median) |",
        "| --- | ---: | ---: |",
        *(f"| {path} | {pings[path]:.0f} | {deposits[path]:.0f} |" for path in clients),
        f"| added by the layer | {pings[layered] - pings[direct]:.0f} | {deposits[layered] - deposits[direct]:.0f} |",
    ]
    return "\n".join(lines)


def _deposit_call(client: MongoClient, stack: ExitStack) -> Callable[[], object]:
    database = client[f"bench_layer_{uuid.uuid4().hex[:8]}"]
    stack.callback(client.drop_database, database.name)
    service = WalletService(database)
    service.ensure_indexes()
    wallet = service.create_wallet("bench", "USD").wallet.id
    keys = iter(range(10**9))
    return lambda: service.deposit(wallet, 1, idempotency_key=f"k{next(keys)}")


def _alternate(calls: dict[str, Callable[[], object]], count: int) -> dict[str, float]:
    """Median microseconds per call of each path, calling the paths in turn."""
    samples: dict[str, list[float]] = {path: [] for path in calls}
    for index in range(WARM_UP + count):
        for path, call in calls.items() if index % 2 else reversed(calls.items()):
            began = time.perf_counter()
            call()
            if index >= WARM_UP:
                samples[path].append(time.perf_counter() - began)
    return {path: statistics.median(values) * 1e6 for path, values in samples.items()}
