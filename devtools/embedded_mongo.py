"""The embedded MongoDB-compatible server (mongoeco) for tests and local runs.

No MongoDB server can be installed on the development machines, so tests and
`make run` talk real pymongo over TCP to mongoeco's wire server, behind our wire
layer (devtools/wire_layer.py) that makes its transactions answer as MongoDB 7's
do, all on a private event loop in a daemon thread. When MONGODB_URI is set,
callers use that instead (see `external_uri`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import threading
from concurrent.futures import Future

from mongoeco.engines.memory import MemoryEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

from devtools.wire_layer import Faults, WireLayer


class EmbeddedMongo:
    """mongoeco behind the wire layer, listening on host:port (0: a free port), started from sync code.

    `uri` reaches the server through the wire layer; `direct_uri` reaches mongoeco itself
    (for measuring what the layer costs). `faults` switches the layer's fault injection.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, upstream: tuple[str, int] | None = None) -> None:
        """`upstream`: put the wire layer in front of that server instead of starting mongoeco
        (to inject faults in front of a real replica set member)."""
        self._host = host
        self._port = port
        self._upstream = upstream
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedded-mongo", daemon=True)
        self._server: AsyncMongoEcoProxyServer | None = None
        self._layer: WireLayer | None = None
        self.uri = ""
        self.direct_uri = ""

    @property
    def faults(self) -> Faults:
        assert self._layer is not None, "not started"
        return self._layer.faults

    def start(self) -> str:
        self._thread.start()
        if self._upstream is None:
            self._server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=0)
            address = self._run(self._server.start())
            upstream_host, upstream_port = address.host, address.port
        else:
            upstream_host, upstream_port = self._upstream
        self.direct_uri = f"mongodb://{upstream_host}:{upstream_port}/?directConnection=true"
        self._layer = WireLayer(upstream_host, upstream_port, host=self._host, port=self._port)
        self._run(self._layer.start())
        self.uri = f"mongodb://{self._host}:{self._layer.port}/?directConnection=true"
        return self.uri

    def stop_serving(self) -> None:
        """An outage: cut every connection and refuse new ones until `resume_serving` (data kept)."""
        assert self._layer is not None, "not started"
        self._run(self._layer.stop_serving())

    def resume_serving(self) -> None:
        assert self._layer is not None, "not started"
        self._run(self._layer.resume_serving())

    def stop(self) -> None:
        if self._layer is not None:
            self._run(self._layer.close())
            self._layer = None
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


def main() -> None:
    """`make db`: serve the embedded database on 127.0.0.1:PORT (default 27017) until Ctrl-C."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "27017")))
    arguments = parser.parse_args()
    server = EmbeddedMongo(port=arguments.port)
    try:
        server.start()
    except OSError as error:
        raise SystemExit(f"cannot listen on 127.0.0.1:{arguments.port}: {error.strerror} (set PORT=...)") from None
    print(f"embedded MongoDB-compatible server (mongoeco behind the wire layer) at {server.uri}", flush=True)
    print(f"  export MONGODB_URI='{server.uri}'", flush=True)
    print("  faults: client.admin.command('devFaults', {'dropAfterCommitNext': 1}); Ctrl-C stops", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
