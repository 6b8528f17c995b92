"""Runs a unit of work in one MongoDB multi-document transaction, retrying what is transient.

A transaction is retried from the start when the server says it may succeed on a retry:
the TransientTransactionError label (real MongoDB's write conflicts, aborted transactions,
network errors inside a transaction), the UnknownTransactionCommitResult label (the commit
may or may not have been applied) and a write conflict reported without a label (the
embedded server reports conflicts only at commit, as a plain "Write conflict" message).

Retrying an unknown commit is only safe because every money movement also inserts its
operation record under a unique _id in the same transaction: a retry of something that did
commit fails on that insert and is answered from the stored result (see service.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

WRITE_CONFLICT = 112


class RetryTransaction(Exception):
    """Raised by a unit of work that saw the data change under it; the runner retries it."""


def is_transient(error: BaseException) -> bool:
    if isinstance(error, RetryTransaction):
        return True
    if not isinstance(error, PyMongoError) or getattr(error, "timeout", False):
        return False
    if error.has_error_label("TransientTransactionError") or error.has_error_label("UnknownTransactionCommitResult"):
        return True
    return isinstance(error, OperationFailure) and (
        error.code == WRITE_CONFLICT or "write conflict" in str(error).lower()
    )


class TransactionRunner:
    def __init__(
        self,
        client: MongoClient,
        *,
        time_budget: float = 5.0,
        first_delay: float = 0.002,
        max_delay: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._time_budget = time_budget
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._sleep = sleep

    def run[T](self, work: Callable[[ClientSession], T]) -> T:
        """Run `work` in a transaction until it commits, fails for good, or the time budget is spent.

        On giving up, the last transient error is raised as it was (never an error from the
        abort that followed it).
        """
        deadline = time.monotonic() + self._time_budget
        attempt = 0
        while True:
            attempt += 1
            try:
                with (
                    self._client.start_session(causal_consistency=False) as session,
                    session.start_transaction(
                        read_concern=ReadConcern("snapshot"),
                        write_concern=WriteConcern("majority"),
                        read_preference=ReadPreference.PRIMARY,
                    ),
                ):
                    result = work(session)
                # Leaving the transaction block commits; an exception inside it aborts and propagates.
                return result
            except (PyMongoError, RetryTransaction) as error:
                if not is_transient(error):
                    raise
                delay = min(self._max_delay, self._first_delay * 2 ** (attempt - 1))
                delay = delay / 2 + random.uniform(0, delay / 2)  # jitter, not security
                if time.monotonic() + delay >= deadline:
                    raise
                self._sleep(delay)
