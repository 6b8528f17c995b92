"""The arithmetic and bookkeeping of `make load` (benchmarks/http_load.py); no server, no timing."""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from types import SimpleNamespace

import pytest

from benchmarks import load_answers
from benchmarks.http_load import (
    MIX,
    NEEDS_HOLD,
    OPERATIONS,
    Client,
    OperationStats,
    RunResult,
    Settings,
    Wallet,
    Worker,
    classify,
    parse_args,
    percentile,
    rows,
    sweep_table,
    table,
    thread_counts,
)
from benchmarks.load_answers import AnswerTotals
from devtools.container_aids import DatabaseAnswers


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


def test_the_threads_sweep_is_parsed_and_includes_the_main_run():
    assert thread_counts("1,2,4,8") == (1, 2, 4, 8)
    assert thread_counts(" 8, 1,2,2 ") == (1, 2, 8)
    assert thread_counts("") == ()
    for wrong in ("0", "a,b", "1,-2", "2.5"):
        with pytest.raises(ValueError, match="positive thread counts"):
            thread_counts(wrong)
    settings = Settings(30, 8, 16, 1, None, (1, 2, 4))
    assert settings.thread_counts() == [1, 2, 4, 8]  # --concurrency runs too, for the per-route table
    assert Settings(30, 8, 16, 1, None).thread_counts() == [8]
    assert parse_args(["--threads-sweep", "1,2,4,8"]).threads_sweep == (1, 2, 4, 8)
    with pytest.raises(SystemExit):
        parse_args(["--threads-sweep", "1,x"])


def _event(name: str, reply: dict | None = None, failure: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(command_name=name, reply=reply or {"ok": 1}, failure=failure)


def test_a_containers_counts_reach_the_load_run(tmp_path):
    """The contract between devtools/container_aids.py, which writes, and benchmarks/load_answers.py, which sums."""
    answers = DatabaseAnswers(tmp_path, "Deposit")
    for _ in range(3):
        answers.started(_event("commitTransaction"))
    answers.started(_event("findAndModify"))
    answers.failed(_event("insert", failure={"code": 112, "codeName": "WriteConflict", "errmsg": "conflict"}))
    answers.failed(_event("commitTransaction", failure={"code": 251, "codeName": "NoSuchTransaction"}))
    answers.failed(_event("find", failure={"errmsg": "connection closed", "errtype": "AutoReconnect"}))
    answers.succeeded(_event("insert", reply={"ok": 1, "writeErrors": [{"index": 0, "code": 11000}]}))
    answers.write()
    written = json.loads(answers.path.read_text())
    assert written["commits"] == 3
    assert written["failed"] == {
        "112 WriteConflict": 1,
        "251 NoSuchTransaction": 1,
        "no code (network error)": 1,
        "11000": 1,
    }
    other = DatabaseAnswers(tmp_path, "Transfer")
    other.path = tmp_path / "Transfer-2.json"  # another container process
    other.started(_event("commitTransaction"))
    other.failed(_event("findAndModify", failure={"code": 112, "codeName": "WriteConflict"}))
    other.write()
    (tmp_path / "Withdraw-3.partial").write_text("{half")  # a write under way is not read
    total = load_answers.read(tmp_path)
    assert (total.commits, total.write_conflicts, total.no_such_transaction) == (4, 2, 1)
    assert total.others == Counter({"no code (network error)": 1, "11000": 1})
    assert total.conflicts_by_function == Counter({"Deposit": 1, "Transfer": 1})
    assert "write conflicts (112): 2 (Deposit 1, Transfer 1);" in load_answers.describe(total)


def test_a_runs_answers_are_the_difference_of_two_readings():
    before = AnswerTotals(10, Counter({"112 WriteConflict": 2, "11000 DuplicateKey": 1}), Counter({"Transfer": 2}))
    after = AnswerTotals(
        25,
        Counter({"112 WriteConflict": 5, "11000 DuplicateKey": 1, "251 NoSuchTransaction": 1}),
        Counter({"Transfer": 3, "Deposit": 2}),
    )
    run = after - before
    assert (run.commits, run.write_conflicts, run.no_such_transaction) == (15, 3, 1)
    assert run.others == Counter()  # zeros dropped
    assert run.conflicts_by_function == Counter({"Deposit": 2, "Transfer": 1})
    assert "15 commits; write conflicts (112): 3 (Deposit 2, Transfer 1); NoSuchTransaction (251): 1" in (
        load_answers.describe(run)
    )
    assert "not available with BASE_URL" in load_answers.describe(None)


def test_the_sweep_table_has_a_row_per_run():
    stats = OperationStats()
    stats.add(0.010, 201, None)
    stats.add(0.030, 500, None)
    answers = AnswerTotals(7, Counter({"112 WriteConflict": 2, "50 X": 1}), Counter({"Transfer": 2}))
    counted = RunResult(2, 1.0, {"deposit": stats}, 2, answers)
    external = RunResult(1, 2.0, {"deposit": stats}, 2, None)
    rendered = sweep_table([counted, external])
    lines = rendered.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| 1 | 2 | 1.0 |")  # threads, requests, req/s
    assert lines[2].endswith("| 1 | n/a | n/a | n/a | n/a | n/a |")  # failed; no counts with BASE_URL
    assert lines[3].startswith("| 2 | 2 | 2.0 |")
    assert lines[3].endswith("| 1 | 7 | 2 | Transfer 2 | 0 | 50 X: 1 |")
