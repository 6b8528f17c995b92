"""The deployment the workload suites run against: `make run`'s server, as a person starts it, on a
database the tests control (tests/e2e/workload/database_control.py): stopped, killed, stepped down,
and faulted through its failCommand failpoint (devtools/failpoints.py), confined to the service's
connections.

The tests read the same database directly (`Deployment.database`) to check what the API says.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from benchmarks.load_answers import AnswerTotals
from benchmarks.load_answers import read as read_answers
from devtools.failpoints import FailPoints
from devtools.local_server import Server, running_server
from tests.conftest import SERVICE_APP_NAME
from tests.e2e.workload.database_control import ControlledDatabase, controlled_database

FUNCTIONS_WARM = "functions warm:"  # make run's line once every function's container has started


@dataclass
class Deployment:
    server: Server
    database: Database
    failpoints: FailPoints
    database_server: ControlledDatabase
    answers: Path  # what the database answered the service's containers (devtools/container_aids.py)
    events: Path  # where make run's bus delivers the events
    kill_orders: Path  # make run's FUNCTION_KILLS_DIR (devtools/container_aids.py)

    def database_answers(self) -> AnswerTotals:
        return read_answers(self.answers)

    def settled(self, seconds: float = 10) -> None:
        """Until the outbox is empty: the functions publish an answer's events once it has left, and
        the publisher (every second here) what is older than 5 s. Before a snapshot that must not
        see an earlier request's events being marked sent."""
        deadline = time.monotonic() + seconds
        while self.database["ledger"].count_documents({"kind": "event", "sent": False}):
            assert time.monotonic() < deadline, "events still unsent: the after-answer publishing did not run"
            time.sleep(0.02)


@pytest.fixture(scope="package")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    """make run's server (expiry and the event publisher every second) on a database of its own, its
    events in a file of its own; failpoints off before and after. One for every module here: each
    test makes owners of its own, and leaves the database up and no failpoint armed (starting and
    warming a server took 45 s under make test's load)."""
    folder = tmp_path_factory.mktemp("deployment")
    database_server = controlled_database(folder)
    name = f"wallet_http_{uuid.uuid4().hex[:12]}"
    answers = folder / "answers"
    answers.mkdir()
    kill_orders = folder / "kill-orders"
    kill_orders.mkdir()
    environment = {
        "MONGODB_URI": database_server.uri,
        "MONGODB_DATABASE": name,
        "EXPIRY_INTERVAL_SECONDS": "1",
        "PUBLISH_INTERVAL_SECONDS": "1",
        "EVENTS_FILE": str(folder / "events.jsonl"),
        "DATABASE_ANSWERS_DIR": str(answers),
        "FUNCTION_KILLS_DIR": str(kill_orders),
        "LOCAL_WARM": "1",
    }
    client = MongoClient(database_server.check_uri, appname="wallet-tests", serverSelectionTimeoutMS=10_000)
    failpoints = FailPoints(client, app_name=SERVICE_APP_NAME)
    try:
        failpoints.off()
        with running_server(folder / "server.log", environment) as server:
            server.wait_for_log(FUNCTIONS_WARM)  # latencies measured warm, as Lambda's warm environments
            yield Deployment(
                server, client[name], failpoints, database_server, answers, folder / "events.jsonl", kill_orders
            )
    finally:
        failpoints.off()
        client.drop_database(name)
        client.close()
        database_server.close()
