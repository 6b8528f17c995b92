"""The arithmetic and bookkeeping of `make load` (benchmarks/http_load.py); no server, no timing."""

from __future__ import annotations

import random
import statistics

import pytest

from benchmarks.http_load import (
    MIX,
    NEEDS_HOLD,
    OPERATIONS,
    Client,
    OperationStats,
    Wallet,
    Worker,
    classify,
    percentile,
    rows,
    table,
)


def test_percentile_interpolates_between_ranks():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([float(value) for value in range(1, 101)], 0.99) == pytest.approx(99.01)
    assert percentile([1.0, 2.0], 0.0) == 1.0
    assert percentile([1.0, 2.0], 1.0) == 2.0


def test_percentile_matches_the_standard_library():
    values = sorted(random.Random(7).expovariate(1 / 20) for _ in range(997))
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for index in (50, 95, 99):
        assert percentile(values, index / 100) == pytest.approx(cuts[index - 1])


def test_percentile_edges():
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile([1.0], 95)


def test_business_answers_are_not_failures():
    assert classify(201, None) == "ok"
    assert classify(409, "insufficient_funds") == "business"
    assert classify(409, "invalid_state") == "business"
    assert classify(409, "conflict") == "failed"  # the service gave up under contention
    assert classify(404, "not_found") == "failed"  # the mix only ever asks for what it created
    assert classify(503, "database_unavailable") == "failed"
    assert classify(None, None) == "failed"  # no answer at all


def test_rows_count_each_operation_and_the_total():
    deposit, health = OperationStats(), OperationStats()
    for latency in (0.010, 0.020, 0.030):
        deposit.add(latency, 201, None)
    deposit.add(0.040, 409, "insufficient_funds")
    health.add(0.005, 503, "database_unavailable")
    health.add(1.0, None, None, "timeout")
    result = rows({"deposit": deposit, "health": health}, seconds=2.0)
    by_name = {row.operation: row for row in result}
    assert [row.operation for row in result] == [*OPERATIONS, "**total**"]
    assert (by_name["deposit"].requests, by_name["deposit"].ok, by_name["deposit"].business) == (4, 3, 1)
    assert by_name["deposit"].per_second == 2.0
    assert by_name["deposit"].p50_ms == pytest.approx(25.0)
    assert by_name["deposit"].answers == "409 insufficient_funds: 1"
    assert by_name["health"].answers == "503 database_unavailable: 1, no answer (timeout): 1"
    total = by_name["**total**"]
    assert (total.requests, total.ok, total.business, total.failed) == (6, 3, 1, 2)
    assert by_name["withdraw"].requests == 0
    rendered = table(result)
    assert "| withdraw | 0 | 0 | n/a |" in rendered
    assert rendered.count("\n") == len(result) + 1


def test_the_mix_never_sends_an_operation_it_cannot_prepare():
    wallets = [Wallet(f"w{index}", f"owner-{index}", f"token-{index}") for index in range(3)]
    worker = Worker(0, Client("http://127.0.0.1:1"), wallets[:2], wallets, "test", lambda *_: "token", seed=3)
    picked = {worker.pick() for _ in range(500)}
    assert not picked & NEEDS_HOLD  # no hold open yet: those become holds
    assert "get reservation" not in picked
    worker.holds.append((wallets[0], "r1", 1000))
    worker.seen_holds.append((wallets[0], "r1"))
    assert {worker.pick() for _ in range(2000)} == set(MIX)
    method, path, body, token, key, _ = worker.prepare("capture partial")
    assert (method, path, body, token) == ("POST", "/v1/reservations/r1/capture", {"amount": 500}, "token-0")
    assert key
    assert key.startswith("load-test-")
    method, path, body, _, _, _ = worker.prepare("transfer")
    assert body["fromWalletId"] in {"w0", "w1"}
    assert body["toWalletId"] != body["fromWalletId"]
    for operation in ("deposit", "withdraw", "hold", "open wallet"):
        assert worker.prepare(operation)[4], operation  # every money request carries an Idempotency-Key
