"""The database answers transactions as MongoDB 7 does, proven with plain pymongo.

Against the embedded server these tests exercise the wire layer (devtools/wire_layer.py); with
MONGODB_URI pointing at a real replica set the same tests show MongoDB's own behaviour. Fault
tests run through the wire layer in both cases (in front of the real server when there is one).
"""

from __future__ import annotations

import socket
import threading
import uuid

import pytest
from pymongo import MongoClient
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from tests.ledger_checks import assert_ledger_consistent
from wallet_core import WalletService


@pytest.fixture
def collection(mongo_client, database):
    collection = database["items"]
    collection.insert_one({"_id": 1, "value": 0})
    return collection


def test_a_failed_write_aborts_the_transaction(mongo_client, collection):
    with mongo_client.start_session() as session:
        session.start_transaction()
        collection.update_one({"_id": 1}, {"$inc": {"value": 1}}, session=session)
        collection.insert_one({"_id": 2}, session=session)
        with pytest.raises(DuplicateKeyError):
            collection.insert_one({"_id": 1}, session=session)
        with pytest.raises(OperationFailure) as later:
            collection.find_one({"_id": 1}, session=session)
        assert later.value.code == 251
        assert later.value.has_error_label("TransientTransactionError")
        with pytest.raises(OperationFailure) as commit:
            session.commit_transaction()
        assert commit.value.code == 251
        assert commit.value.has_error_label("TransientTransactionError")
    assert collection.find_one({"_id": 1}) == {"_id": 1, "value": 0}
    assert collection.find_one({"_id": 2}) is None


def test_a_failed_update_aborts_the_transaction(mongo_client, collection):
    with mongo_client.start_session() as session:
        session.start_transaction()
        collection.insert_one({"_id": 3}, session=session)
        with pytest.raises(OperationFailure):
            collection.update_one({"_id": 1}, {"$inc": {"value": "not a number"}}, session=session)
        with pytest.raises(OperationFailure) as commit:
            session.commit_transaction()
        assert commit.value.code == 251
    assert collection.find_one({"_id": 3}) is None


def _conflicting_increments(mongo_client, collection, *, read_between: bool) -> OperationFailure:
    """Two transactions increment one document; returns the loser's error, after both sessions ended."""
    first = mongo_client.start_session()
    second = mongo_client.start_session()
    conflict = None
    try:
        first.start_transaction()
        second.start_transaction()
        collection.update_one({"_id": 1}, {"$inc": {"value": 1}}, session=first)
        try:  # MongoDB fails the second write at once; the embedded server (through the layer) at commit.
            collection.update_one({"_id": 1}, {"$inc": {"value": 10}}, session=second)
        except OperationFailure as error:
            conflict = error
        first.commit_transaction()
        if read_between:
            collection.find_one({"_id": 1})
        if conflict is None:
            with pytest.raises(OperationFailure) as failed_commit:
                second.commit_transaction()
            conflict = failed_commit.value
    finally:
        first.end_session()
        second.end_session()
    return conflict


@pytest.mark.parametrize("read_between", [True, False])
def test_write_conflicts_carry_code_112_and_the_transient_label(mongo_client, collection, read_between):
    conflict = _conflicting_increments(mongo_client, collection, read_between=read_between)
    assert conflict.code == 112
    assert conflict.has_error_label("TransientTransactionError")
    assert collection.find_one({"_id": 1})["value"] == 1


def test_the_losing_transaction_never_lands_later(mongo_client, collection):
    """The loser's session id goes back to pymongo's pool; reusing it must not apply the lost transaction."""
    _conflicting_increments(mongo_client, collection, read_between=False)
    for _ in range(5):  # every later command may reuse the pooled session id
        with mongo_client.start_session() as session:
            collection.find_one({"_id": 1}, session=session)
    assert collection.find_one({"_id": 1})["value"] == 1


def test_devfaults_command_reports_and_validates(faulty_server, faults):
    client = MongoClient(faulty_server.uri, serverSelectionTimeoutMS=5000)
    try:
        report = client.admin.command("devFaults", {"dropAfterCommitNext": 2, "dropBeforeCommandProbability": 0.5})
        assert report["faults"]["dropAfterCommitNext"] == 2
        assert faults.drop_before_command_probability == 0.5
        with pytest.raises(OperationFailure, match="probability"):
            client.admin.command("devFaults", {"dropBeforeCommandProbability": 2})
        with pytest.raises(OperationFailure, match="unknown"):
            client.admin.command("devFaults", {"dropEverything": True})
        assert client.admin.command("devFaults", {"reset": True})["faults"]["dropAfterCommitNext"] == 0
    finally:
        client.close()


def test_dropped_reply_after_commit_leaves_the_outcome_unknown_but_applied(faulty_server, faults):
    client = MongoClient(faulty_server.uri, serverSelectionTimeoutMS=5000, retryWrites=False)
    collection = client[f"wire_{uuid.uuid4().hex[:8]}"]["items"]
    try:
        collection.insert_one({"_id": 1, "value": 0})
        faults.configure({"dropAfterCommitNext": 2})  # the commit and pymongo's own retry of it
        with client.start_session() as session:
            session.start_transaction()
            collection.update_one({"_id": 1}, {"$inc": {"value": 5}}, session=session)
            with pytest.raises(PyMongoError) as unknown:
                session.commit_transaction()
        assert unknown.value.has_error_label("UnknownTransactionCommitResult")
        assert collection.find_one({"_id": 1})["value"] == 5  # it was applied all the same
        assert faults.dropped_after_commit >= 1
    finally:
        client.drop_database(collection.database.name)
        client.close()


def test_dropped_connection_before_a_command(faulty_server, faults):
    client = MongoClient(faulty_server.uri, serverSelectionTimeoutMS=5000, retryWrites=False, retryReads=False)
    collection = client[f"wire_{uuid.uuid4().hex[:8]}"]["items"]
    try:
        collection.insert_one({"_id": 1})
        faults.configure({"dropBeforeCommandNext": 1})
        with pytest.raises(AutoReconnect):
            collection.insert_one({"_id": 2})
        assert collection.find_one({"_id": 2}) is None  # never reached the server
        assert faults.dropped_before_command == 1
    finally:
        client.drop_database(collection.database.name)
        client.close()


def test_the_service_moves_money_once_through_dropped_commit_replies(faulty_server, faults):
    client = MongoClient(faulty_server.uri, serverSelectionTimeoutMS=5000)
    database = client[f"wire_{uuid.uuid4().hex[:8]}"]
    try:
        service = WalletService(database, time_budget=20.0)
        service.ensure_indexes()
        wallet = service.create_wallet("alice", "USD", opening_balance=1_000).wallet.id
        faults.configure({"dropAfterCommitNext": 3})
        moved = service.withdraw(wallet, 300, idempotency_key="once")
        assert not moved.replayed
        assert service.get_wallet(wallet).balance == 700
        faults.configure({"dropAfterCommitProbability": 0.3, "dropBeforeCommandProbability": 0.05})
        for index in range(20):
            service.deposit(wallet, 10, idempotency_key=f"d{index}")
        faults.reset()
        assert service.get_wallet(wallet).balance == 900
        assert_ledger_consistent(database)
    finally:
        client.drop_database(database.name)
        client.close()


def test_concurrent_clients_through_the_layer(faulty_server, faults, database):
    """Many connections at once through the layer: each sees its own replies."""
    client = MongoClient(faulty_server.uri, serverSelectionTimeoutMS=5000, maxPoolSize=16)
    collection = client[database.name]["counters"]
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for index in range(25):
                collection.insert_one({"_id": f"{worker}-{index}", "worker": worker})
                assert collection.find_one({"_id": f"{worker}-{index}"})["worker"] == worker
        except BaseException as error:  # collected and re-raised in the test thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    assert errors == []
    assert database["counters"].count_documents({}) == 200


def test_an_outage_cuts_connections_refuses_new_ones_and_keeps_the_data(faulty_server):
    client = MongoClient(faulty_server.uri, serverSelectionTimeoutMS=500, retryReads=False)
    collection = client[f"wire_{uuid.uuid4().hex[:8]}"]["items"]
    host, port = faulty_server.uri.split("//")[1].split("/")[0].split(":")
    try:
        collection.insert_one({"_id": 1})
        faulty_server.stop_serving()
        try:
            with pytest.raises((AutoReconnect, ServerSelectionTimeoutError)):
                collection.find_one({"_id": 1})
            with socket.socket() as probe:
                assert probe.connect_ex((host, int(port))) != 0  # refused
        finally:
            faulty_server.resume_serving()
        assert collection.find_one({"_id": 1}) == {"_id": 1}  # same address, data kept
    finally:
        client.drop_database(collection.database.name)
        client.close()
