"""Faults injected by the database itself: MongoDB's `failCommand` failpoint.

`configureFailPoint` is a test command of `mongod` (started with `--setParameter
enableTestCommands=1`) and of the embedded SecantusDB (`--enable-test-commands`), so every fault
test runs unchanged against either. The faults the suite uses, and what each makes the client see:

- `drop_connection`: the server closes the connection before running the command (a network
  error; on `commitTransaction` twice in a row, a commit that never happened but whose outcome
  the driver cannot know);
- `unknown_commit`: `commitTransaction` runs and commits, then its answer carries a write concern
  error (64, WriteConcernFailed): the commit happened, the driver reports
  UnknownTransactionCommitResult;
- `slow`: the server waits before running the command, past the client's timeout: the client gives
  up, the command runs later anyway;
- `write_conflict`: the command fails with 112 WriteConflict; the server adds the
  TransientTransactionError label inside a transaction, as a real conflict has it.

A failpoint is server-wide and there is one `failCommand` at a time; `app_name` confines it to one
client's connections (the service's MongoClient says `appname=wallet`), so the test's own client
keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

WRITE_CONCERN_FAILED = {
    "code": 64,
    "codeName": "WriteConcernFailed",
    "errmsg": "waiting for replication timed out",
    "errInfo": {"wtimeout": True},
}


@dataclass(frozen=True)
class Fault:
    """The `data` of one failCommand failpoint (see mongod's failCommand)."""

    commands: tuple[str, ...]
    error_code: int | None = None
    close_connection: bool = False
    block_ms: int = 0
    write_concern_error: dict[str, Any] | None = None

    def data(self, app_name: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {"failCommands": list(self.commands)}
        if self.error_code is not None:
            data["errorCode"] = self.error_code
        if self.close_connection:
            data["closeConnection"] = True
        if self.block_ms:
            data |= {"blockConnection": True, "blockTimeMS": self.block_ms}
        if self.write_concern_error is not None:
            data["writeConcernError"] = self.write_concern_error
        if app_name is not None:
            data["appName"] = app_name
        return data


def drop_connection(*commands: str) -> Fault:
    return Fault(commands, close_connection=True)


def unknown_commit() -> Fault:
    return Fault(("commitTransaction",), write_concern_error=WRITE_CONCERN_FAILED)


def slow(milliseconds: int, *commands: str) -> Fault:
    return Fault(commands, block_ms=milliseconds)


def write_conflict(*commands: str) -> Fault:
    return Fault(commands, error_code=112)


class FailPoints:
    """Arms and disarms the failCommand failpoint of the server `client` talks to."""

    def __init__(self, client: MongoClient, *, app_name: str | None = None) -> None:
        self._client = client
        self.app_name = app_name

    def arm(self, fault: Fault, *, times: int = 1, skip: int = 0) -> None:
        """Fire on the next `times` matching commands after `skip` of them."""
        mode: dict[str, int] = {"times": times}
        if skip:
            mode["skip"] = skip
        self._configure(mode, fault.data(self.app_name))

    def always(self, fault: Fault) -> None:
        self._configure("alwaysOn", fault.data(self.app_name))

    def off(self) -> None:
        self._configure("off", {})

    @contextmanager
    def armed(self, fault: Fault, *, times: int = 1, skip: int = 0) -> Iterator[None]:
        self.arm(fault, times=times, skip=skip)
        try:
            yield
        finally:
            self.off()

    def _configure(self, mode: object, data: dict[str, Any]) -> None:
        self._client.admin.command({"configureFailPoint": "failCommand", "mode": mode, "data": data})
