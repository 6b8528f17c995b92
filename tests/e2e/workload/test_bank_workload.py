"""The bank workload (tests/e2e/workload/bank.py) against make run's server: plain, and through
everything the database and Lambda can do to it at once: failpoint faults all along (connections
dropped before writes, reads and commits; commits applied whose answer is lost; write conflicts;
slow commits), functions killed in the middle of their transactions (their transactions left open
until the database's lifetime ends them), one 5 s step-down of the primary and one kill -9 of the
database with a restart. No request waits longer than MAX_REQUEST_SECONDS, whatever the fault.

Bounded for make test; `make soak` runs the same tests bigger (WORKLOAD_* variables).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

from bson import ObjectId

from tests.e2e.workload.bank import SLOW_REQUEST_SECONDS, Workload, WorkloadSize
from tests.e2e.workload.chaos import KINDS, FaultDriver
from tests.e2e.workload.delivered_events import assert_events_replay_the_ledger
from wallet_service.ledger.limits import TRANSACTION_LIFETIME_SECONDS

STEP_DOWN_SECONDS = 5
NETWORK_ERROR = "no code (network error)"  # devtools/container_aids.py's label
DOWN_AFTER_KILL_SECONDS = 2
# The bound on one request, faults included: a wallet held by a killed function's open
# transaction waits at most the 10 s transaction lifetime, never mongod's default minute.
MAX_REQUEST_SECONDS = 15
KILLS_UNTIL = 0.8  # share of the run's operations after which no function is killed any more


def size() -> WorkloadSize:
    return WorkloadSize.from_environment(owners=4, clients=6, operations_per_client=40)


def report(capsys, title: str, workload: Workload, extra: str = "") -> None:
    with capsys.disabled():
        print(f"\n{title} (seed {workload.seed}, {workload.size}):\n{workload.figures.table()}{extra}")


def assert_it_did_something(workload: Workload) -> None:
    """The run exercised what it claims to: money moved every way, holds were raised and captured
    in parts, holds closed every way, and expiries both released and captured."""
    outcomes = {(operation, outcome) for operation, outcome in workload.figures.outcomes}
    for operation, status in [
        ("deposit", "201"),
        ("withdraw", "201"),
        ("transfer", "201"),
        ("hold", "201"),
        ("raise", "201"),
        ("capture part", "200"),
    ]:
        assert (operation, status) in outcomes, (operation, sorted(outcomes))
    assert ("capture", "200") in outcomes or ("release", "200") in outcomes, sorted(outcomes)
    holds = {"kind": "reservation", "_id": {"$in": [ObjectId(hold) for hold in workload.holds]}}
    statuses = workload.database["ledger"].distinct("status", holds)
    assert {"EXPIRED", "RELEASED"} <= set(statuses), statuses
    for on_expiry in ("release", "capture"):
        expired = workload.database["ledger"].count_documents({**holds, "status": "EXPIRED", "onExpiry": on_expiry})
        assert expired > 0, f"no hold with onExpiry {on_expiry} expired"


def replay_events(deployment, workload: Workload) -> int:
    """The bus's events (make run's events file) replay to exactly the final balances."""
    wallet_ids = [wallet.id for wallet in workload.wallets]
    return assert_events_replay_the_ledger(deployment.database, deployment.events, wallet_ids)


def wait_for(workload: Workload, running: threading.Thread, share: float) -> None:
    """Until the clients have done `share` of their operations (the workload still running)."""
    while workload.progress() < share:
        assert running.is_alive(), f"the workload ended before {share:.0%} of it was done"
        time.sleep(0.05)


def slow_requests_by_cause(
    workload: Workload, windows: dict[str, list[tuple[float, float]]], otherwise: str = "failpoints only"
) -> str:
    """The requests over SLOW_REQUEST_SECONDS, each counted under the first of `windows` (seconds
    since the run started) it overlaps, else under `otherwise`."""
    causes: Counter[str] = Counter()
    for began, seconds in workload.figures.slow_requests:
        overlapped = (
            cause
            for cause, spans in windows.items()
            if any(began < end and began + seconds > start for start, end in spans)
        )
        causes[next(overlapped, otherwise)] += 1
    counted = ", ".join(f"{cause} {count}" for cause, count in causes.most_common()) or "none"
    return f"requests over {SLOW_REQUEST_SECONDS:.0f} s: {len(workload.figures.slow_requests)} ({counted})"


def test_bank_workload(deployment, capsys):
    workload = Workload(deployment.server, deployment.database, size())
    workload.run()
    workload.check()
    delivered = replay_events(deployment, workload)
    slow = slow_requests_by_cause(workload, {}, otherwise="no fault")
    report(capsys, "bank workload", workload, f"\nevents delivered and replayed: {delivered}\n{slow}")
    assert_it_did_something(workload)
    assert max(workload.figures.request_seconds) <= MAX_REQUEST_SECONDS, workload.figures.latency()


def test_bank_workload_through_faults_a_step_down_and_a_crash(deployment, capsys):
    workload = Workload(deployment.server, deployment.database, size())
    database = deployment.database_server
    running = threading.Thread(target=workload.run, name="workload")
    answers_before = deployment.database_answers()
    events = []
    faults = FaultDriver(
        deployment.failpoints,
        deployment.kill_orders,
        seed=workload.seed,
        kills_while=lambda: workload.progress() < KILLS_UNTIL,
        clock=workload.elapsed,
    )
    with faults:
        running.start()
        wait_for(workload, running, 0.15)
        faults.pause()
        database.step_down(STEP_DOWN_SECONDS)
        stepped_down = workload.elapsed()
        events.append(f"step-down of {STEP_DOWN_SECONDS} s at {stepped_down:.1f} s")
        time.sleep(STEP_DOWN_SECONDS + 1)
        faults.resume()
        wait_for(workload, running, 0.5)
        faults.pause()
        database.kill()  # main thread: the restarted server lives as long as the test process
        crashed = workload.elapsed()
        events.append(f"{'kill -9' if database.crashes else 'network cut'} at {crashed:.1f} s")
        time.sleep(DOWN_AFTER_KILL_SECONDS)
        database.start()
        restarted = workload.elapsed()
        events.append(f"restarted at {restarted:.1f} s")
        faults.resume()
        running.join(timeout=900)
    assert not running.is_alive(), "the workload did not finish"
    workload.raise_failures()
    workload.check()  # nothing lost, nothing applied twice, every hold closed once
    events.append(f"events delivered and replayed: {replay_events(deployment, workload)}")
    answers = deployment.database_answers() - answers_before
    armed = ", ".join(f"{kind} {count}" for kind, count in sorted(faults.armed.items()))
    received = ", ".join(f"{label} {count}" for label, count in sorted(answers.failed.items()))
    windows = {  # when each of these could hold a request up
        "the step-down": [(stepped_down, stepped_down + STEP_DOWN_SECONDS + 1)],
        "the crash": [(crashed, restarted + 1)],
        "a killed function's open transaction": [
            (ordered, ordered + TRANSACTION_LIFETIME_SECONDS + 1) for ordered in faults.kills_ordered_at
        ],
    }
    extra = (
        f"\n{'; '.join(events)}\nfaults armed: {armed}; functions killed in a transaction: {faults.kills_done}"
        f"\nfailed answers the service received: {received}\n{slow_requests_by_cause(workload, windows)}"
    )
    report(capsys, "bank workload through faults, a step-down and a crash", workload, extra)
    assert set(faults.armed) == {kind.name for kind in KINDS}, faults.armed
    # The faults reached the service: dropped connections, lost commit answers, conflicts.
    assert answers.failed[NETWORK_ERROR] > 0, answers
    assert answers.with_code(64) > 0, answers
    assert answers.write_conflicts > 0, answers
    assert faults.kills_done > 0, faults.armed
    assert workload.figures.retries["500 function failed"] > 0, workload.figures.retries
    assert_it_did_something(workload)
    assert max(workload.figures.request_seconds) <= MAX_REQUEST_SECONDS, workload.figures.latency()
