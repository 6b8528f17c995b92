"""Where the outbox's events go (wallet_service.use_cases.publishing sends them): an EventBridge bus when
deployed, a file of JSON lines locally (`make run`).

A sink takes at most 10 event documents of the outbox per call and says, per event, whether it
took it; publishing marks an event sent only when it did. Consumers receive `wallet_service.event_detail(event)`
as the EventBridge event's `detail`, with the event type as its `detail-type` and `wallet-service`
as its `source`, and deduplicate by `detail.id` (delivery is at least once).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from wallet_service import event_detail

SOURCE = "wallet-service"
# PutEvents normally answers in tens of milliseconds. A short timeout and one retry keep a slow or
# unreachable EventBridge from holding an HTTP answer: what is not sent stays in the outbox for the
# scheduled publisher.
CLIENT_CONNECT_SECONDS = 1.0
CLIENT_READ_SECONDS = 2.0
CLIENT_MAX_ATTEMPTS = 2  # the call and one retry
LOCAL_ACCOUNT = "123456789012"  # the account id of the local stand-in's events (as in the sample events)
# The keys of an event as EventBridge hands it to a rule's target: what eventbridge_event builds and FileSink writes.
TARGET_EVENT_KEYS = frozenset(
    {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
)


def _time(event: dict) -> datetime:
    occurred = event["occurredAt"]
    return occurred if occurred.tzinfo is not None else occurred.replace(tzinfo=UTC)


class EventBridgeSink:
    """PutEvents to `bus_name`. `client` is a boto3 `events` client, or None for one created on the
    first call (boto3 comes with the Lambda runtime; importing it costs a cold start ~0.2 s, which
    only a function that publishes pays, and only when it has something to send)."""

    def __init__(self, bus_name: str, client: Any = None) -> None:
        self.bus_name = bus_name
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        connect_timeout=CLIENT_CONNECT_SECONDS,
                        read_timeout=CLIENT_READ_SECONDS,
                        retries={"mode": "standard", "total_max_attempts": CLIENT_MAX_ATTEMPTS},
                    )
                    self._client = boto3.client("events", config=config)
        return self._client

    def entries(self, events: Sequence[dict]) -> list[dict]:
        return [
            {
                "Source": SOURCE,
                "DetailType": event["type"],
                "Detail": json.dumps(event_detail(event), separators=(",", ":")),
                "EventBusName": self.bus_name,
                "Time": _time(event),
            }
            for event in events
        ]

    def put(self, events: Sequence[dict]) -> list[bool]:
        """One PutEvents call; an entry is accepted when its result carries no ErrorCode. A call that
        fails as a whole raises (publishing counts every event of it as refused)."""
        if not events:
            return []
        answer = self.client.put_events(Entries=self.entries(events))
        results = answer.get("Entries") or []
        if len(results) != len(events):  # not what PutEvents promises: trust none of it
            return [False] * len(events)
        return ["ErrorCode" not in result for result in results]


def eventbridge_event(event: dict, *, region: str, account: str = LOCAL_ACCOUNT) -> dict:
    """The event as EventBridge hands it to a rule's target (an SQS queue, a Lambda function)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": event["type"],
        "source": SOURCE,
        "account": account,
        "time": _time(event).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": event_detail(event),
    }


class FileSink:
    """The bus of `make run`: each event appended to `path` as one JSON line, as EventBridge would hand
    it to a target, and one line per event on stderr (its type, wallet and id). Several processes may
    append to one file: each call writes its lines in one write, under an exclusive lock."""

    def __init__(self, path: str | Path, *, log: bool = True) -> None:
        self.path = Path(path)
        self.log = log
        self.region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    def put(self, events: Sequence[dict]) -> list[bool]:
        if not events:
            return []
        delivered = [eventbridge_event(event, region=self.region) for event in events]
        data = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in delivered).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _lock(descriptor)
            written = 0
            while written < len(data):
                written += os.write(descriptor, data[written:])
        finally:
            os.close(descriptor)  # closing releases the lock
        if self.log:
            stamp = datetime.now().strftime("%H:%M:%S")
            lines = (
                f"{stamp} event {item['detail-type']} wallet {item['detail']['walletId']} {item['detail']['id']}\n"
                for item in delivered
            )
            sys.stderr.write("".join(lines))
            sys.stderr.flush()
        return [True] * len(events)


def _lock(descriptor: int) -> None:
    try:
        import fcntl
    except ImportError:  # not on Linux or macOS: O_APPEND alone
        return
    fcntl.flock(descriptor, fcntl.LOCK_EX)
