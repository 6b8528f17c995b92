"""A local stand-in for one warm Lambda container: a process of its own that loads one function's
handler and serves one invocation at a time, for `make run` and `make invoke`.

A process per function, not a thread, because that is what Lambda gives each container and what
the handlers rely on: Powertools' event handler keeps the current event in a process-wide class
attribute (`BaseRouter.current_event`), so two invocations running in one process at once would
read each other's requests; and each container has its own MongoClient. The first invocation
starts the process and imports the handler (a cold start); later ones reuse it. An unhandled
exception or a crash is reported as Lambda reports a function error; a crashed or timed-out
container is replaced on the next invocation.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import threading
import time
import traceback
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "wallet_core"
INIT_SECONDS = 60  # starting Python and importing the handler (Lambda allows 10 s; this machine is slower)
IPC_SLACK_SECONDS = 0.5


class FunctionError(RuntimeError):
    """The function raised, crashed or ran out of time (Lambda's "Unhandled" function error)."""


class LambdaContext:
    def __init__(self, function_name: str, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LambdaContainer:
    """One function's container process, started on first use; one invocation at a time."""

    def __init__(self, name: str, code_dir: Path, timeout_seconds: float) -> None:
        self.name = name
        self.code_dir = code_dir
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None

    def invoke(self, event: dict) -> object:
        with self._lock:
            connection = self._ensure_started()
            connection.send(event)
            # Lambda stops a function at its timeout (the cold start is not counted: it happened
            # before `ready`), and replaces the container.
            if not connection.poll(self.timeout_seconds + IPC_SLACK_SECONDS):
                self._discard()
                raise FunctionError(f"{self.name} timed out after {self.timeout_seconds:g} s")
            try:
                outcome, value = connection.recv()
            except (EOFError, OSError):
                self._discard()
                raise FunctionError(f"{self.name}'s container exited during the invocation") from None
            if outcome == "error":
                raise FunctionError(value)
            return value

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _ensure_started(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._connection is not None:
            return self._connection
        self._discard()
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=serve, args=(child, self.name, str(self.code_dir), self.timeout_seconds), name=self.name, daemon=True
        )
        process.start()
        child.close()
        self._process, self._connection = process, parent
        if not parent.poll(INIT_SECONDS):
            self._discard()
            raise FunctionError(f"{self.name} did not start within {INIT_SECONDS} s")
        try:
            parent.recv()  # "ready": the handler module is imported (or failed to, reported per invocation)
        except (EOFError, OSError):
            self._discard()
            raise FunctionError(f"{self.name}'s container exited while starting") from None
        return parent

    def _discard(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

    def stop(self) -> None:
        with self._lock:
            self._discard()


def serve(connection: Connection, name: str, code_dir: str, timeout_seconds: float) -> None:
    """The container's process: load the handler as Lambda lays the code out, then answer events."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops its containers
    for path in (str(LAYER), code_dir, str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    from devtools.functions import load_handler_module

    try:
        handler = load_handler_module(Path(code_dir), "app").lambda_handler
    except BaseException:
        handler = None
        failure = traceback.format_exc()
    connection.send("ready")
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if handler is None:
            connection.send(("error", f"{name} failed to initialise:\n{failure}"))
            continue
        try:
            connection.send(("ok", handler(event, LambdaContext(name, timeout_seconds))))
        except Exception:
            connection.send(("error", traceback.format_exc()))
