"""Development aids of make run's containers (devtools/lambda_container.py), each switched on by a
variable of the server's environment; the layer and the handlers know nothing of them.

- DATABASE_ANSWERS_DIR (`make load`, the workload suites): each container process counts what the
  database answered its commands (`DatabaseAnswers`) and writes the counts there after every
  invocation.
- DATABASE_COMMANDS_LOG: each container appends a line for every command it starts, with the time.
- FUNCTION_KILLS_DIR (the bank workload's fault run): every file put in that folder is one order to
  kill a function in the middle of its transaction. The first container whose transaction then
  writes (an insert, update, findAndModify or delete inside a transaction, acknowledged) claims the
  order by removing the file and kills its own process with SIGKILL, as Lambda kills a function at
  its timeout or out of memory: no abort, no endSessions, its transaction left open on the server
  with the document it wrote, until the server's transaction lifetime ends it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pymongo.monitoring import CommandFailedEvent, CommandStartedEvent, CommandSucceededEvent

ANSWERS_DIR_VARIABLE = "DATABASE_ANSWERS_DIR"
COMMANDS_LOG_VARIABLE = "DATABASE_COMMANDS_LOG"
ANSWER_LEFT_LINE = "(answer left)"  # the commands log's line for the moment a container hears it
KILLS_DIR_VARIABLE = "FUNCTION_KILLS_DIR"
TRANSACTION_WRITES = frozenset({"insert", "update", "findAndModify", "delete"})


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


def listen_for_database_commands(function: str) -> Callable[[str], None]:
    """When DATABASE_COMMANDS_LOG is set, append a JSON line to it for every command this process
    starts: when (time.time()), which function and process, the command, its collection and the
    keys of its filter. The function returned writes a line of its own for a moment that is not a
    command (ANSWER_LEFT_LINE: the container heard that its answer has left); without the log, nothing."""
    path = os.environ.get(COMMANDS_LOG_VARIABLE)
    if not path:
        return lambda _moment: None
    from pymongo import monitoring

    def write(command: str, collection: object = None, filter_keys: list[str] | None = None) -> None:
        line = {
            "at": time.time(),
            "function": function,
            "pid": os.getpid(),
            "command": command,
            "collection": collection if isinstance(collection, str) else None,
            "filter": filter_keys or [],
        }
        with open(path, "a") as log:
            log.write(json.dumps(line) + "\n")

    class CommandLog(monitoring.CommandListener):
        def started(self, event: CommandStartedEvent) -> None:
            command = event.command
            keys = sorted((command.get("filter") or command.get("query") or {}).keys())
            write(event.command_name, command.get(event.command_name), keys)  # the collection, for a command on one

        def succeeded(self, event) -> None:
            pass

        def failed(self, event) -> None:
            pass

    monitoring.register(CommandLog())
    return write


def listen_for_kill_orders(function: str) -> None:
    """When FUNCTION_KILLS_DIR is set, obey its kill orders (the module's docstring)."""
    folder = os.environ.get(KILLS_DIR_VARIABLE)
    if not folder:
        return
    from pymongo import monitoring

    orders = Path(folder)

    class KillSwitch(monitoring.CommandListener):
        def __init__(self) -> None:
            self._writes: set[int] = set()  # request ids of writes inside a transaction, in flight

        def started(self, event: CommandStartedEvent) -> None:
            if event.command_name in TRANSACTION_WRITES and "txnNumber" in event.command:
                self._writes.add(event.request_id)

        def succeeded(self, event: CommandSucceededEvent) -> None:
            if event.request_id in self._writes:
                self._writes.discard(event.request_id)
                self._obey(event.command_name)

        def failed(self, event: CommandFailedEvent) -> None:
            self._writes.discard(event.request_id)

        def _obey(self, command: str) -> None:
            for order in sorted(orders.glob("*")):
                try:
                    order.unlink()  # the claim: of two containers, one removes it
                except FileNotFoundError:
                    continue
                line = f"{function}: killed after a {command} in its transaction ({order.name})"
                print(line, file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    monitoring.register(KillSwitch())
