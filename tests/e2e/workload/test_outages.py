"""The database going away under make run's server, stepping down, and the expiry job killed half-way.

- The database stopped (SIGTERM) and started again on the same path: meanwhile every request gets a
  503 problem with Retry-After, in bounded time, and nothing is written; afterwards the same
  service answers (no restart of it), and the refused money requests, retried with their keys,
  happen once each. The bank workload that runs through such an outage ends with every invariant.
- A 5 s step-down of the primary: requests meanwhile succeed within the service's retry budget or
  get 503 with Retry-After, never a 500, and each happens at most once.
- An expiry run killed (SIGKILL) between batches and run again expires every hold exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from bson import ObjectId

from devtools.local_auth import issue_token
from devtools.paths import EVENTS, ROOT
from tests.e2e.workload.bank import Workload, WorkloadSize
from tests.ledger_checks import assert_ledger_consistent, snapshot
from wallet_service import Request
from wallet_service.storage.documents import ENTRY, LEDGER, RESERVATION

# Longer than a request's database budget (5 s), so that requests in the outage fail and are retried.
OUTAGE_SECONDS = 8
# A request that cannot reach the database answers well within the Lambda's timeout (10 s): its
# database time is capped at 5 s (wallet_lambda.runtime.REQUEST_DATABASE_SECONDS).
ANSWER_WITHIN_SECONDS = 8
STEP_DOWN_SECONDS = 5


def test_requests_during_an_outage_get_503_change_nothing_and_succeed_once_on_retry(deployment):
    server, database_server = deployment.server, deployment.database_server
    owner = f"outage-{uuid.uuid4().hex[:8]}"
    token, admin = issue_token(owner), issue_token("ops", ("wallet:admin",))
    opening = {"currency": "USD", "ownerId": owner, "openingBalance": 1_000}
    wallet_id = server.json("POST", "/v1/wallets", opening, token=admin)[2]["wallet"]["id"]
    hold = server.json("POST", f"/v1/wallets/{wallet_id}/reservations", {"amount": 100}, token=token, key="hold")
    hold_id = hold[2]["reservation"]["id"]
    calls = [
        ("POST", f"/v1/wallets/{wallet_id}/deposits", {"amount": 5}),
        ("POST", f"/v1/wallets/{wallet_id}/withdrawals", {"amount": 5}),
        ("POST", f"/v1/wallets/{wallet_id}/reservations", {"amount": 5}),
        ("POST", f"/v1/reservations/{hold_id}/capture", {"amount": 40}),
        ("GET", f"/v1/wallets/{wallet_id}", None),
        ("GET", f"/v1/wallets/{wallet_id}/transactions", None),
        ("GET", "/health", None),
    ]
    stored = deployment.database
    deployment.settled()  # the hold's events, published after its answer
    before = snapshot(stored)
    database_server.shut_down()
    try:
        for index, (method, path, body) in enumerate(calls):
            started = time.monotonic()
            status, headers, problem = server.json(method, path, body, token=token, key=f"outage-{index}")
            seconds = time.monotonic() - started
            assert status == 503, (path, status, problem)
            assert headers["Content-Type"] == "application/problem+json", path
            assert int(headers["Retry-After"]) >= 1, path
            assert problem["code"] == "database_unavailable", (path, problem)
            assert seconds < ANSWER_WITHIN_SECONDS, (path, seconds)
    finally:
        database_server.start()
    assert snapshot(stored) == before  # nothing was written while the database was away
    # The same server recovers by itself once the database is back.
    deadline = time.monotonic() + 30
    while server.call("GET", "/health", timeout=10)[0] != 200:
        assert time.monotonic() < deadline, "the service did not recover after the database returned"
        time.sleep(0.5)
    # The refused money calls, retried with their keys, happen once each.
    for attempt in ("retry", "replay"):
        for index, (method, path, body) in enumerate(calls[:4]):
            status, headers, _ = server.json(method, path, body, token=token, key=f"outage-{index}")
            assert status in (200, 201), (attempt, path, status)
            assert headers["Idempotent-Replayed"] == ("true" if attempt == "replay" else "false"), (attempt, path)
    shown = server.json("GET", f"/v1/wallets/{wallet_id}", token=token)[2]
    assert (shown["balance"], shown["held"]) == (1_000 + 5 - 5 - 40, 5), shown
    assert_ledger_consistent(deployment.database)


def test_the_bank_workload_rides_through_an_outage(deployment, capsys):
    workload = Workload(
        deployment.server, deployment.database, WorkloadSize(owners=3, clients=4, operations_per_client=60)
    )
    running = threading.Thread(target=workload.run)
    running.start()
    time.sleep(2)  # the workload is under way
    assert running.is_alive()
    deployment.database_server.shut_down()  # the main thread stops and starts it
    time.sleep(OUTAGE_SECONDS)
    deployment.database_server.start()
    running.join(timeout=600)
    assert not running.is_alive()
    workload.check()  # nothing half-written, nothing applied twice, every hold closed once
    with capsys.disabled():
        print(f"\nbank workload through a {OUTAGE_SECONDS} s database outage:\n{workload.figures.table()}")
    assert any(cause.startswith("503") for cause in workload.figures.retries), workload.figures.retries


def test_requests_during_a_step_down_succeed_in_time_or_get_503_and_apply_at_most_once(deployment):
    server, database_server = deployment.server, deployment.database_server
    owner = f"step-down-{uuid.uuid4().hex[:8]}"
    token, admin = issue_token(owner), issue_token("ops", ("wallet:admin",))
    opening = {"currency": "USD", "ownerId": owner, "openingBalance": 1_000}
    wallet_id = server.json("POST", "/v1/wallets", opening, token=admin)[2]["wallet"]["id"]
    database_server.step_down(STEP_DOWN_SECONDS)
    stepped_down = time.monotonic()
    answers = []
    index = 0
    while time.monotonic() - stepped_down < STEP_DOWN_SECONDS + 2:  # through it, and past its end
        status, headers, body = server.json(
            "POST", f"/v1/wallets/{wallet_id}/deposits", {"amount": 1}, token=token, key=f"step-down-{index}"
        )
        assert status in (201, 503), (status, body)
        if status == 503:
            assert body["code"] == "database_unavailable", body
            assert int(headers["Retry-After"]) >= 1, headers
        answers.append(status)
        index += 1
    assert len(answers) >= 2, answers  # some were sent while it was a secondary
    assert answers[-1] == 201, "the service did not recover after the step-down"
    # Every request, retried with its key, is applied exactly once.
    for number in range(index):
        status, _, _ = server.json(
            "POST", f"/v1/wallets/{wallet_id}/deposits", {"amount": 1}, token=token, key=f"step-down-{number}"
        )
        assert status == 201
    shown = server.json("GET", f"/v1/wallets/{wallet_id}", token=token)[2]
    assert shown["balance"] == 1_000 + index, (shown, index)
    assert_ledger_consistent(deployment.database)


def test_an_expiry_run_killed_half_way_and_run_again_expires_each_hold_once(service, database, mongo_uri, tmp_path):
    owners = [f"killed-expiry-{number}" for number in range(10)]
    wallets = [service.create_wallet(owner, "USD", opening_balance=100_000).wallet.id for owner in owners]
    holds = [
        service.create_reservation(
            wallet, 10 + number, Request(idempotency_key=f"h-{wallet}-{number}"), ttl_seconds=1
        ).reservation.id
        for wallet in wallets
        for number in range(30)
    ]
    time.sleep(1.2)  # every hold is due
    environment = {
        **os.environ,
        "MONGODB_URI": mongo_uri,
        "MONGODB_DATABASE": database.name,
        "EXPIRY_BATCH_SIZE": "5",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    command = [sys.executable, "-m", "devtools.local_api", "invoke", "ExpireReservations"]
    event = str(EVENTS / "expire_reservations.json")
    first = subprocess.Popen(
        [*command, event], cwd=ROOT, env=environment, start_new_session=True, stdout=subprocess.DEVNULL
    )
    expired = {"kind": RESERVATION, "status": "EXPIRED"}
    deadline = time.monotonic() + 120
    while database[LEDGER].count_documents(expired) < 20:
        assert first.poll() is None, "the first run ended before it could be killed"
        assert time.monotonic() < deadline, "the first run expired nothing"
        time.sleep(0.01)
    os.killpg(first.pid, signal.SIGKILL)  # the run and its function's container, between or inside batches
    first.wait()
    expired_by_the_first = database[LEDGER].count_documents(expired)
    assert 20 <= expired_by_the_first < len(holds), expired_by_the_first
    assert_ledger_consistent(database)  # whatever batch was in flight committed whole or not at all
    # A batch killed inside its transaction leaves that transaction open on the server, holding its
    # holds and wallets until the server's transaction lifetime ends (60 s on mongod and here), after
    # which a later scheduled run expires them. End the dead process's sessions now, as that limit would.
    database.client.admin.command("killAllSessions", [])

    second = subprocess.run(
        [*command, event], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert database[LEDGER].count_documents({"kind": RESERVATION, "status": "HELD"}) == 0
    for hold in holds:
        entries = list(database[LEDGER].find({"kind": ENTRY, "reservationId": ObjectId(hold)}))
        assert sorted(entry["type"] for entry in entries) == ["EXPIRE", "HOLD"], hold
    for wallet in wallets:
        assert (service.get_wallet(wallet).held, service.get_wallet(wallet).balance) == (0, 100_000)
    assert_ledger_consistent(database)
    # And a third run finds nothing left to do.
    assert service.expire_reservations(now=datetime.now(UTC) + timedelta(seconds=1)).expired == 0
