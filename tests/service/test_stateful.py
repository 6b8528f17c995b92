"""Random sequences of every operation, checked step by step against a plain-Python model.

The model knows each wallet's balance, held amount, status and entry count, each hold's state
and figures, the clock, and every idempotency key that committed. After every step the service's
answer (or error) must be the model's, every wallet and hold read back must match it, the number
of operation records must equal the number of calls that moved money, and the whole ledger must
be consistent.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pymongo import MongoClient

from tests.ledger_checks import assert_ledger_consistent, platform_balances, total_money
from wallet_service import (
    IdempotencyKeyMismatch,
    InsufficientFunds,
    InvalidState,
    Movement,
    NotFound,
    ReservationStatus,
    ValidationFailed,
    Wallet,
    WalletExists,
    WalletFrozen,
    WalletService,
    WalletStatus,
)
from wallet_service.documents import LEDGER, OPERATION, utc_now_ms
from wallet_service.limits import MAX_TTL_SECONDS

OWNERS = ("ana", "ben")
CURRENCIES = ("USD", "EUR")
SLOTS = [(owner, currency) for owner in OWNERS for currency in CURRENCIES]
MISSING_ID = "0" * 24

# The fourth wallet does not exist until create_wallet opens it: pick the first three more often.
slots = st.sampled_from([*SLOTS[:3], *SLOTS[:3], SLOTS[3]])
amounts = st.integers(1, 1_500)
keyed = st.booleans()
# Act without an owner (administrative), as the owner, or as the other owner (who sees nothing).
acting = st.sampled_from([None, None, None, "self", "other"])
picks = st.integers(0, 10**6)


@dataclass
class ModelWallet:
    id: str
    owner: str
    currency: str
    balance: int = 0
    held: int = 0
    frozen: bool = False
    sequence: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.held


@dataclass
class ModelHold:
    id: str
    wallet: ModelWallet
    amount: int
    expires_at: datetime
    status: ReservationStatus = ReservationStatus.HELD
    captured: int = 0
    released: int = 0


@dataclass(frozen=True)
class KeyedCall:
    """A call that committed under an idempotency key, and how to make it again."""

    owner: str
    key: str
    signature: tuple  # the operation and its parameters: equal signatures are the same request
    invoke: Callable[[], Movement]
    result: Movement


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, client: MongoClient) -> None:
        super().__init__()
        self.client = client
        self.name = f"wallet_stateful_{uuid.uuid4().hex[:12]}"
        self.database = client[self.name]
        # Starts at the real time and only moves forward, so operation records (kept 24 hours
        # after their creation by a TTL index) are never purged during an example.
        self.now = utc_now_ms()
        self.service = WalletService(self.database, time_budget=20.0, clock=lambda: self.now)
        self.service.ensure_indexes()
        self.wallets: dict[tuple[str, str], ModelWallet] = {}
        self.holds: list[ModelHold] = []
        self.keyed: dict[tuple[str, str], KeyedCall] = {}
        self.operations = 0
        self.counter = itertools.count()
        # Double entry: each platform account's balance per currency, moved by the same steps.
        self.platform: dict[tuple[str, str], int] = {}

    def teardown(self) -> None:
        self.client.drop_database(self.name)

    # ---------------------------------------------------------------- helpers

    def key(self, use_key: bool) -> str | None:
        return f"key-{next(self.counter)}" if use_key else None

    def wallet_id(self, slot: tuple[str, str]) -> str:
        wallet = self.wallets.get(slot)
        return MISSING_ID if wallet is None else wallet.id

    def hold_at(self, pick: int) -> ModelHold | None:
        """Mostly a hold that is still HELD, sometimes any hold, now and then one that does not exist."""
        held = [hold for hold in self.holds if hold.status is ReservationStatus.HELD]
        choice = pick % 8
        if choice == 0:
            return None
        if choice < 6 and held:
            return held[pick // 8 % len(held)]
        return self.holds[pick // 8 % len(self.holds)]

    @staticmethod
    def owner_argument(acting_as: str | None, owner: str | None) -> str | None:
        if acting_as is None or owner is None:
            return None
        return owner if acting_as == "self" else next(other for other in OWNERS if other != owner)

    def committed(self, owner: str, key: str | None, signature: tuple, invoke: Callable[[], Movement], result):
        """Book a call that moved money: one more operation record, and its key for later replays."""
        assert result.replayed is False
        self.operations += 1
        if key is not None:
            self.keyed[(owner, key)] = KeyedCall(owner, key, signature, invoke, result)

    def expect_account_entries(self, result: Movement, wallet: ModelWallet, expected: list[tuple[str, str, int]]):
        """The movement's other side, as (account, type, balance delta), booked on the model's accounts."""
        got = [(entry.account, entry.type.value, entry.balance_delta) for entry in result.account_entries]
        assert got == expected, result.account_entries
        for entry in result.account_entries:
            assert (entry.currency, entry.wallet_id, entry.operation_id) == (
                wallet.currency,
                wallet.id,
                result.operation_id,
            )
        for account, _, delta in expected:
            self.platform[account, wallet.currency] = self.platform.get((account, wallet.currency), 0) + delta

    @staticmethod
    def expect_entries(result: Movement, expected: list[tuple]) -> None:
        """Entries as (wallet, type, amount, balance delta, held delta, (balance, held, sequence) after)."""
        assert len(result.entries) == len(expected), result.entries
        assert len({entry.operation_id for entry in result.entries} | {result.operation_id}) == 1
        for entry, (wallet, kind, amount, balance_delta, held_delta, after) in zip(
            result.entries, expected, strict=True
        ):
            assert (entry.wallet_id, entry.type.value, entry.amount) == (wallet.id, kind, amount), entry
            assert (entry.balance_delta, entry.held_delta) == (balance_delta, held_delta), entry
            assert (entry.balance_after, entry.held_after, entry.sequence) == after, entry

    @staticmethod
    def expect_wallet(wallet: Wallet | None, model: ModelWallet) -> None:
        assert wallet is not None
        assert (wallet.id, wallet.owner_id, wallet.currency) == (model.id, model.owner, model.currency)
        assert (wallet.balance, wallet.held, wallet.sequence) == (model.balance, model.held, model.sequence), (
            wallet,
            model,
        )
        assert wallet.status is (WalletStatus.FROZEN if model.frozen else WalletStatus.ACTIVE)
        assert wallet.available == model.available

    @staticmethod
    def expect_hold(reservation, model: ModelHold) -> None:
        assert reservation is not None
        assert (reservation.id, reservation.wallet_id, reservation.amount) == (model.id, model.wallet.id, model.amount)
        assert reservation.status is model.status, (reservation, model)
        assert (reservation.captured_amount, reservation.released_amount) == (model.captured, model.released)
        assert reservation.expires_at == model.expires_at

    @staticmethod
    def step(wallet: ModelWallet, balance_delta: int, held_delta: int) -> tuple[int, int, int]:
        """Apply one entry to the model wallet and return its (balance after, held after, sequence)."""
        wallet.balance += balance_delta
        wallet.held += held_delta
        wallet.sequence += 1
        return wallet.balance, wallet.held, wallet.sequence

    # ---------------------------------------------------------------- wallets

    @initialize(openings=st.lists(st.integers(0, 3_000), min_size=3, max_size=3), use_key=keyed)
    def first_wallets(self, openings: list[int], use_key: bool) -> None:
        """Three of the four wallets exist from the start; the create_wallet rule may open the fourth."""
        for slot, opening in zip(SLOTS[:3], openings, strict=True):
            self.create_wallet(slot, opening, use_key)

    @rule(slot=slots, opening=st.one_of(st.just(0), st.integers(1, 3_000)), use_key=keyed)
    def create_wallet(self, slot: tuple[str, str], opening: int, use_key: bool) -> None:
        owner, currency = slot
        key = self.key(use_key)

        def invoke() -> Movement:
            return self.service.create_wallet(owner, currency, opening_balance=opening, idempotency_key=key)

        existing = self.wallets.get(slot)
        if existing is not None:
            with pytest.raises(WalletExists) as raised:
                invoke()
            assert raised.value.existing_wallet_id == existing.id
            return
        result = invoke()
        wallet = ModelWallet(result.wallet.id, owner, currency)
        self.wallets[slot] = wallet
        expected = []
        if opening:
            expected.append((wallet, "DEPOSIT", opening, opening, 0, self.step(wallet, opening, 0)))
        self.expect_entries(result, expected)
        self.expect_account_entries(result, wallet, [("@funding", "FUNDING", -opening)] if opening else [])
        self.expect_wallet(result.wallet, wallet)
        self.committed(owner, key, ("create_wallet", owner, currency, opening), invoke, result)

    @rule(slot=slots, frozen=st.booleans(), acting_as=acting)
    def set_frozen(self, slot: tuple[str, str], frozen: bool, acting_as: str | None) -> None:
        wallet = self.wallets.get(slot)
        owner_id = self.owner_argument(acting_as, wallet and wallet.owner)
        method = self.service.freeze_wallet if frozen else self.service.unfreeze_wallet
        if wallet is None or acting_as == "other":
            with pytest.raises(NotFound):
                method(self.wallet_id(slot), owner_id=owner_id)
            return
        wallet.frozen = frozen
        self.expect_wallet(method(wallet.id, owner_id=owner_id), wallet)

    # ---------------------------------------------------------------- deposits, withdrawals, transfers

    @rule(slot=slots, amount=amounts, use_key=keyed, acting_as=acting)
    def deposit(self, slot: tuple[str, str], amount: int, use_key: bool, acting_as: str | None) -> None:
        self.deposit_with_key(slot, amount, self.key(use_key), acting_as)

    def deposit_with_key(self, slot: tuple[str, str], amount: int, key: str | None, acting_as: str | None) -> None:
        wallet = self.wallets.get(slot)
        wallet_id = self.wallet_id(slot)
        owner_id = self.owner_argument(acting_as, wallet and wallet.owner)

        def invoke() -> Movement:
            return self.service.deposit(wallet_id, amount, idempotency_key=key, owner_id=owner_id)

        if wallet is None or acting_as == "other":
            with pytest.raises(NotFound):
                invoke()
            return
        signature = ("deposit", wallet.id, amount)
        earlier = self.keyed.get((wallet.owner, key)) if key is not None else None
        if earlier is not None:
            # The key was used by this owner before: the same request replays, another is refused.
            if earlier.signature == signature:
                result = invoke()
                assert result.replayed is True
                assert result.model_dump(exclude={"replayed"}) == earlier.result.model_dump(exclude={"replayed"})
            else:
                with pytest.raises(IdempotencyKeyMismatch):
                    invoke()
            return
        result = invoke()
        after = self.step(wallet, amount, 0)
        self.expect_entries(result, [(wallet, "DEPOSIT", amount, amount, 0, after)])
        self.expect_account_entries(result, wallet, [("@funding", "FUNDING", -amount)])
        self.expect_wallet(result.wallet, wallet)
        self.committed(wallet.owner, key, signature, invoke, result)

    def refusal_for_debit(self, wallet: ModelWallet | None, amount: int, acting_as: str | None) -> type | None:
        if wallet is None or acting_as == "other":
            return NotFound
        if wallet.frozen:
            return WalletFrozen
        if wallet.available < amount:
            return InsufficientFunds
        return None

    @rule(slot=slots, amount=amounts, use_key=keyed, acting_as=acting)
    def withdraw(self, slot: tuple[str, str], amount: int, use_key: bool, acting_as: str | None) -> None:
        wallet = self.wallets.get(slot)
        wallet_id = self.wallet_id(slot)
        key = self.key(use_key)
        owner_id = self.owner_argument(acting_as, wallet and wallet.owner)

        def invoke() -> Movement:
            return self.service.withdraw(wallet_id, amount, idempotency_key=key, owner_id=owner_id)

        refusal = self.refusal_for_debit(wallet, amount, acting_as)
        if refusal is not None:
            with pytest.raises(refusal) as raised:
                invoke()
            if refusal is InsufficientFunds:
                assert wallet is not None
                assert (raised.value.available, raised.value.requested) == (wallet.available, amount)
            return
        assert wallet is not None
        result = invoke()
        after = self.step(wallet, -amount, 0)
        self.expect_entries(result, [(wallet, "WITHDRAWAL", amount, -amount, 0, after)])
        self.expect_account_entries(result, wallet, [("@payouts", "PAYOUT", amount)])
        self.expect_wallet(result.wallet, wallet)
        self.committed(wallet.owner, key, ("withdraw", wallet.id, amount), invoke, result)

    @rule(
        source_slot=slots,
        towards=st.sampled_from(["other owner", "other owner", "other owner", "other currency", "itself"]),
        amount=amounts,
        use_key=keyed,
        acting_as=acting,
    )
    def transfer(
        self, source_slot: tuple[str, str], towards: str, amount: int, use_key: bool, acting_as: str | None
    ) -> None:
        owner, currency = source_slot
        if towards == "other owner":
            destination_slot = (next(other for other in OWNERS if other != owner), currency)
        elif towards == "other currency":
            destination_slot = (owner, next(other for other in CURRENCIES if other != currency))
        else:
            destination_slot = source_slot
        source = self.wallets.get(source_slot)
        destination = self.wallets.get(destination_slot)
        source_id, destination_id = self.wallet_id(source_slot), self.wallet_id(destination_slot)
        key = self.key(use_key)
        owner_id = self.owner_argument(acting_as, source and source.owner)

        def invoke() -> Movement:
            return self.service.transfer(source_id, destination_id, amount, idempotency_key=key, owner_id=owner_id)

        if source_id == destination_id:
            refusal: type | None = ValidationFailed
        else:
            refusal = self.refusal_for_debit(source, amount, acting_as)
            if refusal is None:
                assert source is not None
                if destination is None:
                    refusal = NotFound
                elif destination.currency != source.currency:
                    refusal = ValidationFailed
        if refusal is not None:
            with pytest.raises(refusal):
                invoke()
            return
        assert source is not None
        assert destination is not None
        result = invoke()
        out_after = self.step(source, -amount, 0)
        in_after = self.step(destination, amount, 0)
        expected = [(source, "TRANSFER_OUT", amount, -amount, 0, out_after)]
        # An owner sees the other side only when it is theirs.
        hidden = owner_id is not None and destination.owner != owner_id
        if not hidden:
            expected.append((destination, "TRANSFER_IN", amount, amount, 0, in_after))
            self.expect_wallet(result.counterparty_wallet, destination)
        else:
            assert result.counterparty_wallet is None
        self.expect_entries(result, expected)
        assert result.account_entries == ()  # wallet to wallet: balanced on its own
        self.expect_wallet(result.wallet, source)
        self.committed(source.owner, key, ("transfer", source.id, destination.id, amount), invoke, result)

    # ---------------------------------------------------------------- reservations

    @rule(
        slot=slots,
        amount=st.integers(1, 1_000),
        ttl=st.sampled_from([1, 1, 2, 60, 3_600, 86_400]),
        use_key=keyed,
        acting_as=acting,
    )
    def create_reservation(
        self, slot: tuple[str, str], amount: int, ttl: int, use_key: bool, acting_as: str | None
    ) -> None:
        wallet = self.wallets.get(slot)
        wallet_id = self.wallet_id(slot)
        key = self.key(use_key)
        owner_id = self.owner_argument(acting_as, wallet and wallet.owner)

        def invoke() -> Movement:
            return self.service.create_reservation(
                wallet_id, amount, ttl_seconds=ttl, idempotency_key=key, owner_id=owner_id
            )

        refusal = self.refusal_for_debit(wallet, amount, acting_as)
        if refusal is not None:
            with pytest.raises(refusal):
                invoke()
            return
        assert wallet is not None
        result = invoke()
        assert result.reservation is not None
        hold = ModelHold(result.reservation.id, wallet, amount, self.now + timedelta(seconds=ttl))
        self.holds.append(hold)
        after = self.step(wallet, 0, amount)
        self.expect_entries(result, [(wallet, "HOLD", amount, 0, amount, after)])
        assert result.account_entries == ()  # held money stays the wallet's
        assert result.entries[0].reservation_id == hold.id
        self.expect_wallet(result.wallet, wallet)
        self.expect_hold(result.reservation, hold)
        self.committed(wallet.owner, key, ("create_reservation", wallet.id, amount, ttl), invoke, result)

    def refusal_for_closing(self, hold: ModelHold | None, acting_as: str | None) -> type | None:
        if hold is None or acting_as == "other":
            return NotFound
        if hold.status is not ReservationStatus.HELD:
            return InvalidState
        return None

    def close(self, hold: ModelHold, captured: int, result: Movement) -> None:
        wallet = hold.wallet
        released = hold.amount - captured
        hold.status = ReservationStatus.CAPTURED if captured else ReservationStatus.RELEASED
        hold.captured, hold.released = captured, released
        expected = []
        if captured:
            expected.append(
                (wallet, "CAPTURE", captured, -captured, -captured, self.step(wallet, -captured, -captured))
            )
        if released:
            expected.append((wallet, "RELEASE", released, 0, -released, self.step(wallet, 0, -released)))
        self.expect_entries(result, expected)
        self.expect_account_entries(result, wallet, [("@revenue", "CAPTURE_IN", captured)] if captured else [])
        assert all(entry.reservation_id == hold.id for entry in (*result.entries, *result.account_entries))
        self.expect_wallet(result.wallet, wallet)
        self.expect_hold(result.reservation, hold)

    PORTIONS = ("all", "all", "part", "part", "exactly all", "too much")

    @precondition(lambda self: self.holds)
    @rule(pick=picks, portion=st.sampled_from(PORTIONS), use_key=keyed, acting_as=acting)
    def capture(self, pick: int, portion: str, use_key: bool, acting_as: str | None) -> None:
        self.capture_hold(self.hold_at(pick), pick, portion, use_key, acting_as)

    @precondition(lambda self: self.holds)
    @rule(pick=picks, use_key=keyed, acting_as=acting)
    def release(self, pick: int, use_key: bool, acting_as: str | None) -> None:
        self.release_hold(self.hold_at(pick), use_key, acting_as)

    def overdue(self) -> list[ModelHold]:
        return [hold for hold in self.holds if hold.status is ReservationStatus.HELD and hold.expires_at <= self.now]

    @precondition(lambda self: self.overdue())
    @rule(pick=picks, capture=st.booleans(), use_key=keyed)
    def close_overdue_hold(self, pick: int, capture: bool, use_key: bool) -> None:
        """A hold past its expiry that no expiry run has closed yet: capture is refused, release is not."""
        overdue = self.overdue()
        hold = overdue[pick % len(overdue)]
        if capture:
            self.capture_hold(hold, pick, "all", use_key, None)
        else:
            self.release_hold(hold, use_key, None)

    def capture_hold(
        self, hold: ModelHold | None, pick: int, portion: str, use_key: bool, acting_as: str | None
    ) -> None:
        hold_id = MISSING_ID if hold is None else hold.id
        held_amount = 1 if hold is None else hold.amount
        amount = {
            "all": None,
            "part": 1 + pick % held_amount,
            "exactly all": held_amount,
            "too much": held_amount + 1,
        }[portion]
        key = self.key(use_key)
        owner_id = self.owner_argument(acting_as, hold and hold.wallet.owner)

        def invoke() -> Movement:
            return self.service.capture_reservation(hold_id, amount, idempotency_key=key, owner_id=owner_id)

        refusal = self.refusal_for_closing(hold, acting_as)
        if refusal is None:
            assert hold is not None
            if hold.expires_at <= self.now:
                refusal = InvalidState
            elif amount is not None and amount > hold.amount:
                refusal = ValidationFailed
        if refusal is not None:
            with pytest.raises(refusal):
                invoke()
            return
        assert hold is not None
        result = invoke()
        self.close(hold, hold.amount if amount is None else amount, result)
        self.committed(hold.wallet.owner, key, ("capture", hold.id, amount), invoke, result)

    def release_hold(self, hold: ModelHold | None, use_key: bool, acting_as: str | None) -> None:
        hold_id = MISSING_ID if hold is None else hold.id
        key = self.key(use_key)
        owner_id = self.owner_argument(acting_as, hold and hold.wallet.owner)

        def invoke() -> Movement:
            return self.service.release_reservation(hold_id, idempotency_key=key, owner_id=owner_id)

        # Release has no expiry check: a hold past its expiry that is still HELD may be released.
        refusal = self.refusal_for_closing(hold, acting_as)
        if refusal is not None:
            with pytest.raises(refusal):
                invoke()
            return
        assert hold is not None
        result = invoke()
        self.close(hold, 0, result)
        self.committed(hold.wallet.owner, key, ("release", hold.id), invoke, result)

    # ---------------------------------------------------------------- time and expiry

    @rule(seconds=st.sampled_from([0.001, 0.5, 1, 1, 2, 59, 61, 3_601]))
    def advance_clock(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(lookahead=st.sampled_from([None, None, 0, 30, 7_200]), batch_size=st.sampled_from([1, 2, 100]))
    def expire(self, lookahead: int | None, batch_size: int) -> None:
        """An expiry run at the service's clock (None) or told a later time."""
        cutoff = self.now if lookahead is None else self.now + timedelta(seconds=lookahead)
        due = [hold for hold in self.holds if hold.status is ReservationStatus.HELD and hold.expires_at <= cutoff]
        report = self.service.expire_reservations(now=None if lookahead is None else cutoff, batch_size=batch_size)
        assert (report.expired, report.skipped, report.failed) == (len(due), 0, 0), report
        assert report.skipped_reservation_ids == report.failed_reservation_ids == ()
        for hold in due:
            hold.status, hold.released = ReservationStatus.EXPIRED, hold.amount
            self.step(hold.wallet, 0, -hold.amount)

    @precondition(lambda self: sum(hold.status is ReservationStatus.HELD for hold in self.holds) >= 2)
    @rule(batch_size=st.sampled_from([2, 3, 100]))
    def expire_every_hold(self, batch_size: int) -> None:
        """Several holds due at once, across wallets, in batches."""
        self.expire(MAX_TTL_SECONDS + 1, batch_size)

    # ---------------------------------------------------------------- idempotency keys

    @precondition(lambda self: self.keyed)
    @rule(pick=picks)
    def replay(self, pick: int) -> None:
        """Make an earlier keyed call again, whatever has happened since: the first answer comes back."""
        earlier = list(self.keyed.values())[pick % len(self.keyed)]
        result = earlier.invoke()
        assert result.replayed is True
        assert result.model_dump(exclude={"replayed"}) == earlier.result.model_dump(exclude={"replayed"})

    @precondition(lambda self: self.keyed)
    @rule(pick=picks, slot=slots, amount=amounts)
    def reuse_key_for_a_deposit(self, pick: int, slot: tuple[str, str], amount: int) -> None:
        """An earlier key on a deposit: refused for its owner's other requests, independent for another owner."""
        earlier = list(self.keyed.values())[pick % len(self.keyed)]
        self.deposit_with_key(slot, amount, earlier.key, None)

    # ---------------------------------------------------------------- after every step

    @invariant()
    def database_matches_model(self) -> None:
        for model in self.wallets.values():
            self.expect_wallet(self.service.get_wallet(model.id), model)
        for hold in self.holds:
            self.expect_hold(self.service.get_reservation(hold.id), hold)
        assert total_money(self.database) == sum(wallet.balance for wallet in self.wallets.values())
        # Money is conserved: per currency, the wallets and the platform accounts sum to zero.
        assert platform_balances(self.database) == {key: total for key, total in self.platform.items() if total}
        for currency in {currency for _, currency in self.wallets}:
            in_wallets = sum(wallet.balance for (_, held_in), wallet in self.wallets.items() if held_in == currency)
            on_accounts = sum(total for (_, held_in), total in self.platform.items() if held_in == currency)
            assert in_wallets + on_accounts == 0, currency
        # Each call that moved money left exactly one operation record: nothing was applied twice.
        # One record per call that moved money (expiry batches keep records of their own).
        money_records = {"kind": OPERATION, "operation": {"$ne": "expire_reservations"}, "result": {"$exists": True}}
        assert self.database[LEDGER].count_documents(money_records) == self.operations
        # The rest are keyed calls' business refusals, kept under their keys (and moving nothing).
        for kept in self.database[LEDGER].find({"kind": OPERATION, "refusal": {"$exists": True}}):
            assert kept["idempotencyKey"] is not None, kept
            assert kept["refusal"]["code"] in {"insufficient_funds", "invalid_state", "wallet_frozen"}, kept
        assert_ledger_consistent(self.database)


def test_random_operation_sequences_match_the_model(mongo_client: MongoClient) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(mongo_client),
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            # Every example builds a database, so shrinking a failure takes minutes and would run into
            # the suite's timeout; a failure is reported with its full sequence of steps instead.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
        ),
    )
