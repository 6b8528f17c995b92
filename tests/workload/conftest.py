"""The deployment the workload suites run against: `make run`'s server, as a person starts it,
in front of the session's database through the wire layer whose fault switches the tests hold.

The database is the embedded server, or MONGODB_URI's with the wire layer in front of it; the
tests read the same database directly (`Deployment.database`) to check what the API says.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pymongo import MongoClient
from pymongo.database import Database

from devtools.embedded_mongo import EmbeddedMongo
from devtools.local_server import Server, running_server
from devtools.wire_layer import Faults


@dataclass
class Deployment:
    server: Server
    database: Database
    faults: Faults
    database_server: EmbeddedMongo


@pytest.fixture(scope="module")
def deployment(faulty_server: EmbeddedMongo, mongo_client: MongoClient, tmp_path_factory) -> Iterator[Deployment]:
    """make run's server (expiry every second) on a database of its own; faults off before and after."""
    name = f"wallet_http_{uuid.uuid4().hex[:12]}"
    log = tmp_path_factory.mktemp("deployment") / "server.log"
    environment = {"MONGODB_URI": faulty_server.uri, "MONGODB_DATABASE": name, "EXPIRY_INTERVAL_SECONDS": "1"}
    faulty_server.faults.reset()
    try:
        with running_server(log, environment) as server:
            yield Deployment(server, mongo_client[name], faulty_server.faults, faulty_server)
    finally:
        faulty_server.faults.reset()
        mongo_client.drop_database(name)
