"""The bank workload (tests/workload/bank.py) against make run's server: plain, and with the
database's connections dropped before commands and after commits (the unknown-commit case).

Bounded for make test; `make soak` runs the same tests bigger (WORKLOAD_* variables).
"""

from __future__ import annotations

from tests.workload.bank import Workload, WorkloadSize

FAULTS = {"dropBeforeCommandProbability": 0.02, "dropAfterCommitProbability": 0.1}


def size() -> WorkloadSize:
    return WorkloadSize.from_environment(owners=4, clients=6, operations_per_client=40)


def report(capsys, title: str, workload: Workload, extra: str = "") -> None:
    with capsys.disabled():
        print(f"\n{title} (seed {workload.seed}, {workload.size}):\n{workload.figures.table()}{extra}")


def assert_it_did_something(workload: Workload) -> None:
    """The run exercised what it claims to: money moved every way, holds closed every way."""
    outcomes = {(operation, outcome) for operation, outcome in workload.figures.outcomes}
    for operation, status in [("deposit", "201"), ("withdraw", "201"), ("transfer", "201"), ("hold", "201")]:
        assert (operation, status) in outcomes, (operation, sorted(outcomes))
    assert ("capture", "200") in outcomes or ("release", "200") in outcomes, sorted(outcomes)
    statuses = workload.database["ledger"].distinct("status", {"kind": "reservation"})
    assert {"EXPIRED", "RELEASED"} <= set(statuses), statuses


def test_bank_workload(deployment, capsys):
    workload = Workload(deployment.server, deployment.database, size())
    workload.run()
    workload.check()
    report(capsys, "bank workload", workload)
    assert_it_did_something(workload)


def test_bank_workload_with_dropped_connections_and_unknown_commits(deployment, capsys):
    before = deployment.faults.report()
    deployment.faults.configure(FAULTS)
    workload = Workload(deployment.server, deployment.database, size())
    try:
        workload.run()
    finally:
        deployment.faults.reset()
    after = deployment.faults.report()
    dropped_before = after["droppedBeforeCommand"] - before["droppedBeforeCommand"]
    dropped_after_commit = after["droppedAfterCommit"] - before["droppedAfterCommit"]
    workload.check()
    report(
        capsys,
        "bank workload with faults",
        workload,
        f"\nfaults: {dropped_before} connections dropped before a command, "
        f"{dropped_after_commit} commit replies dropped (outcome unknown to the service)",
    )
    assert dropped_before > 0
    assert dropped_after_commit > 0
    assert_it_did_something(workload)
