"""Fixtures: one database server per test session, a fresh database per test.

The server is MONGODB_URI when set (a real replica set) and the embedded mongoeco server
otherwise; every test must pass on both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.uri_parser import parse_uri

from devtools.embedded_mongo import EmbeddedMongo, external_uri
from devtools.wire_layer import Faults
from wallet_core import WalletService


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedMongo | None]:
    """The embedded server behind the wire layer, or None when MONGODB_URI names a real one."""
    if external_uri():
        yield None
        return
    with EmbeddedMongo() as server:
        yield server


@pytest.fixture(scope="session")
def mongo_uri(embedded_server: EmbeddedMongo | None) -> str:
    return embedded_server.uri if embedded_server else external_uri()


@pytest.fixture(scope="session")
def faulty_server(embedded_server: EmbeddedMongo | None) -> Iterator[EmbeddedMongo]:
    """A server whose wire layer can inject faults: the embedded one, or the layer in front of MONGODB_URI."""
    if embedded_server is not None:
        yield embedded_server
        return
    host, port = next(iter(parse_uri(external_uri())["nodelist"]))
    with EmbeddedMongo(upstream=(host, port)) as layered:
        yield layered


@pytest.fixture
def faults(faulty_server: EmbeddedMongo) -> Iterator[Faults]:
    """The fault switches, all off before and after the test."""
    faulty_server.faults.reset()
    yield faulty_server.faults
    faulty_server.faults.reset()


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[MongoClient]:
    client = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000, maxPoolSize=64)
    yield client
    client.close()


@pytest.fixture
def database(mongo_client: MongoClient) -> Iterator[Database]:
    name = f"wallet_test_{uuid.uuid4().hex[:12]}"
    yield mongo_client[name]
    mongo_client.drop_database(name)


@pytest.fixture
def service(database: Database) -> WalletService:
    wallet_service = WalletService(database, time_budget=20.0)
    wallet_service.ensure_indexes()
    return wallet_service


@pytest.fixture
def lambda_env(monkeypatch, mongo_uri: str, mongo_client: MongoClient) -> Iterator[str]:
    """The environment a deployed function has, pointing at a fresh database; yields its name."""
    from wallet_api import runtime

    name = f"wallet_lambda_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DATABASE", name)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "wallet")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Wallet")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    runtime.reset()
    yield name
    runtime.reset()
    mongo_client.drop_database(name)
