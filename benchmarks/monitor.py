"""A pymongo command listener that counts round trips: one started command is one round trip."""

from __future__ import annotations

import threading
from collections import Counter

from pymongo import monitoring


class CommandRecorder(monitoring.CommandListener):
    """Records the names of the commands started while armed, and counts failed commands always.

    Heartbeats and connection handshakes are not command events, so what is recorded is exactly
    what the service sends. Register it on the client: `MongoClient(uri, event_listeners=[recorder])`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = False
        self._names: list[str] = []
        self._failures: Counter[str] = Counter()

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

    def take_failures(self) -> Counter[str]:
        """Failed commands (write conflicts, aborted commits, ...) by name since the last call."""
        with self._lock:
            failures, self._failures = self._failures, Counter()
        return failures

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self._armed:
            with self._lock:
                if self._armed:
                    self._names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        with self._lock:
            self._failures[event.command_name] += 1
