"""The embedded database (devtools/embedded_mongo.py): SecantusDB as a process of its own, and each
of its measured gaps from MongoDB, with how the project stays correct despite it.

These tests start servers of their own (they kill and step them down), so they run the same
whether or not MONGODB_URI names another deployment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import NotPrimaryError, OperationFailure, PyMongoError, ServerSelectionTimeoutError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from devtools import secantus_launcher
from devtools.embedded_mongo import DatabaseStartError, EmbeddedMongo, free_port
from devtools.failpoints import FailPoints, Fault
from devtools.paths import LAYER, ROOT
from tests.ledger_checks import assert_ledger_consistent
from wallet_service import Conflict, Request, WalletService
from wallet_service.ledger.limits import TRANSACTION_LIFETIME_SECONDS


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[EmbeddedMongo]:
    """One server for the tests that leave it running (each in its own database): a clean stop takes 2 s."""
    folder = tmp_path_factory.mktemp("shared")
    with EmbeddedMongo(storage_path=folder / "data", log_path=folder / "secantus.log") as running:
        yield running


@pytest.fixture
def own_server(tmp_path) -> Iterator[EmbeddedMongo]:
    """A server for one test that stops, restarts or kills it."""
    with EmbeddedMongo(storage_path=tmp_path / "data", log_path=tmp_path / "secantus.log") as running:
        yield running


def client_of(server: EmbeddedMongo, **options) -> MongoClient:
    return MongoClient(server.uri, **({"serverSelectionTimeoutMS": 10_000} | options))


def test_it_is_a_single_node_replica_set(server):
    with MongoClient(server.replica_set_uri, serverSelectionTimeoutMS=10_000) as client:
        hello = client.admin.command("hello")
        assert (hello["setName"], hello["isWritablePrimary"]) == ("secantus", True)
        assert client.topology_description.topology_type_name == "ReplicaSetWithPrimary"


def test_a_client_finds_it_again_after_a_clean_shutdown_and_a_restart(own_server):
    """Its monitors poll through a SIGTERM shutdown, during which it answers hello as a standalone (a
    replica-set client would drop it from its topology for good, which is why `uri` connects
    directly), and the same client answers once it is back."""
    with client_of(own_server, serverMonitoringMode="poll", heartbeatFrequencyMS=500) as client:
        client.again.things.insert_one({"n": 1})
        own_server.shut_down()
        time.sleep(1)  # checks find it gone
        own_server.start()
        assert client.again.things.count_documents({}) == 1


def test_a_restart_on_the_same_path_keeps_the_data(own_server):
    with client_of(own_server) as client:
        client.kept.things.insert_one({"_id": 1, "name": "kept"})
    port = own_server.port
    own_server.restart()
    assert own_server.port == port
    with client_of(own_server) as client:
        assert client.kept.things.find_one({"_id": 1}) == {"_id": 1, "name": "kept"}


def test_every_acknowledged_commit_survives_a_kill(own_server):
    """Gap 1: without --sync-on-commit the last commits before a kill -9 were lost. With it (always
    on here), every movement the service acknowledged is there after the crash and the restart."""
    with client_of(own_server) as client:
        service = WalletService(client.crash, time_budget=20.0)
        service.ensure_indexes()
        wallet = service.create_wallet("alice", "USD").wallet.id
        acknowledged = [service.deposit(wallet, 1, Request(idempotency_key=f"d{n}")).operation_id for n in range(40)]
    own_server.kill()
    own_server.start()
    with client_of(own_server) as client:
        service = WalletService(client.crash, time_budget=20.0)
        assert service.get_wallet(wallet).balance == 40
        stored = {record["_id"] for record in client.crash.ledger.find({"kind": "operation", "operation": "deposit"})}
        assert stored == set(acknowledged)
        assert_ledger_consistent(client.crash)


def test_failpoints_are_on(server):
    """Gap 2: the command-line server has failpoints off unless started with --enable-test-commands."""
    with client_of(server, appname="victim") as victim, client_of(server) as tests:
        failpoints = FailPoints(tests, app_name="victim")
        with failpoints.armed(Fault(("insert",), error_code=2)):
            with pytest.raises(OperationFailure) as refused:
                victim.points.things.insert_one({"n": 1})
            assert refused.value.code == 2
            tests.points.things.insert_one({"n": 2})  # another client's commands are not touched
        victim.points.things.insert_one({"n": 3})  # times: 1, and off again
        assert sorted(thing["n"] for thing in tests.points.things.find()) == [2, 3]


def test_an_abandoned_transaction_holds_its_documents_until_its_session_is_killed(server):
    """Gap 4: an abandoned transaction lives until its lifetime ends (10 s, the launcher's; mongod:
    transactionLifetimeLimitSeconds). Until then every write to its documents conflicts. The
    service's transaction runner therefore kills the session of an attempt whose connection broke
    (tests/service/test_faults.py), and the database's lifetime is short."""
    with client_of(server) as client:
        things = client.abandon.things
        things.insert_one({"_id": 1, "n": 0})
        abandoned = client.start_session()
        abandoned.start_transaction(read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority"))
        things.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=abandoned)

        def write_in_a_transaction() -> None:
            with client.start_session() as session, session.start_transaction():
                things.update_one({"_id": 1}, {"$inc": {"n": 10}}, session=session)

        with pytest.raises(OperationFailure) as conflict:
            write_in_a_transaction()
        assert conflict.value.code == 112
        assert conflict.value.has_error_label("TransientTransactionError")
        client.admin.command("killSessions", [abandoned.session_id])
        write_in_a_transaction()
        assert things.find_one({"_id": 1})["n"] == 10


ABANDON = """
import sys
from bson import ObjectId
from pymongo import MongoClient
client = MongoClient(sys.argv[1])
session = client.start_session()
session.start_transaction()
client.wallet.wallets.update_one({"_id": ObjectId(sys.argv[2])}, {"$inc": {"version": 1}}, session=session)
print("written", flush=True)
import os
os._exit(0)  # dies inside its transaction: no commit, no abort, no endSessions
"""


def die_in_a_transaction(uri: str, database: str, wallet: object) -> None:
    """A process updates `wallet` of `database` in a transaction, then exits without ending it."""
    script = ABANDON.replace("client.wallet.", f"client.{database}.")
    died = subprocess.run([sys.executable, "-c", script, uri, str(wallet)], capture_output=True, text=True, timeout=60)
    assert died.stdout.strip() == "written", died.stderr


def test_a_wallet_whose_writer_died_in_a_transaction_takes_a_deposit_within_the_lifetime(server):
    """The launcher passes the service's transaction lifetime (10 s; mongod: transactionLifetimeLimitSeconds):
    a process that wrote a wallet in a transaction and died leaves it blocked that long, not 60 s."""
    assert TRANSACTION_LIFETIME_SECONDS == secantus_launcher.TRANSACTION_LIFETIME_SECONDS == 10
    with client_of(server) as client:
        client.drop_database("wallet")
        service = WalletService(client.wallet)
        service.ensure_indexes()
        wallet = service.create_wallet("rider", "USD").wallet.id
        version = client.wallet.wallets.find_one()["version"]
        die_in_a_transaction(server.uri, "wallet", wallet)
        since = time.monotonic()
        refused = 0
        while True:
            try:
                service.deposit(wallet, 1)
                break
            except Conflict:
                refused += 1  # the service retried for its 5 s budget on the dead writer's lock
        waited = time.monotonic() - since
        assert refused >= 1  # the dead writer did hold the wallet
        assert waited <= TRANSACTION_LIFETIME_SECONDS + 1, waited
        assert service.get_wallet(wallet).balance == 1
        assert client.wallet.wallets.find_one()["version"] == version + 1  # the dead writer's write never landed


def test_a_dead_writers_transaction_ends_with_its_lifetime_on_a_quiet_server(server):
    """SecantusDB reaps expired transactions only when another transaction's statement comes by; the
    launcher's reaper ends them on time, as mongod's periodic job does. Without it, this dead
    writer's transaction stayed open for good, and dropping its database (which nothing else
    touched) waited on it for minutes."""
    with client_of(server) as client:
        wallet = client.quiet.wallets.insert_one({"version": 0}).inserted_id
        die_in_a_transaction(server.uri, "quiet", wallet)
        time.sleep(TRANSACTION_LIFETIME_SECONDS + 2 * secantus_launcher.REAP_INTERVAL_SECONDS)
    with client_of(server, timeoutMS=5_000) as client:
        client.drop_database("quiet")  # PyMongoError (a timeout) while the transaction holds its document
        assert "quiet" not in client.list_database_names()


def test_set_parameter_changes_the_transaction_lifetime_as_on_mongod(own_server):
    """`setParameter` sets transactionLifetimeLimitSeconds at runtime, `getParameter` reports it,
    and a dead writer then holds its document that long; a value mongod refuses changes nothing."""
    with client_of(own_server) as client:
        lifetime = {"getParameter": 1, "transactionLifetimeLimitSeconds": 1}
        assert client.admin.command(lifetime)["transactionLifetimeLimitSeconds"] == TRANSACTION_LIFETIME_SECONDS
        for refused in (0, -5, 2.5, "3", True):
            with pytest.raises(OperationFailure) as bad:
                client.admin.command({"setParameter": 1, "transactionLifetimeLimitSeconds": refused})
            assert bad.value.code == 2, refused
        answer = client.admin.command({"setParameter": 1, "transactionLifetimeLimitSeconds": 3})
        assert answer["was"] == TRANSACTION_LIFETIME_SECONDS
        assert client.admin.command(lifetime)["transactionLifetimeLimitSeconds"] == 3
        wallet = client.quick.wallets.insert_one({"version": 0}).inserted_id
        die_in_a_transaction(own_server.uri, "quick", wallet)
        since, refusals = time.monotonic(), []
        while True:
            try:
                with client.start_session() as session, session.start_transaction():
                    client.quick.wallets.update_one({"_id": wallet}, {"$inc": {"version": 1}}, session=session)
                break
            except OperationFailure as conflict:
                refusals.append(conflict.code)
                time.sleep(0.1)
        assert time.monotonic() - since <= 3 + 2 * secantus_launcher.REAP_INTERVAL_SECONDS
        assert set(refusals) == {112}  # held by the dead writer until then, and never anything else
        assert client.quick.wallets.find_one({"_id": wallet})["version"] == 1


def test_a_step_down_refuses_writes_for_its_period_then_it_is_primary_again(server):
    with client_of(server, serverSelectionTimeoutMS=500) as client:
        client.steps.things.insert_one({"n": 1})
        server.step_down(2)
        # No primary to select (it says it is a secondary), or NotWritablePrimary if the write raced it.
        with pytest.raises((ServerSelectionTimeoutError, NotPrimaryError)):
            client.steps.things.insert_one({"n": 2})
        with MongoClient(server.uri) as direct:
            assert direct.admin.command("hello")["secondary"] is True
        deadline = time.monotonic() + 20
        while True:
            try:
                client.steps.things.insert_one({"n": 3})
                break
            except PyMongoError:
                assert time.monotonic() < deadline, "it did not become primary again"
                time.sleep(0.2)
        assert sorted(thing["n"] for thing in client.steps.things.find()) == [1, 3]


def test_a_second_server_on_the_same_files_is_a_clear_error(server):
    second = EmbeddedMongo(storage_path=server.storage_path, log_path=server.log_path.with_name("second.log"))
    with pytest.raises(DatabaseStartError, match="in use by another SecantusDB"):
        second.start()


def test_it_ends_with_the_process_that_started_it(tmp_path):
    """A test run killed outright must not leave a database behind (PR_SET_PDEATHSIG)."""
    script = (
        "import sys, time; from pathlib import Path; from devtools.embedded_mongo import EmbeddedMongo\n"
        f"server = EmbeddedMongo(storage_path=Path({str(tmp_path / 'data')!r}))\n"
        "server.start(); print(server._process.pid, flush=True); time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while _alive(child):
        assert time.monotonic() < deadline, "the database outlived the process that started it"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_make_db_serves_prints_its_uri_and_stops_on_sigterm(tmp_path):
    port = free_port()
    environment = {**os.environ, "PORT": str(port), "DB_PATH": str(tmp_path / "db")}
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.embedded_mongo"], cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True
    )
    try:
        first = process.stdout.readline()
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        assert uri in first, first
        with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
            client.made.things.insert_one({"n": 1})
        assert (tmp_path / "db.uri").read_text().strip() == uri  # make run and make invoke find it there
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert not (tmp_path / "db.uri").exists()
    assert (tmp_path / "db").is_dir()  # the data stays for the next start


def test_the_embedded_server_is_never_part_of_the_layer():
    """SecantusDB is GPL-2.0: a development and test dependency only."""
    layer = LAYER
    assert "secantus" not in (layer / "requirements.txt").read_text().lower()
    for module in layer.rglob("*.py"):
        assert "secantus" not in module.read_text(), module


def test_concurrent_use_from_threads_is_served(server):
    """Sixteen clients' transactions on separate documents never conflict (MongoDB's rule: only
    writes to the same document collide)."""
    conflicts = []

    def work(number: int) -> None:
        with client_of(server) as client:
            things = client.threads.things
            things.insert_one({"_id": number, "n": 0})
            for _ in range(10):
                try:
                    with client.start_session() as session, session.start_transaction():
                        things.update_one({"_id": number}, {"$inc": {"n": 1}}, session=session)
                except OperationFailure as error:
                    conflicts.append(error)

    threads = [threading.Thread(target=work, args=(number,)) for number in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert conflicts == []
    with client_of(server) as client:
        assert sorted(thing["n"] for thing in client.threads.things.find()) == [10] * 16
