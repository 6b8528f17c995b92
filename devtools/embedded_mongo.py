"""The embedded MongoDB-compatible server (mongoeco) for tests and local runs.

No MongoDB server can be installed on the development machines, so tests and
`make run` talk real pymongo over TCP to mongoeco's wire server, run here on a
private event loop in a daemon thread. When MONGODB_URI is set, callers use
that instead (see `database_uri`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future

from mongoeco.engines.memory import MemoryEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer


class EmbeddedMongo:
    """mongoeco's wire server on 127.0.0.1, started and stopped from sync code."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-mongo", daemon=True)
        self._server: AsyncMongoEcoProxyServer | None = None
        self.uri = ""

    def start(self) -> str:
        self._thread.start()
        self._server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host=self._host, port=self._port)
        address = self._run(self._server.start())
        self.uri = f"mongodb://{address.host}:{address.port}/?directConnection=true"
        return self.uri

    def stop(self) -> None:
        if self._server is not None:
            self._run(self._server.close())
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self, coroutine):
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def external_uri() -> str | None:
    """MONGODB_URI when the environment names a real deployment, else None."""
    return os.environ.get("MONGODB_URI") or None
