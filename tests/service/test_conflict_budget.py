"""A wallet another transaction holds (limits.CONFLICT_BUDGET_SECONDS, transactions.py): a call
retries its write conflicts for the conflict budget, then answers Conflict (409 with Retry-After over
HTTP) and changes nothing; it does not spin for the whole time budget, which is for a database that
is away. An expiry batch waits conflicts out for the whole budget: nobody waits on its answer.

The holder here is a transaction this test opens on the wallet and leaves open, as a function killed
in the middle of its transaction leaves one until the server's lifetime ends it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.database import Database

from tests.ledger_checks import assert_ledger_consistent, snapshot
from wallet_service import Conflict, Request, WalletService
from wallet_service.ledger.limits import CONFLICT_BUDGET_SECONDS
from wallet_service.storage.documents import WALLETS, utc_now_ms
from wallet_service.storage.transactions import WRITE_CONFLICT

PATIENT_BUDGET = 60.0  # a time budget no call here may spend: conflicts must end it long before


@contextmanager
def wallet_held(client: MongoClient, database: Database, wallet_id: str, seconds: float) -> Iterator[None]:
    """The wallet written in a transaction left open for `seconds` (or until the block ends), then aborted."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with client.start_session() as session:
            session.start_transaction()
            wallets = database[WALLETS]
            wallets.update_one({"_id": ObjectId(wallet_id)}, {"$set": {"heldByTest": True}}, session=session)
            holding.set()
            release.wait(seconds)
            session.abort_transaction()

    holder = threading.Thread(target=hold, name="holder")
    holder.start()
    try:
        assert holding.wait(10), "the holder did not write the wallet"
        yield
    finally:
        release.set()
        holder.join()


def test_a_movement_on_a_held_wallet_answers_conflict_after_the_conflict_budget(
    service_database: Database, mongo_client: MongoClient, database: Database, service_commands
) -> None:
    service = WalletService(service_database, time_budget=PATIENT_BUDGET)
    wallet = service.create_wallet("rider", "USD", opening_balance=100).wallet.id
    before = snapshot(database)
    with wallet_held(mongo_client, database, wallet, PATIENT_BUDGET):
        service_commands.clear()
        started = time.monotonic()
        with pytest.raises(Conflict) as raised:
            service.withdraw(wallet, 10, Request(idempotency_key="on-a-held-wallet"))
        waited = time.monotonic() - started
    assert raised.value.__cause__.code == WRITE_CONFLICT
    conflicts = [answer for answer in service_commands.answers if answer.code == WRITE_CONFLICT]
    assert len(conflicts) >= 2, "the call should have retried its conflicts before giving up"
    # Given up within the conflict budget (no retry is started that would end past it), nowhere near
    # the time budget (a loose bound: this machine is slow).
    assert CONFLICT_BUDGET_SECONDS / 2 <= waited < PATIENT_BUDGET / 4, waited
    assert snapshot(database) == before
    # Nothing was kept under the key: once the wallet is free, the same key applies the call once.
    assert service.withdraw(wallet, 10, Request(idempotency_key="on-a-held-wallet")).replayed is False
    assert service.get_wallet(wallet).balance == 90
    assert_ledger_consistent(database)


def test_an_expiry_batch_waits_out_a_held_wallet(
    service: WalletService, mongo_client: MongoClient, database: Database
) -> None:
    wallet = service.create_wallet("rider", "USD", opening_balance=100).wallet.id
    hold = service.create_reservation(wallet, 30, ttl_seconds=60).reservation.id
    with wallet_held(mongo_client, database, wallet, 4 * CONFLICT_BUDGET_SECONDS):
        report = service.expire_reservations(now=utc_now_ms() + timedelta(hours=1))
    assert (report.expired, report.failed) == (1, 0), report
    assert service.get_reservation(hold).status == "EXPIRED"
    assert service.get_wallet(wallet).held == 0
    assert_ledger_consistent(database)
