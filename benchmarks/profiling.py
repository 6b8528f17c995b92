"""Where one operation's time goes: the service and its same-commands floor under cProfile, side by side.

    python -m benchmarks profile deposit [--calls 400]

Against MONGODB_URI or an embedded SecantusDB started for the run. Each function's own time is put
in one area (waiting on the server, pymongo, bson, pydantic, our code, the standard library modules
our code calls), per call; then our own functions, costliest first. cProfile slows Python code
down a good deal more than it slows waiting, so the areas are for comparing, not absolute.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack

from bson import ObjectId
from pymongo import MongoClient

from devtools.embedded_mongo import EmbeddedMongo, external_uri
from wallet_service import WalletService

from . import replay
from .monitor import CommandRecorder
from .scenarios import OPERATIONS, prepare

WARM_UP = 10
OURS = ("/wallet_service/", "/wallet_lambda/")
# Standard library modules only our code calls on these paths (pymongo does not).
OUR_STANDARD_LIBRARY = ("json", "hashlib", "uuid", "sha256", "hexdigest", "dumps", "iterencode", "urandom")


def area(filename: str, function: str) -> str:
    """The area a function's own time is counted in."""
    if any(name in function for name in ("recv_into", "sendall", "select", "poll")):
        return "waiting on the server (socket send and receive)"
    if any(part in filename for part in OURS):
        return "our code (wallet_service)"
    if "pydantic" in filename or "pydantic" in function:
        return "pydantic (models, JSON)"
    if "/bson/" in filename or "_cbson" in function:
        return "bson (encoding, decoding)"
    if "/pymongo/" in filename or "_cmessage" in function:
        return "pymongo (driver)"
    if "/benchmarks/" in filename:
        return "benchmark harness"
    if any(name in filename or name in function for name in OUR_STANDARD_LIBRARY):
        return "standard library for our code (json, hashlib, uuid)"
    return "other (threading, time, builtins)"


def profile(run: Callable[[], None], calls: int) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        run()
    profiler.disable()
    return pstats.Stats(profiler)


def by_area(stats: pstats.Stats, calls: int) -> dict[str, float]:
    """Microseconds per call in each area."""
    areas: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        areas[area(filename, function)] += own * 1e6 / calls
    return areas


def ours(stats: pstats.Stats, calls: int, top: int = 12) -> list[tuple[str, float]]:
    functions = [
        (f"{filename.rsplit('/', 1)[-1]}:{function}", own * 1e6 / calls)
        for (filename, _, function), (_, _, own, _, _) in stats.stats.items()  # type: ignore[attr-defined]
        if any(part in filename for part in OURS)
    ]
    return sorted(functions, key=lambda item: -item[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks profile", description=__doc__.splitlines()[0])
    parser.add_argument("operation", choices=OPERATIONS)
    parser.add_argument("--calls", type=int, default=400)
    options = parser.parse_args(argv)
    calls = options.calls
    with ExitStack() as stack:
        uri = external_uri() or stack.enter_context(EmbeddedMongo()).uri
        recorder = CommandRecorder()
        client = stack.enter_context(MongoClient(uri, event_listeners=[recorder]))
        name = f"wallet_profile_{uuid.uuid4().hex[:8]}"
        stack.callback(client.drop_database, name)
        service = WalletService(client[name])
        service.ensure_indexes()
        scenario = prepare(service, options.operation, "profile", WARM_UP + 1 + calls, spare_holds=WARM_UP + calls)
        for _ in range(WARM_UP):
            scenario.call()
        recorder.capture()
        scenario.call()
        captured = replay.Replay(recorder.captured())
        targets = None
        if scenario.holds:
            targets = {ObjectId(scenario.holds[WARM_UP]): [ObjectId(hold) for hold in scenario.spare_holds]}
        replays = iter(captured.calls(WARM_UP + calls, targets))
        replay.run(client, [next(replays) for _ in range(WARM_UP)])
        service_stats = profile(scenario.call, calls)
        replay_stats = profile(lambda: replay.run(client, [next(replays)]), calls)
    service_areas, replay_areas = by_area(service_stats, calls), by_area(replay_stats, calls)
    print(f"# Profile of {options.operation}: {calls} calls of each path (cProfile, µs per call)\n")
    print("| area | service | same commands, bare pymongo | difference |\n| --- | ---: | ---: | ---: |")
    for name in sorted(service_areas.keys() | replay_areas.keys(), key=lambda key: -service_areas.get(key, 0)):
        mine, floor = service_areas.get(name, 0.0), replay_areas.get(name, 0.0)
        print(f"| {name} | {mine:,.0f} | {floor:,.0f} | {mine - floor:+,.0f} |")
    total, floor_total = sum(service_areas.values()), sum(replay_areas.values())
    print(f"| **total** | {total:,.0f} | {floor_total:,.0f} | {total - floor_total:+,.0f} |\n")
    print("Our own functions (own time, µs per call):\n")
    for function, micros in ours(service_stats, calls):
        print(f"- {function}: {micros:.1f}")
    return 0
