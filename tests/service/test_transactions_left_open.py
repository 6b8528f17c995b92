"""The service never leaves a transaction of its own open (transactions.py): one left open would
hold its wallet until the server's transaction lifetime ends, every other writer refused meanwhile.
Each way out of the runner ends it: a refusal (pymongo's abort), the caller's time running out in the
middle (the abort had none: the runner kills the session outside the spent deadline), a commit the
caller has no time left for (never started), and, in tests/service/test_faults.py, a connection lost
at the commit and a commit whose outcome stays unknown (killed too). After each, the next movement on
the wallet goes through at once: no write conflict met, nothing waited for."""

from __future__ import annotations

import pymongo
import pytest

from devtools.failpoints import slow
from wallet_service import DatabaseUnavailable, InsufficientFunds, Request
from wallet_service.storage import transactions
from wallet_service.storage.transactions import WRITE_CONFLICT


def commands(log) -> list[str]:
    return [next(iter(command)) for command in log.sent]


def assert_the_wallet_is_free(service, wallet: str, log) -> None:
    """A deposit now goes through on its first attempt: no write conflict on the wallet."""
    log.clear()
    before = service.get_wallet(wallet).balance
    service.deposit(wallet, 1)
    assert [answer for answer in log.answers if answer.code == WRITE_CONFLICT] == []
    assert commands(log).count("commitTransaction") == 1
    assert service.get_wallet(wallet).balance == before + 1


def test_a_refusal_aborts_its_transaction(service, service_commands):
    wallet = service.create_wallet("rider", "USD", opening_balance=5).wallet.id
    with pytest.raises(InsufficientFunds):
        service.withdraw(wallet, 6, Request(idempotency_key="too-much"))
    assert "abortTransaction" in commands(service_commands)
    assert_the_wallet_is_free(service, wallet, service_commands)


def test_running_out_of_time_mid_transaction_kills_the_session(service, failpoints, service_commands):
    """The insert after the wallet's update is held past the caller's deadline: its abort has no time,
    so the runner kills the session, in a context of its own."""
    wallet = service.create_wallet("rider", "USD").wallet.id
    service_commands.clear()
    with failpoints.armed(slow(1_000, "insert")), pytest.raises(DatabaseUnavailable), pymongo.timeout(0.4):
        service.deposit(wallet, 5)
    assert "killSessions" in commands(service_commands)
    assert_the_wallet_is_free(service, wallet, service_commands)
    assert service.get_wallet(wallet).balance == 1  # the late deposit never landed


def test_no_commit_is_started_without_time_to_finish_it(service, service_commands, monkeypatch):
    wallet = service.create_wallet("rider", "USD").wallet.id
    monkeypatch.setattr(transactions, "MIN_COMMIT_SECONDS", 60.0)  # any deadline is too close now
    service_commands.clear()
    with pytest.raises(DatabaseUnavailable, match="ran out of time before its commit"), pymongo.timeout(5):
        service.deposit(wallet, 5, Request(idempotency_key="late"))
    sent = commands(service_commands)
    assert "commitTransaction" not in sent
    assert "killSessions" in sent
    monkeypatch.undo()
    assert_the_wallet_is_free(service, wallet, service_commands)
    assert service.deposit(wallet, 5, Request(idempotency_key="late")).replayed is False  # nothing was applied
    assert service.get_wallet(wallet).balance == 6


def test_without_a_deadline_every_commit_is_started(service, service_commands):
    wallet = service.create_wallet("rider", "USD").wallet.id
    service.deposit(wallet, 5)
    assert "commitTransaction" in commands(service_commands)
