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

from devtools.embedded_mongo import EmbeddedMongo, external_uri
from wallet_core import WalletService


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    uri = external_uri()
    if uri:
        yield uri
        return
    with EmbeddedMongo() as server:
        yield server.uri


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
