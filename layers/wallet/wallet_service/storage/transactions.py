"""Runs a unit of work in one MongoDB multi-document transaction, retrying what is transient.

A transaction is retried from the start when the server says it may succeed on a retry: the
TransientTransactionError label (write conflicts, aborted transactions, network errors inside a
transaction, a primary stepping down) and the UnknownTransactionCommitResult label (the commit
may or may not have been applied).

Retrying an unknown commit is only safe because every money movement also inserts its
operation record under a unique _id in the same transaction: a retry of something that did
commit fails on that insert and is answered from the stored result (see service.py).

The runner never leaves a transaction of its own open: one left open holds its writes until the
server's transaction lifetime ends (limits.TRANSACTION_LIFETIME_SECONDS, 10 s as the database is
set up; 60 s is mongod's default), and every other writer of the same documents meets a write
conflict until then. pymongo aborts an attempt that raised, but its abort is best effort and may not
reach the server: the connection broke, the commit's outcome is unknown, or the caller's time
(pymongo.timeout) ran out, leaving none for the abort. After each of those the runner kills the
attempt's session (`killSessions`, outside the caller's spent deadline, bounded on its own), which
aborts a transaction that never committed and does nothing to one that did. And it does not start a
commit it has no time to finish: with less than MIN_COMMIT_SECONDS left before the caller's deadline
it aborts instead and answers DatabaseUnavailable. A process killed outright is what the lifetime
is for.

What a unit of work wants done once its transaction has committed, and only then (naming the
events it wrote to whoever publishes them), it registers with `on_commit`: an attempt that aborts
forgets its callbacks with everything else it did.
"""

from __future__ import annotations

import contextvars
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar

import pymongo
from pymongo import MongoClient, _csot
from pymongo.client_session import ClientSession
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError, WTimeoutError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from ..ledger.errors import Conflict, DatabaseUnavailable, WalletError
from ..ledger.limits import CONFLICT_BUDGET_SECONDS

WRITE_CONFLICT = 112
KILL_SESSION_SECONDS = 2.0
# When the caller's own time is up (it must still answer): one round trip, no server rediscovery.
KILL_SESSION_LATE_SECONDS = 0.3
# A commit is one round trip and a majority write: with less time left than this, abort instead.
MIN_COMMIT_SECONDS = 0.1


class NoTimeToCommit(DatabaseUnavailable):
    """The caller's deadline is too close to start a commit: the attempt was aborted instead."""


# The callbacks of the transaction attempt running in this context (None outside any).
_commit_callbacks: ContextVar[list[Callable[[], None]] | None] = ContextVar("commit_callbacks", default=None)


def on_commit(callback: Callable[[], None]) -> None:
    """Call `callback` once the transaction attempt running now has committed; outside a transaction, never."""
    callbacks = _commit_callbacks.get()
    if callbacks is not None:
        callbacks.append(callback)


class RetryTransaction(Exception):
    """Raised by a unit of work that saw the data change under it; the runner retries it."""


def is_transient(error: BaseException) -> bool:
    if isinstance(error, RetryTransaction):
        return True
    if not isinstance(error, PyMongoError):
        return False
    # The caller's deadline (pymongo.timeout) has passed: no time is left for a retry. A write
    # concern timeout (WTimeoutError, 64 on a commit) is the server's, not the caller's: the commit's
    # outcome is unknown and a retry finds out.
    if getattr(error, "timeout", False) and not isinstance(error, WTimeoutError):
        return False
    return error.has_error_label("TransientTransactionError") or error.has_error_label("UnknownTransactionCommitResult")


def is_contention(error: BaseException) -> bool:
    """Another transaction holds what this one writes (a write conflict), or changed what it read."""
    if isinstance(error, RetryTransaction):
        return True
    return isinstance(error, OperationFailure) and error.code == WRITE_CONFLICT


def may_leave_transaction_open(error: BaseException) -> bool:
    """The attempt's transaction may still be open on the server: its connection broke, its commit's
    outcome is unknown, or the caller's time ran out (pymongo's abort then had none). After any
    other failure pymongo's abort reached the server, or the server aborted it itself."""
    if isinstance(error, NoTimeToCommit | ConnectionFailure) or _out_of_time(error):
        return True
    return isinstance(error, PyMongoError) and error.has_error_label("UnknownTransactionCommitResult")


def _out_of_time(error: BaseException) -> bool:
    return bool(getattr(error, "timeout", False)) and not isinstance(error, WTimeoutError)


class TransactionRunner:
    def __init__(
        self,
        client: MongoClient,
        *,
        time_budget: float = 5.0,
        conflict_budget: float = CONFLICT_BUDGET_SECONDS,
        first_delay: float = 0.002,
        max_delay: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._time_budget = time_budget
        self._conflict_budget = conflict_budget
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._sleep = sleep

    def run[T](self, work: Callable[[ClientSession], T], *, wait_out_conflicts: bool = False) -> T:
        """Run `work` in a transaction until it commits, fails for good, or the time budget is spent;
        write conflicts only until the conflict budget is, from the first of them, unless
        `wait_out_conflicts` (a job's batch: nobody waits on its answer, and one given up on waits
        for the job's next run).

        On giving up, the last transient error is raised as it was (never an error from the
        abort that followed it).
        """
        deadline = time.monotonic() + self._time_budget
        contended_until = None  # set by the first conflict: when to stop retrying them
        attempt = 0
        while True:
            attempt += 1
            session_id = None
            callbacks: list[Callable[[], None]] = []
            token = _commit_callbacks.set(callbacks)
            try:
                with (
                    self._client.start_session(causal_consistency=False) as session,
                    session.start_transaction(
                        read_concern=ReadConcern("snapshot"),
                        write_concern=WriteConcern("majority"),
                        read_preference=ReadPreference.PRIMARY,
                    ),
                ):
                    session_id = session.session_id
                    result = work(session)
                    _leave_time_to_commit()
                # Leaving the transaction block commits; an exception inside it aborts and propagates.
            except (PyMongoError, RetryTransaction, NoTimeToCommit) as error:
                if session_id is not None and may_leave_transaction_open(error):
                    self._kill_session(session_id, late=isinstance(error, NoTimeToCommit) or _out_of_time(error))
                if not is_transient(error):
                    raise
                delay = min(self._max_delay, self._first_delay * 2 ** (attempt - 1))
                delay = delay / 2 + random.uniform(0, delay / 2)  # jitter, not security
                now = time.monotonic()
                if is_contention(error) and contended_until is None and not wait_out_conflicts:
                    contended_until = now + self._conflict_budget
                if now + delay >= min(deadline, contended_until or deadline):
                    raise
                self._sleep(delay)
                continue
            finally:
                _commit_callbacks.reset(token)
            for callback in callbacks:
                callback()
            return result

    def _kill_session(self, session_id: dict, *, late: bool = False) -> None:
        """Abort whatever the session left open on the server, also when giving up: a transaction
        left open would block every later movement on its wallet until the server's lifetime limit.
        Best effort, in a context of its own (the caller's pymongo.timeout may be spent: that is one
        of the reasons to kill), for at most KILL_SESSION_SECONDS (after a broken connection the
        driver first rediscovers the server, up to half a second), or KILL_SESSION_LATE_SECONDS when
        the caller's time is up; with no primary at all (an outage, or a step-down, which aborts
        open transactions itself) it gives up."""
        seconds = KILL_SESSION_LATE_SECONDS if late else KILL_SESSION_SECONDS

        def kill() -> None:
            with suppress(PyMongoError), pymongo.timeout(seconds):
                self._client.admin.command("killSessions", [session_id])

        contextvars.Context().run(kill)


def _leave_time_to_commit() -> None:
    """Refuse to start a commit the caller's deadline (pymongo.timeout) leaves no time for."""
    left = _csot.remaining()  # None: no deadline
    if left is not None and left < MIN_COMMIT_SECONDS:
        raise NoTimeToCommit(
            "the request ran out of time before its commit; nothing was applied: retry with the same idempotency key"
        )


def translated(error: BaseException) -> WalletError | None:
    """The taxonomy's name for a database failure that outlived the retries; None for anything else."""
    if isinstance(error, ConnectionFailure) or getattr(error, "timeout", False):
        return DatabaseUnavailable("the database could not be reached in time; retry with the same idempotency key")
    if is_transient(error):
        return Conflict("concurrent updates kept colliding; retry with the same idempotency key")
    return None


@contextmanager
def database_errors() -> Iterator[None]:
    """The one place where a database error becomes a WalletError: around every database call the
    service makes, transactions and plain reads alike. What it cannot name propagates as it is."""
    try:
        yield
    except (PyMongoError, RetryTransaction) as error:
        name = translated(error)
        if name is None:
            raise
        raise name from error
