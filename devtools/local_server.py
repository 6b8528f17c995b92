"""`make run`'s server as a child process, and a small HTTP client for it.

The end-to-end suites (tests/e2e/test_local_api.py, tests/e2e/workload/), `make load` and `make soak`
start the server this way: on a free port of 127.0.0.1, with the environment they choose (the
database URI and name, the expiry interval), its output in a log file, and stop it with Ctrl-C's
signal so it shuts down as a person's would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.paths import ROOT

START_SECONDS = 90


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A running API (make run's or sam local start-api's): its base URL, process and log."""

    def __init__(self, base: str, process: subprocess.Popen, log: Path) -> None:
        self.base = base
        self.process = process
        self.log = log

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        timeout: float = 30,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request: `body` is sent as JSON, `data` as given; returns (status, headers, raw body)."""
        sent = {"content-type": "application/json"}
        if token:
            sent["authorization"] = f"Bearer {token}"
        if key:
            sent["idempotency-key"] = key
        sent |= headers or {}
        if data is None and body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, body: object = None, **options) -> tuple[int, dict[str, str], object]:
        status, headers, raw = self.call(method, path, body, **options)
        return status, headers, json.loads(raw) if raw else None

    def wait_until_healthy(self, seconds: float = START_SECONDS, what: str = "make run's server") -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{what} exited early:\n{self.log.read_text()[-5000:]}")
            try:
                if self.call("GET", "/health", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        self.process.kill()
        raise RuntimeError(f"{what} did not answer /health within {seconds:g} s:\n{self.log.read_text()[-5000:]}")

    def wait_for_log(self, text: str, seconds: float = START_SECONDS) -> None:
        """Until the server's log has a line containing `text` (make run's "functions warm")."""
        deadline = time.monotonic() + seconds
        while text not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no {text!r} in the server's log:\n{self.log.read_text()[-5000:]}")
            time.sleep(0.2)

    def stop(self, seconds: float = 30) -> int:
        """Ctrl-C, as a person stops `make run`; killed if it does not stop in time. Returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(port: int, log: Path, environment: dict[str, str] | None = None) -> subprocess.Popen:
    """`make run`'s server (python -m devtools.local_api run) on `port`, its output in `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.local_api", "run"],
        cwd=ROOT,
        # A test's server starts its containers on first use (LOCAL_WARM=0), unless the test asks:
        # warming all 26 at once costs two cores 20 s, taken from whatever runs beside it.
        env={**os.environ, "LOCAL_WARM": "0", **(environment or {}), "PORT": str(port)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


@contextmanager
def running_server(log: Path, environment: dict[str, str] | None = None) -> Iterator[Server]:
    """make run's server on a free port until the block ends. `environment` adds to this process's:
    MONGODB_URI and MONGODB_DATABASE choose the database (else an embedded one of its own),
    EXPIRY_INTERVAL_SECONDS the schedule."""
    port = free_port()
    server = Server(f"http://127.0.0.1:{port}", start_server(port, log, environment), log)
    try:
        server.wait_until_healthy()
        yield server
    finally:
        server.stop()
