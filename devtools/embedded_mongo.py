"""The embedded database: SecantusDB, a MongoDB-wire server on WiredTiger, as a process of its own.

No MongoDB server can be installed on the development machines, so tests, benchmarks and local
runs start SecantusDB through its launcher (`python devtools/secantus_launcher.py`, which closes
gaps in its query planner and hands over to `python -m secantus`'s command line); it answers as a
single-node replica set (`setName: secantus`) with MongoDB's transaction semantics. It is started with:

- `--sync-on-commit`: the WiredTiger log is flushed at every commit, so a commit that was
  acknowledged survives a kill -9 (without it, the last commits before a crash were lost);
- `--enable-test-commands`: `configureFailPoint`, as `mongod --setParameter enableTestCommands=1`,
  which is how every fault in the suite is injected (devtools/failpoints.py).

It runs on a storage path of its own: a temporary directory for tests (kept across `restart()`,
removed by `stop()`), `.local/db` for `make run` and `make db`. It is stopped with SIGTERM, and
`kill()` sends SIGKILL, as a crash would. When MONGODB_URI is set, callers use that instead
(see `external_uri`). SecantusDB is GPL-2.0: a development and test dependency, never part of
the layer or anything `sam build` makes.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from devtools.paths import LOCAL

LOCAL_DATABASE = LOCAL / "db"
LAUNCHER = Path(__file__).with_name("secantus_launcher.py")
START_SECONDS = 30
STOP_SECONDS = 30
PR_SET_PDEATHSIG = 1


class DatabaseStartError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class EmbeddedMongo:
    """SecantusDB listening on host:port (0: a free port), on `storage_path` (None: a temporary one).

    `uri` names it as one server (`directConnection=true`), not as the replica set it also is:
    while it shuts down on SIGTERM it answers a monitor's hello as a standalone, and a client in
    replica-set mode then drops it from its topology for good, so it would never find it again
    after a restart. `replica_set_uri` names the set, for the tests of its topology.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        storage_path: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._temporary = storage_path is None
        self.storage_path = Path(tempfile.mkdtemp(prefix="secantus-")) if storage_path is None else storage_path
        self.log_path = log_path or self.storage_path.with_name(self.storage_path.name + ".log")
        self._process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def replica_set_uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?replicaSet=secantus"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            str(LAUNCHER),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.storage_path),
            "--enable-test-commands",
            "--sync-on-commit",
            "--log-level",
            "WARNING",
        ]

    def start(self) -> str:
        """Start the server (again, on the same path and port) and wait until it is a writable primary.

        Call it from a thread that outlives the server (the main thread): the server ends when the
        thread that started it does."""
        if self.running:
            return self.uri
        self.storage_path.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command())}\n")
            log.flush()
            self._process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the tool, which stops the database in its turn
                preexec_fn=_end_with_parent,
            )
        self.starts += 1
        self._wait_until_primary()
        return self.uri

    def _wait_until_primary(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        client = MongoClient(self.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise DatabaseStartError(self._start_failure())
                try:
                    if client.admin.command("hello").get("isWritablePrimary"):
                        return
                except PyMongoError:
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        self.kill()
        raise DatabaseStartError(f"SecantusDB did not become primary within {START_SECONDS} s; log: {self.log_path}")

    def _start_failure(self) -> str:
        log = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
        if "resource busy" in log.lower():
            return (
                f"the database files in {self.storage_path} are in use by another SecantusDB "
                "(another `make run` or `make db`?): stop it first"
            )
        if "address already in use" in log.lower():
            return f"port {self.port} on {self.host} is busy: choose another"
        return f"SecantusDB exited at start (log {self.log_path}):\n{log}"

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; SIGKILL if it does not stop in time."""
        self._end(signal.SIGTERM)
        if self._temporary:
            shutil.rmtree(self.storage_path, ignore_errors=True)
            self.log_path.unlink(missing_ok=True)

    def shut_down(self) -> None:
        """Stop it cleanly but keep its files, to `start()` it again on the same path."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, no flush. `start()` recovers from its files."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.shut_down()
        self.start()

    def _end(self, signal_number: int) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal_number)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def step_down(self, seconds: int) -> None:
        """`replSetStepDown` with force: a secondary for `seconds`, then primary again by itself."""
        client = MongoClient(self.uri, serverSelectionTimeoutMS=5000)
        try:
            client.admin.command("replSetStepDown", seconds, force=True)
        finally:
            client.close()

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _end_with_parent() -> None:
    """In the child, before exec: SIGKILL when the process that started it dies without stopping
    it, however it dies (a killed test run must not leave a database behind). A kill, not SIGTERM:
    a clean shutdown waited on its clients and once outlived the 20 s a busy machine gave it; with
    --sync-on-commit every acknowledged commit is on disk, and a restart recovers. Linux's
    PR_SET_PDEATHSIG."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def external_uri() -> str | None:
    """MONGODB_URI when the environment names a real deployment, else None."""
    return os.environ.get("MONGODB_URI") or None


def local_storage_path() -> Path | None:
    """Where `make run` and `make db` keep their data: DB_PATH, else .local/db; None for DB_PATH=:memory:."""
    chosen = os.environ.get("DB_PATH") or str(LOCAL_DATABASE)
    return None if chosen == ":memory:" else Path(chosen).resolve()


def _address_file(path: Path) -> Path:
    return path.with_name(path.name + ".uri")


def _answers(uri: str) -> bool:
    client = MongoClient(uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def local_database(cleanup: list) -> tuple[str, str]:
    """The database of `make run`, `make invoke` and `make db`, as (URI, what it is).

    MONGODB_URI when set. Else the embedded server on the local path (.local/db, or DB_PATH): the
    one already serving it (another `make run` or `make db` wrote its URI beside the data), or a new
    one, stopped by `cleanup`. Raises DatabaseStartError with a readable reason.
    """
    uri = external_uri()
    if uri is not None:
        return uri, "MONGODB_URI"
    path = local_storage_path()
    if path is not None and _address_file(path).exists():
        running = _address_file(path).read_text().strip()
        if running and _answers(running):
            return running, f"the embedded server already serving {path}"
    server = EmbeddedMongo(storage_path=path)
    server.start()
    if path is None:
        cleanup.append(server.stop)
        return server.uri, "embedded SecantusDB, in a temporary folder (DB_PATH=:memory:): gone when it stops"
    address = _address_file(path)
    address.write_text(server.uri + "\n")
    cleanup.append(lambda: (address.unlink(missing_ok=True), server.stop()))
    return server.uri, f"embedded SecantusDB, data kept in {path} (to start empty: stop it, then rm -rf {path})"


def main() -> None:
    """`make db`: serve the embedded database on 127.0.0.1:PORT (default 27017) until Ctrl-C."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "27017")))
    arguments = parser.parse_args()
    path = local_storage_path()
    server = EmbeddedMongo(port=arguments.port, storage_path=path)
    try:
        server.start()
    except DatabaseStartError as error:
        raise SystemExit(f"cannot start the embedded database: {error}") from None
    if path is not None:
        _address_file(path).write_text(server.uri + "\n")
    kept = f"data kept in {path} (to start empty: stop it, then rm -rf {path})" if path else "data in a tmp folder"
    print(f"embedded MongoDB-wire server (SecantusDB on WiredTiger) at {server.uri}", flush=True)
    print(f"  export MONGODB_URI='{server.uri}'", flush=True)
    print(f"  {kept}; its log: {server.log_path}", flush=True)
    print("  failpoints on (configureFailPoint, as mongod with enableTestCommands=1); Ctrl-C stops", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            if not server.running:
                raise SystemExit(f"the database exited; its log: {server.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        if path is not None:
            _address_file(path).unlink(missing_ok=True)
        server.stop()


if __name__ == "__main__":
    main()
