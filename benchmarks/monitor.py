"""A pymongo command listener: round trips, the full commands of one call, and the database's answers.

One started command is one round trip. Heartbeats and connection handshakes are not command events,
so what it sees is exactly what the service sends. Register it on the client:
`MongoClient(uri, event_listeners=[recorder])`.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from pymongo import monitoring

from wallet_service.storage.transactions import WRITE_CONFLICT

NO_SUCH_TRANSACTION = 251


@dataclass(frozen=True, slots=True)
class Sent:
    """One command as the driver sent it (with its session framing) and the reply it got."""

    database: str
    name: str
    command: dict
    reply: dict | None  # None when the command failed


@dataclass
class Answers:
    """What the database answered while counting: commits sent, and failed answers by error code (failed
    commands, and the write errors and write concern errors of the ones that succeeded)."""

    commits: int = 0
    failed: Counter[int | None] = field(default_factory=Counter)  # None: no code (a network error)

    @property
    def write_conflicts(self) -> int:
        return self.failed[WRITE_CONFLICT]

    @property
    def no_such_transaction(self) -> int:
        return self.failed[NO_SUCH_TRANSACTION]

    @property
    def other_failures(self) -> int:
        return sum(self.failed.values()) - self.write_conflicts - self.no_such_transaction


class CommandRecorder(monitoring.CommandListener):
    """Records command names while armed, whole commands while capturing, and counts answers always."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = False
        self._names: list[str] = []
        self._capturing = False
        self._captured: dict[tuple, Sent] = {}  # by (connection, request id), in sending order
        self._answers = Answers()

    def arm(self) -> None:
        with self._lock:
            self._names = []
            self._armed = True

    def disarm(self) -> list[str]:
        """Stop recording; the commands started since `arm`, in order."""
        with self._lock:
            self._armed = False
            names, self._names = self._names, []
        return names

    def capture(self) -> None:
        with self._lock:
            self._captured = {}
            self._capturing = True

    def captured(self) -> list[Sent]:
        """Stop capturing; the commands sent since `capture`, with their replies, in order."""
        with self._lock:
            self._capturing = False
            captured, self._captured = list(self._captured.values()), {}
        return captured

    def take_answers(self) -> Answers:
        """Commits and failed replies since the last call."""
        with self._lock:
            answers, self._answers = self._answers, Answers()
        return answers

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        with self._lock:
            if event.command_name == "commitTransaction":
                self._answers.commits += 1
            if self._armed:
                self._names.append(event.command_name)
            if self._capturing:
                key = (event.connection_id, event.request_id)
                self._captured[key] = Sent(event.database_name, event.command_name, dict(event.command), None)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        errors = [*event.reply.get("writeErrors", ()), event.reply.get("writeConcernError")]
        for error in filter(None, errors):
            self._count(error.get("code"))
        if self._capturing:
            with self._lock:
                key = (event.connection_id, event.request_id)
                sent = self._captured.get(key)
                if sent is not None:
                    self._captured[key] = Sent(sent.database, sent.name, sent.command, dict(event.reply))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._count(event.failure.get("code") if isinstance(event.failure, dict) else None)

    def _count(self, code: int | None) -> None:
        with self._lock:
            self._answers.failed[code] += 1
