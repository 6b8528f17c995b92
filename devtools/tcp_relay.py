"""A plain TCP relay: bytes in, bytes out, nothing read or changed.

Used where the network itself is the point and no failpoint can stand in:
- Lambda containers on the Docker bridge reach a database that listens on this machine's
  loopback (MONGODB_URI's) through a relay listening on the bridge's address (devtools/sam_local.py);
- with MONGODB_URI, the outage tests cut the network in front of a server they cannot stop
  (`stop_serving` closes every connection and refuses new ones, `resume_serving` listens again).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future


class TcpRelay:
    """Listens on host:port (0: a free port) and relays each connection to `upstream`, from a thread."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._upstream = upstream
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-relay", daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()

    def start(self) -> TcpRelay:
        self._thread.start()
        self.resume_serving()
        return self

    def stop(self) -> None:
        self.stop_serving()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def stop_serving(self) -> None:
        """The network goes away: every relayed connection is cut and new ones are refused."""
        self._run(self._close())

    def resume_serving(self) -> None:
        """Listen again, on the same port."""
        self._run(self._listen())

    def _run(self, coroutine) -> None:
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        future.result(timeout=30)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._relay, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(task)
            client_writer.close()
            if upstream_writer is not None:
                upstream_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()
