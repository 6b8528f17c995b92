"""A local stand-in for one warm Lambda container: a process of its own that loads one function's
handler and serves one invocation at a time, for `make run` and `make invoke`.

A process per function, not a thread, because that is what Lambda gives each container and what
the handlers rely on: Powertools' event handler keeps the current event in a process-wide class
attribute (`BaseRouter.current_event`), so two invocations running in one process at once would
read each other's requests; and each container has its own MongoClient. The first invocation
starts the process and imports the handler (a cold start); later ones reuse it. An unhandled
exception or a crash is reported as Lambda reports a function error; a crashed or timed-out
container is replaced on the next invocation, or at once when the container keeps warm (`make run`:
`warm` at start, then a replacement as soon as one is lost, as provisioned concurrency of one would).

Each container serves the Extensions API (devtools/extensions_api.py) at AWS_LAMBDA_RUNTIME_API, as
Lambda does: a function whose layer registers an internal extension does its after-answer work
(publishing its events) once the answer has left: `invoke` returns the answer, and the container
tells the extension only when `answer_left` says so (make run: once the HTTP response is written),
then takes its next invocation when every extension asks for its next event, or ends at the
function's timeout.

Development aids (counting the database's answers, logging its commands, kill orders) are in
devtools/container_aids.py; the layer and the handlers know nothing of them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from devtools.container_aids import (
    ANSWER_LEFT_LINE,
    listen_for_database_answers,
    listen_for_database_commands,
    listen_for_kill_orders,
)
from devtools.extensions_api import LocalExtensionsApi
from devtools.lambda_inputs import LambdaContext

INIT_SECONDS = 60  # starting Python and importing the handler (Lambda allows 10 s; this machine is slower)
IPC_SLACK_SECONDS = 0.5
ANSWER_LEFT = "answer-left"  # the parent's word that the last answer has reached its client


class FunctionError(RuntimeError):
    """The function raised, crashed or ran out of time (Lambda's "Unhandled" function error)."""


class LambdaContainer:
    """One function's container process, started on first use; one invocation at a time."""

    def __init__(self, name: str, code_dir: Path, timeout_seconds: float, *, keep_warm: bool = False) -> None:
        self.name = name
        self.code_dir = code_dir
        self.timeout_seconds = timeout_seconds
        self.keep_warm = keep_warm
        self._stopped = False
        self._lock = threading.Lock()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None

    def invoke(self, event: dict, *, answer_leaves_later: bool = False) -> object:
        """The handler's answer. The container's after-answer work starts once the answer has left:
        now, or (`answer_leaves_later`) when the caller says so with `answer_left`."""
        with self._lock:
            connection = self._ensure_started()
            connection.send(event)
            # Lambda stops a function at its timeout (the cold start is not counted: it happened
            # before `ready`), and replaces the container.
            if not connection.poll(self.timeout_seconds + IPC_SLACK_SECONDS):
                self._lost()
                raise FunctionError(f"{self.name} timed out after {self.timeout_seconds:g} s")
            try:
                outcome, value = connection.recv()
            except (EOFError, OSError):
                self._lost()
                raise FunctionError(f"{self.name}'s container exited during the invocation") from None
            if outcome == "error":
                raise FunctionError(value)
            if not answer_leaves_later:
                connection.send(ANSWER_LEFT)
            return value

    def answer_left(self) -> None:
        """The last answer has reached its client: the container may do its after-answer work."""
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(OSError):
                    self._connection.send(ANSWER_LEFT)

    def warm(self) -> None:
        """Start the container now if it is not running (the next invocation then finds it warm)."""
        with self._lock:
            if self._stopped:
                return
            with contextlib.suppress(FunctionError):  # reported again by the invocation that needs it
                self._ensure_started()

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

    def _lost(self) -> None:
        """The container crashed or timed out: discard it, and start its replacement now if warm."""
        self._discard()
        if self.keep_warm:
            threading.Thread(target=self.warm, name=f"{self.name}-replacement", daemon=True).start()

    def _discard(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        if self._connection is not None:
            self._connection.close()
        self._process = self._connection = None

    def stop(self) -> None:
        """End the container now, as Lambda ends an environment: an invocation running in it (a
        scheduled job's run, minutes long at most) ends as a crash would, which its transactions
        make safe, instead of holding `make run`'s Ctrl-C until it is done."""
        self._stopped = True
        process = self._process
        if process is not None and process.is_alive():
            process.kill()  # the invocation waiting on it, if any, reads the end of its pipe and stops
        with self._lock:
            self._discard()


def serve(connection: Connection, name: str, code_dir: str, timeout_seconds: float) -> None:
    """The container's process: serve the Extensions API, load the handler as Lambda lays the code
    out, then answer events, each followed by the extensions' after-answer work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops its containers
    answers = listen_for_database_answers(name)
    log_moment = listen_for_database_commands(name)
    listen_for_kill_orders(name)
    extensions = LocalExtensionsApi(name)
    os.environ["AWS_LAMBDA_RUNTIME_API"] = extensions.address
    from devtools.functions import load_handler_module

    try:
        handler = load_handler_module(Path(code_dir), "app").lambda_handler
    except BaseException:
        handler = None
        failure = traceback.format_exc()
    connection.send("ready")
    waiting: object = None  # an event that arrived while the last answer was still on its way
    while True:
        try:
            event = waiting if waiting is not None else connection.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        waiting = None
        if event == ANSWER_LEFT:
            continue  # for an answer whose work has already started (the next event came first)
        if handler is None:
            connection.send(("error", f"{name} failed to initialise:\n{failure}"))
            continue
        context = LambdaContext(name, timeout_seconds)
        try:
            outcome = ("ok", handler(event, context))
        except Exception:
            outcome = ("error", traceback.format_exc())
        if answers is not None:
            answers.write()  # before answering: once the client has its response, the counts include it
        connection.send(outcome)
        if extensions.registered:
            waiting = _after_the_answer(connection, extensions, context, log_moment)


def _after_the_answer(
    connection: Connection, extensions: LocalExtensionsApi, context: LambdaContext, log_moment: Callable[[str], None]
) -> object:
    """Once the answer has left (or the next event has come), deliver INVOKE to the extensions and
    wait until they are done; the next event if it came first, else None. Past the function's
    timeout the container ends, as Lambda ends the environment."""
    seconds = context.get_remaining_time_in_millis() / 1000
    next_event = None
    try:
        if connection.poll(seconds):
            message = connection.recv()
            if message == ANSWER_LEFT:
                log_moment(ANSWER_LEFT_LINE)
            next_event = None if message == ANSWER_LEFT else message
    except (EOFError, OSError):
        os._exit(0)  # the server has gone: so does its container
    deadline_ms = int((time.time() + context.get_remaining_time_in_millis() / 1000) * 1000)
    extensions.invoked(context.aws_request_id, deadline_ms)
    if not extensions.idle(context.get_remaining_time_in_millis() / 1000):
        print(
            f"{context.function_name}: the work after the answer outlasted the timeout; ending the container",
            file=sys.stderr,
            flush=True,
        )
        os._exit(1)
    return next_event
