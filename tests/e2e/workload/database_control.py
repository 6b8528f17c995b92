"""The database under a workload, with the switches an operator has: stop it, start it again, kill
it, step it down.

Embedded: a SecantusDB process of the test's own (on a folder of its own, so killing it disturbs
no other test), stopped with SIGTERM, killed with SIGKILL, restarted on the same path and port.
With MONGODB_URI the server is not ours to stop: the service reaches it through a plain TCP relay
(devtools/tcp_relay.py), and stopping or killing cuts that network instead; a step-down is a real
`replSetStepDown` on the server. What the service sees is the same: connections cut, commands
whose outcome it cannot know, a database that comes back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pymongo import MongoClient
from pymongo.uri_parser import parse_uri

from devtools.embedded_mongo import EmbeddedMongo, external_uri
from devtools.sam_local import container_uri
from devtools.tcp_relay import TcpRelay


class ControlledDatabase(Protocol):
    """`uri`: what the service connects to. `check_uri`: what the tests read through."""

    uri: str
    check_uri: str
    crashes: bool  # kill() ends a server process (True) or only its network (False)

    def start(self) -> None: ...

    def shut_down(self) -> None: ...

    def kill(self) -> None: ...

    def step_down(self, seconds: int) -> None: ...

    def close(self) -> None: ...


class EmbeddedDatabase:
    crashes = True

    def __init__(self, folder: Path) -> None:
        self._server = EmbeddedMongo(storage_path=folder / "data", log_path=folder / "secantus.log")
        self._server.start()
        self.uri = self.check_uri = self._server.uri

    def start(self) -> None:
        self._server.start()

    def shut_down(self) -> None:
        self._server.shut_down()

    def kill(self) -> None:
        self._server.kill()

    def step_down(self, seconds: int) -> None:
        self._server.step_down(seconds)

    def close(self) -> None:
        self._server.stop()


class RelayedDatabase:
    crashes = False

    def __init__(self, uri: str) -> None:
        self.check_uri = uri
        self._relay = TcpRelay(parse_uri(uri)["nodelist"][0]).start()
        self.uri = container_uri(uri, (self._relay.host, self._relay.port))

    def start(self) -> None:
        self._relay.resume_serving()

    def shut_down(self) -> None:
        self._relay.stop_serving()

    def kill(self) -> None:
        self._relay.stop_serving()

    def step_down(self, seconds: int) -> None:
        with MongoClient(self.check_uri, serverSelectionTimeoutMS=5000) as client:
            client.admin.command("replSetStepDown", seconds, force=True)

    def close(self) -> None:
        self._relay.stop()


def controlled_database(folder: Path) -> ControlledDatabase:
    uri = external_uri()
    return RelayedDatabase(uri) if uri else EmbeddedDatabase(folder)
