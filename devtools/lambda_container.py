"""A local stand-in for one warm Lambda container: a process of its own that loads one function's
handler and serves one invocation at a time, for `make run` and `make invoke`.

A process per function, not a thread, because that is what Lambda gives each container and what
the handlers rely on: Powertools' event handler keeps the current event in a process-wide class
attribute (`BaseRouter.current_event`), so two invocations running in one process at once would
read each other's requests; and each container has its own MongoClient. The first invocation
starts the process and imports the handler (a cold start); later ones reuse it. An unhandled
exception or a crash is reported as Lambda reports a function error; a crashed or timed-out
container is replaced on the next invocation.

Each container serves the Extensions API (devtools/extensions_api.py) at AWS_LAMBDA_RUNTIME_API, as
Lambda does: a function whose layer registers an internal extension does its after-answer work
(publishing its events) once the answer has left: `invoke` returns the answer, and the container
tells the extension only when `answer_left` says so (make run: once the HTTP response is written),
then takes its next invocation when every extension asks for its next event, or ends at the
function's timeout.

When DATABASE_ANSWERS_DIR names a folder (`make load` sets it), each container process also counts
what the database answered its commands (`DatabaseAnswers`) and writes the counts there after every
invocation; when DATABASE_COMMANDS_LOG names a file, it appends a line for every command it starts,
with the time (`CommandLog`). Development aids only: the layer and the handlers know nothing of them.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from devtools.extensions_api import LocalExtensionsApi
from devtools.lambda_inputs import LambdaContext

if TYPE_CHECKING:
    from pymongo.monitoring import CommandFailedEvent, CommandStartedEvent, CommandSucceededEvent

INIT_SECONDS = 60  # starting Python and importing the handler (Lambda allows 10 s; this machine is slower)
IPC_SLACK_SECONDS = 0.5
ANSWERS_DIR_VARIABLE = "DATABASE_ANSWERS_DIR"
COMMANDS_LOG_VARIABLE = "DATABASE_COMMANDS_LOG"
ANSWER_LEFT = "answer-left"  # the parent's word that the last answer has reached its client


class FunctionError(RuntimeError):
    """The function raised, crashed or ran out of time (Lambda's "Unhandled" function error)."""


class LambdaContainer:
    """One function's container process, started on first use; one invocation at a time."""

    def __init__(self, name: str, code_dir: Path, timeout_seconds: float) -> None:
        self.name = name
        self.code_dir = code_dir
        self.timeout_seconds = timeout_seconds
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
                self._discard()
                raise FunctionError(f"{self.name} timed out after {self.timeout_seconds:g} s")
            try:
                outcome, value = connection.recv()
            except (EOFError, OSError):
                self._discard()
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
        """End the container now, as Lambda ends an environment: an invocation running in it (a
        scheduled job's run, minutes long at most) ends as a crash would, which its transactions
        make safe, instead of holding `make run`'s Ctrl-C until it is done."""
        process = self._process
        if process is not None and process.is_alive():
            process.kill()  # the invocation waiting on it, if any, reads the end of its pipe and stops
        with self._lock:
            self._discard()


class DatabaseAnswers:
    """What the database answered one container process: commits sent, and failed answers by error code
    (failed commands, and the write errors and write concern errors of the ones that succeeded).

    A pymongo command listener once `listen_for_database_answers` registers it; `write` puts the
    counts in `<folder>/<function>-<pid>.json`, replacing the previous ones."""

    def __init__(self, folder: Path, function: str) -> None:
        self.path = folder / f"{function}-{os.getpid()}.json"
        self._lock = threading.Lock()
        self.commits = 0
        self.failures: Counter[str] = Counter()  # "112 WriteConflict": count (not `failed`: the listener method)

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "commitTransaction":
            with self._lock:
                self.commits += 1

    def succeeded(self, event: CommandSucceededEvent) -> None:
        for error in event.reply.get("writeErrors", ()):
            self._count(error)
        if "writeConcernError" in event.reply:
            self._count(event.reply["writeConcernError"])

    def failed(self, event: CommandFailedEvent) -> None:
        self._count(event.failure if isinstance(event.failure, dict) else {})

    def _count(self, error: dict) -> None:
        code = error.get("code")
        label = f"{code} {error.get('codeName', '')}".strip() if code is not None else "no code (network error)"
        with self._lock:
            self.failures[label] += 1

    def write(self) -> None:
        with self._lock:
            counts = {"pid": os.getpid(), "commits": self.commits, "failed": dict(self.failures)}
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(counts))
        partial.replace(self.path)  # a reader never sees half a file


def listen_for_database_answers(function: str) -> DatabaseAnswers | None:
    """When DATABASE_ANSWERS_DIR is set, count this process's database answers: a global pymongo
    listener, registered before the handler creates its MongoClient. None otherwise."""
    folder = os.environ.get(ANSWERS_DIR_VARIABLE)
    if not folder:
        return None
    # Imported here: without the variable, a container imports pymongo with its handler, as in Lambda.
    from pymongo import monitoring

    class Listener(DatabaseAnswers, monitoring.CommandListener):
        pass

    listener = Listener(Path(folder), function)
    monitoring.register(listener)
    return listener


def listen_for_database_commands(function: str) -> None:
    """When DATABASE_COMMANDS_LOG is set, append a JSON line to it for every command this process
    starts: when (time.time()), which function and process, the command, its collection and the
    keys of its filter."""
    path = os.environ.get(COMMANDS_LOG_VARIABLE)
    if not path:
        return
    from pymongo import monitoring

    class CommandLog(monitoring.CommandListener):
        def started(self, event: CommandStartedEvent) -> None:
            command = event.command
            target = command.get(event.command_name)  # the collection, for a command on one
            line = {
                "at": time.time(),
                "function": function,
                "pid": os.getpid(),
                "command": event.command_name,
                "collection": target if isinstance(target, str) else None,
                "filter": sorted((command.get("filter") or command.get("query") or {}).keys()),
            }
            with open(path, "a") as log:
                log.write(json.dumps(line) + "\n")

        def succeeded(self, event) -> None:
            pass

        def failed(self, event) -> None:
            pass

    monitoring.register(CommandLog())


def serve(connection: Connection, name: str, code_dir: str, timeout_seconds: float) -> None:
    """The container's process: serve the Extensions API, load the handler as Lambda lays the code
    out, then answer events, each followed by the extensions' after-answer work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops its containers
    answers = listen_for_database_answers(name)
    listen_for_database_commands(name)
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
            waiting = _after_the_answer(connection, extensions, context)


def _after_the_answer(connection: Connection, extensions: LocalExtensionsApi, context: LambdaContext) -> object:
    """Once the answer has left (or the next event has come), deliver INVOKE to the extensions and
    wait until they are done; the next event if it came first, else None. Past the function's
    timeout the container ends, as Lambda ends the environment."""
    seconds = context.get_remaining_time_in_millis() / 1000
    next_event = None
    try:
        if connection.poll(seconds):
            message = connection.recv()
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
