"""Per-container state: the database URI, one MongoClient, one WalletService, the event sink.

Created lazily on first use, so importing a handler costs no network round trip, and reused by
every invocation the container serves.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import pymongo
from pymongo import MongoClient

from wallet_service import EventSink, WalletService

from .event_sinks import EventBridgeSink, FileSink

# Leave the handler this much of the Lambda's remaining time to shape and return its response.
RESPONSE_MARGIN_SECONDS = 0.5
MINIMUM_DATABASE_SECONDS = 0.2
# The longest an HTTP request waits on the database: the service's retry budget. Under
# pymongo.timeout, server selection waits the whole remaining time (not serverSelectionTimeoutMS),
# so without a cap a request during an outage would hold its function until the Lambda timeout
# and answer, if at all, only just before Lambda cuts it off; with the cap it answers 503 in time.
REQUEST_DATABASE_SECONDS = 5.0

# The container's MongoClient, said once: wallet_service() makes it, and the connection budget (make
# importtime, tests/tooling/test_connection_budget.py) multiplies what it holds by the template's
# reserved concurrency. Every connection counts against the database's per-node limit (Atlas M10:
# 1,500), so each container opens the fewest it can.
CLIENT_SETTINGS = {
    # One connection: a Lambda container serves one request at a time, and no function uses the client
    # from two threads at once (publishing after the answer runs in the after-answer extension's
    # thread, once the handler has returned and before the next invocation starts; expiry, the audit
    # and the publisher run in the invocation's own); a bigger pool would only raise what every
    # container may hold. A replica set pins no connection to a transaction or a cursor (only a load
    # balancer would, needing more).
    # Calls from several threads of one process (the tests) wait for it in turn.
    "maxPoolSize": 1,
    # Check the servers by polling, as pymongo does by itself inside Lambda (it sees
    # AWS_LAMBDA_RUNTIME_API): one connection per server, where streaming holds two, and a server
    # selection that finds no primary asks for a new check at once, so a step-down's end is seen
    # within half a second. Said here so every place that runs the handlers (make run's containers
    # too) monitors alike.
    "serverMonitoringMode": "poll",
    "serverSelectionTimeoutMS": 2000,
    "connectTimeoutMS": 2000,
    "retryWrites": True,
    "retryReads": True,
}
# The connections that watch each server, by serverMonitoringMode: polling checks on one; streaming
# keeps a hello stream open on one and measures round trips on another (measured: make importtime).
MONITOR_CONNECTIONS = {"poll": 1, "stream": 2}

_lock = threading.Lock()
_client: MongoClient | None = None
_service: WalletService | None = None
_sink: EventSink | None = None
_sink_chosen = False


def database_uri() -> str:
    """MONGODB_URI from the environment (local runs) or, in AWS, the SSM SecureString or secret it names."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        return uri
    from aws_lambda_powertools.utilities import parameters  # only deployed functions need boto3

    parameter = os.environ.get("MONGODB_URI_PARAMETER")
    if parameter:
        return parameters.get_parameter(parameter, decrypt=True, max_age=3600)
    secret = os.environ.get("MONGODB_URI_SECRET")
    if secret:
        return parameters.get_secret(secret, max_age=3600)
    raise RuntimeError("no database configured: set MONGODB_URI, MONGODB_URI_PARAMETER or MONGODB_URI_SECRET")


def wallet_service() -> WalletService:
    """The container's WalletService, connected and with its indexes ensured on first use."""
    global _client, _service
    if _service is None:
        with _lock:
            if _service is None:
                client = MongoClient(
                    database_uri(), appname=os.environ.get("POWERTOOLS_SERVICE_NAME", "wallet"), **CLIENT_SETTINGS
                )
                zones = int(os.environ.get("SHARD_ZONES") or 1)  # the jobs batch by shard (docs/sharding.md)
                service = WalletService(client[os.environ.get("MONGODB_DATABASE", "wallet")], zones=zones)
                service.ensure_indexes()
                _client, _service = client, service
    return _service


def connections_per_container(settings: dict = CLIENT_SETTINGS) -> tuple[int, int]:
    """The most connections one container's client holds: (on the primary, on each secondary). Its
    pool is on the primary only (every read and write goes there); each server has its monitor."""
    monitors = MONITOR_CONNECTIONS[settings["serverMonitoringMode"]]
    return settings["maxPoolSize"] + monitors, monitors


def event_sink() -> EventSink | None:
    """Where the container's events go, chosen once from the environment: EVENTS_FILE (a file of
    JSON lines, `make run`), else EVENT_BUS_NAME (the EventBridge bus, deployed), else None (the
    events wait in the outbox)."""
    global _sink, _sink_chosen
    if not _sink_chosen:
        with _lock:
            if not _sink_chosen:
                path = os.environ.get("EVENTS_FILE")
                bus = os.environ.get("EVENT_BUS_NAME")
                _sink = FileSink(path) if path else EventBridgeSink(bus) if bus else None
                _sink_chosen = True
    return _sink


def reset() -> None:
    """Forget the container's client and event sink (tests switch databases and buses between cases)."""
    global _client, _service, _sink, _sink_chosen
    with _lock:
        if _client is not None:
            _client.close()
        _client = _service = None
        _sink, _sink_chosen = None, False


@contextmanager
def database_deadline(remaining_millis: int, *, at_most: float | None = REQUEST_DATABASE_SECONDS):
    """Bound every database call of an invocation by the Lambda's remaining time, less a margin
    for the response, and by `at_most` seconds (None: the remaining time only, for the expiry job)."""
    seconds = remaining_millis / 1000 - RESPONSE_MARGIN_SECONDS
    if at_most is not None:
        seconds = min(seconds, at_most)
    seconds = max(MINIMUM_DATABASE_SECONDS, seconds)
    with pymongo.timeout(seconds):
        yield
