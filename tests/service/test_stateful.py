"""Random sequences of every operation, checked step by step against a plain-Python model.

The model knows each wallet's balance, held amount, status and entry count; each hold's state and
figures (its first amount and its increments, its captures, what it released, what it still
holds, its expiry and what the expiry does); the clock; every idempotency key that committed and
every refusal a key keeps. After every step the service's answer (or error) must be the model's,
every wallet and hold read back must match it, each hold's figures must add up (amount = first
amount + increments, captured + released + still held = amount, a wallet's held = what its open
holds still hold, nothing available below zero), the number of operation records must equal the
number of calls that moved money and of keyed refusals, and the whole ledger must be consistent.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, event, settings
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
    OnExpiry,
    Place,
    Request,
    ReservationStatus,
    ValidationFailed,
    Wallet,
    WalletError,
    WalletExists,
    WalletFrozen,
    WalletService,
    WalletStatus,
)
from wallet_service.ledger.limits import MAX_INCREMENTS, MAX_TTL_SECONDS, MIN_TTL_SECONDS
from wallet_service.storage.documents import LEDGER, OPERATION, utc_now_ms

OWNERS = ("ana", "ben")
CURRENCIES = ("USD", "EUR")
SLOTS = [(owner, currency) for owner in OWNERS for currency in CURRENCIES]
MISSING_ID = "0" * 24
REVENUE = "@revenue"
UNOPENED_ACCOUNT = "@tips"  # never opened here: an expiry may not capture to it
OPEN = (ReservationStatus.HELD, ReservationStatus.PARTIALLY_CAPTURED)
LIFETIME = timedelta(seconds=MAX_TTL_SECONDS)  # the longest a hold may live, from its creation
# The refusals a keyed call keeps under its key (a retry gets the same refusal).
KEPT_REFUSALS = (InsufficientFunds, InvalidState, WalletFrozen)

# The fourth wallet does not exist until create_wallet opens it: pick the first three more often.
slots = st.sampled_from([*SLOTS[:3], *SLOTS[:3], SLOTS[3]])
amounts = st.integers(1, 1_500)
keyed = st.booleans()
# Act without an owner (administrative), as the owner, or as the other owner (who sees nothing).
acting = st.sampled_from([None, None, None, "self", "other"])
picks = st.integers(0, 10**6)
hold_ttls = st.sampled_from([1, 1, 2, 60, 3_600, 86_400])
# What a hold's expiry does: release (the default), capture (to @revenue by default, or to a place
# named), and the places it may not capture to; "release to @revenue" names a place without capture.
EXPIRIES = (
    "release",
    "release",
    "capture",
    "capture to @revenue",
    "capture to the other owner",
    "capture to the other owner",
    "capture to the other currency",
    "capture to itself",
    "capture to an unopened account",
    "release to @revenue",
)
expiries = st.sampled_from(EXPIRIES)
# How far a raise pushes a hold's expiry: not at all, by a few TTLs, to exactly 7 days after the
# hold was placed, a second past that, 7 days from now (past it once any time went by), out of range.
RAISE_TTLS = (None, None, None, 1, 60, 3_600, 86_400, "to the limit", "past the limit", MAX_TTL_SECONDS, 0)


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
    initial: int  # the amount it was placed with
    created_at: datetime
    expires_at: datetime
    on_expiry: OnExpiry = OnExpiry.RELEASE
    payee: ModelWallet | str | None = None  # where an expiry's capture goes: a wallet or an account
    status: ReservationStatus = ReservationStatus.HELD
    captured: int = 0
    released: int = 0
    increments: list[tuple[int, datetime, datetime]] = field(default_factory=list)  # amount, expiry after, when
    captures: list[tuple[int, bool, str | None, str | None]] = field(default_factory=list)  # amount, final, to

    @property
    def amount(self) -> int:
        return self.initial + sum(amount for amount, _, _ in self.increments)

    @property
    def held(self) -> int:
        return self.amount - self.captured - self.released

    @property
    def open(self) -> bool:
        return self.status in OPEN

    def place(self) -> Place | None:
        if self.payee is None:
            return None
        if isinstance(self.payee, ModelWallet):
            return Place(wallet_id=self.payee.id)
        return Place(account=self.payee)


@dataclass(frozen=True)
class KeyedCall:
    """A call that committed under an idempotency key, and how to make it again."""

    owner: str
    key: str
    signature: tuple  # the operation and its parameters: equal signatures are the same request
    invoke: Callable[[], Movement]
    result: Movement


@dataclass(frozen=True)
class KeptRefusal:
    """A keyed call refused for a business reason: the refusal is kept under its key. `replayable`
    when the request is otherwise sound for good (a retry meets the kept refusal, not another error)."""

    owner: str
    key: str
    signature: tuple
    invoke: Callable[[], Movement]
    refusal: WalletError
    replayable: bool


# The service's zones, one example to the next: a replica set's one, and a 4-shard cluster's (its
# jobs batch by zone: expiry, publishing, the platform's checkpoints; docs/sharding.md).
ZONES = itertools.cycle((1, 4))


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self, service_client: MongoClient, client: MongoClient) -> None:
        """`service_client` is the service's (its commands audited: tests/routing_audit.py), `client`
        the checks' own."""
        super().__init__()
        self.client = client
        self.name = f"wallet_stateful_{uuid.uuid4().hex[:12]}"
        self.database = client[self.name]
        # Starts at the real time and only moves forward, so operation records (kept 24 hours
        # after their creation by a TTL index) are never purged during an example.
        self.now = utc_now_ms()
        self.service = WalletService(
            service_client[self.name], time_budget=20.0, clock=lambda: self.now, zones=next(ZONES)
        )
        self.service.ensure_indexes()
        self.wallets: dict[tuple[str, str], ModelWallet] = {}
        self.holds: list[ModelHold] = []
        self.keyed: dict[tuple[str, str], KeyedCall] = {}
        self.refused: dict[tuple[str, str], KeptRefusal] = {}
        self.operations = 0
        self.checked: tuple = ()  # what the ledger was when it was last checked whole
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

    def open_holds(self) -> list[ModelHold]:
        return [hold for hold in self.holds if hold.open]

    def live_holds(self) -> list[ModelHold]:
        """The open holds not past their expiry: the ones that may still be raised and captured."""
        return [hold for hold in self.holds if hold.open and hold.expires_at > self.now]

    def hold_at(self, pick: int) -> ModelHold | None:
        """Mostly a hold that is still open (and mostly not past its expiry), sometimes any hold, now
        and then one that does not exist."""
        choice = pick % 8
        if choice == 0:
            return None
        candidates = self.holds
        if choice < 5:
            candidates = self.live_holds() or self.open_holds() or candidates
        elif choice == 5:
            candidates = self.open_holds() or candidates
        return candidates[pick // 8 % len(candidates)]

    @staticmethod
    def owner_argument(acting_as: str | None, owner: str | None) -> str | None:
        if acting_as is None or owner is None:
            return None
        return owner if acting_as == "self" else next(other for other in OWNERS if other != owner)

    def call_on_hold(
        self, hold: ModelHold | None, use_key: bool, acting_as: str | None
    ) -> tuple[str, str | None, str | None, str | None]:
        """What a call on `hold` (None: one that does not exist) sends and is booked under: the hold's
        id, the Idempotency-Key, the hold's owner and the owner_id argument."""
        owner = hold and hold.wallet.owner
        return MISSING_ID if hold is None else hold.id, self.key(use_key), owner, self.owner_argument(acting_as, owner)

    def committed(self, owner: str, key: str | None, signature: tuple, invoke: Callable[[], Movement], result):
        """Book a call that moved money: one more operation record, and its key for later replays."""
        assert result.replayed is False
        self.operations += 1
        event(f"{signature[0]}: done")
        if key is not None:
            self.keyed[(owner, key)] = KeyedCall(owner, key, signature, invoke, result)

    def refuse(
        self,
        refusal: type[WalletError],
        invoke: Callable[[], Movement],
        *,
        signature: tuple,
        key: str | None = None,
        owner: str | None = None,
        fields: tuple[str, ...] = (),
        says: str = "",
        funds: tuple[int, int] | None = None,
        replayable: bool = True,
    ) -> None:
        """The call is refused with exactly `refusal` (on `fields`, saying `says`; InsufficientFunds
        with `funds`, the money available and requested); a keyed call keeps a business refusal
        under its key."""
        with pytest.raises(refusal) as raised:
            invoke()
        error = raised.value
        assert type(error) is refusal, error
        assert says in error.message, (says, error.message)
        if refusal is ValidationFailed:
            assert tuple(problem.field for problem in error.errors) == fields, error.errors
        if refusal is InsufficientFunds:
            assert (error.available, error.requested) == funds, error
        reason = says or ", ".join(fields)
        event(f"{signature[0]}: {refusal.__name__}" + (f" ({reason})" if reason else ""))
        if key is not None and refusal in KEPT_REFUSALS:
            assert owner is not None
            self.refused[(owner, key)] = KeptRefusal(owner, key, signature, invoke, error, replayable)

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
            self.book(account, wallet.currency, delta)

    def book(self, account: str, currency: str, delta: int) -> None:
        self.platform[account, currency] = self.platform.get((account, currency), 0) + delta

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
        figures = (reservation.captured_amount, reservation.released_amount, reservation.held_amount)
        assert figures == (model.captured, model.released, model.held), (reservation, model)
        assert (reservation.created_at, reservation.expires_at) == (model.created_at, model.expires_at)
        increments = [
            (increment.amount, increment.expires_at, increment.created_at) for increment in reservation.increments
        ]
        assert increments == model.increments, reservation.increments
        captures = [
            (
                capture.amount,
                capture.final,
                [(split.wallet_id, split.account, split.amount) for split in capture.splits],
            )
            for capture in reservation.captures
        ]
        expected = [
            (amount, final, [(wallet_id, account, amount)]) for amount, final, wallet_id, account in model.captures
        ]
        assert captures == expected, reservation.captures
        assert (reservation.on_expiry, reservation.capture_to) == (model.on_expiry, model.place()), reservation

    @staticmethod
    def step(wallet: ModelWallet, balance_delta: int, held_delta: int) -> tuple[int, int, int]:
        """Apply one entry to the model wallet and return its (balance after, held after, sequence)."""
        wallet.balance += balance_delta
        wallet.held += held_delta
        wallet.sequence += 1
        return wallet.balance, wallet.held, wallet.sequence

    # ---------------------------------------------------------------- wallets

    @initialize(
        openings=st.lists(st.integers(0, 3_000), min_size=3, max_size=3),
        use_key=keyed,
        first_holds=st.lists(
            st.tuples(
                st.sampled_from(SLOTS[:3]),
                st.integers(1, 100),
                st.sampled_from([60, 3_600, 86_400]),
                st.sampled_from(["release", "capture", "capture to @revenue", "capture to the other owner"]),
            ),
            min_size=1,
            max_size=3,
        ),
    )
    def first_wallets(self, openings: list[int], use_key: bool, first_holds: list[tuple]) -> None:
        """Three of the four wallets exist from the start (the create_wallet rule may open the fourth),
        and a few holds are placed on them (a share of what each has, in percent), so that the holds'
        rules have something to work on early."""
        for slot, opening in zip(SLOTS[:3], openings, strict=True):
            self.create_wallet(slot, opening, use_key)
        for slot, share, ttl, expiry in first_holds:
            amount = max(1, self.wallets[slot].available * share // 100)
            self.create_reservation(slot, amount, ttl, expiry, use_key, None)

    @rule(slot=slots, opening=st.one_of(st.just(0), st.integers(1, 3_000)), use_key=keyed)
    def create_wallet(self, slot: tuple[str, str], opening: int, use_key: bool) -> None:
        owner, currency = slot
        key = self.key(use_key)

        def invoke() -> Movement:
            return self.service.create_wallet(owner, currency, Request(idempotency_key=key), opening_balance=opening)

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
            return self.service.deposit(wallet_id, amount, Request(idempotency_key=key, owner_id=owner_id))

        if wallet is None or acting_as == "other":
            with pytest.raises(NotFound):
                invoke()
            return
        signature = ("deposit", wallet.id, amount)
        earlier = (self.keyed.get((wallet.owner, key)) or self.refused.get((wallet.owner, key))) if key else None
        if earlier is not None:
            # The key was used by this owner before: the same request replays, another is refused.
            if earlier.signature == signature:
                assert isinstance(earlier, KeyedCall)  # a deposit is never refused for a business reason here
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
            return self.service.withdraw(wallet_id, amount, Request(idempotency_key=key, owner_id=owner_id))

        signature = ("withdraw", wallet_id, amount)
        refusal = self.refusal_for_debit(wallet, amount, acting_as)
        if refusal is not None:
            funds = wallet and (wallet.available, amount)
            self.refuse(refusal, invoke, signature=signature, key=key, owner=wallet and wallet.owner, funds=funds)
            return
        assert wallet is not None
        result = invoke()
        after = self.step(wallet, -amount, 0)
        self.expect_entries(result, [(wallet, "WITHDRAWAL", amount, -amount, 0, after)])
        self.expect_account_entries(result, wallet, [("@payouts", "PAYOUT", amount)])
        self.expect_wallet(result.wallet, wallet)
        self.committed(wallet.owner, key, signature, invoke, result)

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
            return self.service.transfer(
                source_id, destination_id, amount, Request(idempotency_key=key, owner_id=owner_id)
            )

        signature = ("transfer", source_id, amount, destination_id)
        # Once the source is found, the destination is checked before the source's money: a request
        # to a destination that is not there, or in another currency, gets that answer whatever the
        # money, and a key never keeps a refusal for money that a retry could answer otherwise.
        sound_destination = destination is not None and destination.currency == currency
        fields: tuple[str, ...] = ()
        if source_id == destination_id:
            fields, refusal = ("toWalletId",), ValidationFailed
        else:
            refusal = self.refusal_for_debit(source, amount, acting_as)
            if refusal is not NotFound and destination is None:
                refusal = NotFound
            elif refusal is not NotFound and not sound_destination:
                refusal, fields = ValidationFailed, ("toWalletId",)
        if refusal is not None:
            self.refuse(
                refusal,
                invoke,
                signature=signature,
                key=key,
                owner=source and source.owner,
                fields=fields if refusal is ValidationFailed else (),
                funds=source and (source.available, amount),
                replayable=sound_destination,
            )
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
        self.committed(source.owner, key, signature, invoke, result)

    # ---------------------------------------------------------------- reservations

    def expiry_arguments(self, slot: tuple[str, str], expiry: str) -> tuple[dict, ModelWallet | str | None, str]:
        """create_reservation's on_expiry and capture_to for an expiry choice, where the expiry's
        capture goes (None: it releases), and the field refused ("" when none is): a capture_to
        without capture at once, a place it may not capture to once the wallet has paid for the hold."""
        owner, currency = slot
        if expiry == "release":
            return {}, None, ""
        if expiry == "release to @revenue":
            return {"capture_to": {"account": REVENUE}}, None, "captureTo"
        if expiry == "capture":
            return {"on_expiry": "capture"}, REVENUE, ""
        if expiry == "capture to @revenue":
            return {"on_expiry": "capture", "capture_to": {"account": REVENUE}}, REVENUE, ""
        if expiry == "capture to an unopened account":
            return {"on_expiry": "capture", "capture_to": {"account": UNOPENED_ACCOUNT}}, None, "captureTo.account"
        target = {
            "capture to the other owner": (next(other for other in OWNERS if other != owner), currency),
            "capture to the other currency": (owner, next(other for other in CURRENCIES if other != currency)),
            "capture to itself": slot,
        }[expiry]
        arguments = {"on_expiry": "capture", "capture_to": {"walletId": self.wallet_id(target)}}
        payee = self.wallets.get(target)
        if payee is None or payee.currency != currency or target == slot:
            return arguments, None, "captureTo.walletId"
        return arguments, payee, ""

    @rule(slot=slots, amount=st.integers(1, 1_000), ttl=hold_ttls, expiry=expiries, use_key=keyed, acting_as=acting)
    def create_reservation(
        self, slot: tuple[str, str], amount: int, ttl: int, expiry: str, use_key: bool, acting_as: str | None
    ) -> None:
        wallet = self.wallets.get(slot)
        wallet_id = self.wallet_id(slot)
        key = self.key(use_key)
        owner_id = self.owner_argument(acting_as, wallet and wallet.owner)
        arguments, payee, refused_field = self.expiry_arguments(slot, expiry)

        def invoke() -> Movement:
            return self.service.create_reservation(
                wallet_id, amount, Request(idempotency_key=key, owner_id=owner_id), ttl_seconds=ttl, **arguments
            )

        signature = ("create_reservation", wallet_id, amount, ttl, expiry)
        if refused_field == "captureTo":  # the request's own fields disagree: refused before anything is read
            self.refuse(ValidationFailed, invoke, signature=signature, fields=(refused_field,))
            return
        refusal = self.refusal_for_debit(wallet, amount, acting_as)
        if refused_field and refusal is not NotFound:  # where the expiry captures to, before the money
            refusal = ValidationFailed
        if refusal is not None:
            self.refuse(
                refusal,
                invoke,
                signature=signature,
                key=key,
                owner=wallet and wallet.owner,
                fields=(refused_field,) if refusal is ValidationFailed else (),
                funds=wallet and (wallet.available, amount),
                replayable=not refused_field,
            )
            return
        assert wallet is not None
        result = invoke()
        assert result.reservation is not None
        on_expiry = OnExpiry.CAPTURE if payee is not None else OnExpiry.RELEASE
        hold = ModelHold(
            result.reservation.id, wallet, amount, self.now, self.now + timedelta(seconds=ttl), on_expiry, payee
        )
        self.holds.append(hold)
        after = self.step(wallet, 0, amount)
        self.expect_entries(result, [(wallet, "HOLD", amount, 0, amount, after)])
        assert result.account_entries == ()  # held money stays the wallet's
        assert result.entries[0].reservation_id == hold.id
        self.expect_wallet(result.wallet, wallet)
        self.expect_hold(result.reservation, hold)
        self.committed(wallet.owner, key, signature, invoke, result)

    def refusal_for_changing(self, hold: ModelHold | None, acting_as: str | None, *, mind_expiry: bool):
        """Why a hold may not be captured, released or raised: (refusal, what it says), or (None, "")."""
        if hold is None or acting_as == "other":
            return NotFound, ""
        if not hold.open:
            return InvalidState, f"is already {hold.status.value}"
        if mind_expiry and hold.expires_at <= self.now:
            return InvalidState, "expired at"
        return None, ""

    def settle(self, hold: ModelHold, taken: int, ends: bool, result: Movement) -> None:
        """A capture of `taken` (0: a release); when it `ends` the hold, what is left is released."""
        wallet = hold.wallet
        released = hold.held - taken if ends else 0
        hold.captured += taken
        hold.released += released
        if taken:
            hold.captures.append((taken, ends, None, REVENUE))
            hold.status = ReservationStatus.CAPTURED if ends else ReservationStatus.PARTIALLY_CAPTURED
        else:
            hold.status = ReservationStatus.RELEASED
        parts = sum(not final for _, final, _, _ in hold.captures)
        event(
            f"hold: {hold.status.value}"
            + (f" after {parts} part(s)" if parts and ends else "")
            + (" with a release" if released and taken else "")
        )
        expected = []
        if taken:
            expected.append((wallet, "CAPTURE", taken, -taken, -taken, self.step(wallet, -taken, -taken)))
        if released:
            expected.append((wallet, "RELEASE", released, 0, -released, self.step(wallet, 0, -released)))
        self.expect_entries(result, expected)
        self.expect_account_entries(result, wallet, [(REVENUE, "CAPTURE_IN", taken)] if taken else [])
        assert all(entry.reservation_id == hold.id for entry in (*result.entries, *result.account_entries))
        self.expect_wallet(result.wallet, wallet)
        self.expect_hold(result.reservation, hold)

    PORTIONS = ("all", "all", "part", "part", "exactly all", "too much")

    @precondition(lambda self: self.holds)
    @rule(pick=picks, portion=st.sampled_from(PORTIONS), final=st.booleans(), use_key=keyed, acting_as=acting)
    def capture(self, pick: int, portion: str, final: bool, use_key: bool, acting_as: str | None) -> None:
        self.capture_hold(self.hold_at(pick), pick, portion, final, use_key, acting_as)

    @precondition(lambda self: self.live_holds())
    @rule(pick=picks, parts=st.integers(1, 3), then=st.sampled_from(["nothing", "capture", "release"]), use_key=keyed)
    def capture_in_parts(self, pick: int, parts: int, then: str, use_key: bool) -> None:
        """A ride's fare taken as it goes: a few captures that are not final, then perhaps the last."""
        hold = self.live_holds()[pick % len(self.live_holds())]
        for part in range(parts):
            self.capture_hold(hold, pick + part, "part", False, use_key, None)
        if then == "capture":
            self.capture_hold(hold, pick, "all", True, use_key, None)
        elif then == "release":
            self.release_hold(hold, use_key, None)

    @precondition(lambda self: self.holds)
    @rule(pick=picks, use_key=keyed, acting_as=acting)
    def release(self, pick: int, use_key: bool, acting_as: str | None) -> None:
        self.release_hold(self.hold_at(pick), use_key, acting_as)

    def overdue(self) -> list[ModelHold]:
        return [hold for hold in self.holds if hold.open and hold.expires_at <= self.now]

    @precondition(lambda self: self.overdue())
    @rule(pick=picks, action=st.sampled_from(["capture", "capture a part", "raise", "release"]), use_key=keyed)
    def change_overdue_hold(self, pick: int, action: str, use_key: bool) -> None:
        """A hold past its expiry that no expiry run has ended yet: captures and raises are refused,
        a release is not."""
        overdue = self.overdue()
        hold = overdue[pick % len(overdue)]
        if action == "capture":
            self.capture_hold(hold, pick, "all", True, use_key, None)
        elif action == "capture a part":
            self.capture_hold(hold, pick, "part", False, use_key, None)
        elif action == "raise":
            self.raise_hold(hold, 1 + pick % 100, None, use_key, None)
        else:
            self.release_hold(hold, use_key, None)

    def capture_hold(
        self, hold: ModelHold | None, pick: int, portion: str, final: bool, use_key: bool, acting_as: str | None
    ) -> None:
        hold_id, key, owner, owner_id = self.call_on_hold(hold, use_key, acting_as)
        still_held = max(1, 0 if hold is None else hold.held)
        amount = {
            "all": None,
            "part": 1 + pick % still_held,
            "exactly all": still_held,
            "too much": still_held + 1,
        }[portion]

        def invoke() -> Movement:
            return self.service.capture_reservation(
                hold_id, amount, Request(idempotency_key=key, owner_id=owner_id), final=final
            )

        signature = ("capture", hold_id, amount, final)
        if not final and amount is None:  # a capture in parts names each part: refused before anything is read
            self.refuse(ValidationFailed, invoke, signature=signature, fields=("amount",))
            return
        refusal, says = self.refusal_for_changing(hold, acting_as, mind_expiry=True)
        if refusal is None and amount is not None and amount > still_held:
            refusal = ValidationFailed
        if refusal is not None:
            fields = ("amount",) if refusal is ValidationFailed else ()
            self.refuse(refusal, invoke, signature=signature, key=key, owner=owner, fields=fields, says=says)
            return
        assert hold is not None
        result = invoke()
        taken = hold.held if amount is None else amount
        self.settle(hold, taken, final or taken == hold.held, result)
        self.committed(hold.wallet.owner, key, signature, invoke, result)

    def release_hold(self, hold: ModelHold | None, use_key: bool, acting_as: str | None) -> None:
        hold_id, key, owner, owner_id = self.call_on_hold(hold, use_key, acting_as)

        def invoke() -> Movement:
            return self.service.release_reservation(hold_id, Request(idempotency_key=key, owner_id=owner_id))

        signature = ("release", hold_id)
        # Release has no expiry check: a hold past its expiry that is still open may be released.
        refusal, says = self.refusal_for_changing(hold, acting_as, mind_expiry=False)
        if refusal is not None:
            self.refuse(refusal, invoke, signature=signature, key=key, owner=owner, says=says)
            return
        assert hold is not None
        result = invoke()
        self.settle(hold, 0, True, result)
        self.committed(hold.wallet.owner, key, signature, invoke, result)

    # ---------------------------------------------------------------- raising a hold

    @precondition(lambda self: self.holds)
    @rule(
        pick=picks,
        amount=st.one_of(st.integers(1, 100), amounts),
        ttl=st.sampled_from(RAISE_TTLS),
        use_key=keyed,
        acting_as=acting,
    )
    def raise_a_hold(self, pick: int, amount: int, ttl: int | str | None, use_key: bool, acting_as: str | None):
        self.raise_hold(self.hold_at(pick), amount, ttl, use_key, acting_as)

    @precondition(lambda self: self.live_holds())
    @rule(pick=picks, times=st.sampled_from([3, 6, MAX_INCREMENTS + 1]), ttl=st.sampled_from(RAISE_TTLS), use_key=keyed)
    def raise_a_hold_again_and_again(self, pick: int, times: int, ttl: int | str | None, use_key: bool) -> None:
        """A ride that keeps growing: small raises of one hold (the first perhaps pushing its expiry
        out), up to and past the most it may have."""
        hold = self.live_holds()[pick % len(self.live_holds())]
        for number in range(times):
            if not self.raise_hold(hold, 1 + (pick + number) % 40, None if number else ttl, use_key, None):
                break  # at the most increments, or the wallet cannot pay for more

    def raise_ttl(self, hold: ModelHold | None, choice: int | str | None) -> int | None:
        if choice not in ("to the limit", "past the limit"):
            return choice  # type: ignore[return-value]
        if hold is None:
            return 60
        # Whole seconds from now to 7 days after the hold was placed: exactly there at most, or a second past.
        left = (hold.created_at + LIFETIME - self.now) // timedelta(seconds=1)
        return left if choice == "to the limit" else left + 1

    def refusal_for_raising(self, hold: ModelHold | None, amount: int, ttl: int | None, acting_as: str | None):
        """Why a raise is refused, in the order the service finds out: (refusal, fields, what it says)."""
        if ttl is not None and not MIN_TTL_SECONDS <= ttl <= MAX_TTL_SECONDS:
            return ValidationFailed, ("ttlSeconds",), ""
        refusal, says = self.refusal_for_changing(hold, acting_as, mind_expiry=True)
        if refusal is not None:
            return refusal, (), says
        assert hold is not None
        if len(hold.increments) >= MAX_INCREMENTS:
            return InvalidState, (), f"raised {MAX_INCREMENTS} times"
        if ttl is not None and self.now + timedelta(seconds=ttl) > hold.created_at + LIFETIME:
            return ValidationFailed, ("ttlSeconds",), "7 days after it was placed"
        return self.refusal_for_debit(hold.wallet, amount, None), (), ""

    def raise_hold(
        self, hold: ModelHold | None, amount: int, ttl_choice: int | str | None, use_key: bool, acting_as: str | None
    ) -> bool:
        """Raise the hold by `amount`, pushing its expiry out by `ttl_choice`: whether it was raised."""
        hold_id, key, owner, owner_id = self.call_on_hold(hold, use_key, acting_as)
        ttl = self.raise_ttl(hold, ttl_choice)

        def invoke() -> Movement:
            return self.service.increment_reservation(
                hold_id, amount, Request(idempotency_key=key, owner_id=owner_id), ttl_seconds=ttl
            )

        signature = ("increment", hold_id, amount, ttl)
        refusal, fields, says = self.refusal_for_raising(hold, amount, ttl, acting_as)
        if refusal is not None:
            funds = hold and (hold.wallet.available, amount)
            self.refuse(
                refusal, invoke, signature=signature, key=key, owner=owner, fields=fields, says=says, funds=funds
            )
            return False
        assert hold is not None
        result = invoke()
        wallet = hold.wallet
        if ttl is not None:
            pushed_to = self.now + timedelta(seconds=ttl)
            event(f"hold: raised, expiry {'pushed out' if pushed_to > hold.expires_at else 'kept'}")
            hold.expires_at = max(hold.expires_at, pushed_to)
        hold.increments.append((amount, hold.expires_at, self.now))
        after = self.step(wallet, 0, amount)
        self.expect_entries(result, [(wallet, "HOLD", amount, 0, amount, after)])
        assert result.account_entries == ()  # held money stays the wallet's
        assert result.entries[0].reservation_id == hold.id
        self.expect_wallet(result.wallet, wallet)
        self.expect_hold(result.reservation, hold)
        self.committed(wallet.owner, key, signature, invoke, result)
        return True

    # ---------------------------------------------------------------- time and expiry

    @rule(seconds=st.sampled_from([0.001, 0.5, 1, 1, 2, 59, 61, 3_601]))
    def advance_clock(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(lookahead=st.sampled_from([None, None, 0, 30, 7_200]), batch_size=st.sampled_from([1, 2, 100]))
    def expire(self, lookahead: int | None, batch_size: int) -> None:
        """An expiry run at the service's clock (None) or told a later time."""
        cutoff = self.now if lookahead is None else self.now + timedelta(seconds=lookahead)
        due = [hold for hold in self.holds if hold.open and hold.expires_at <= cutoff]
        report = self.service.expire_reservations(now=None if lookahead is None else cutoff, batch_size=batch_size)
        assert (report.expired, report.skipped, report.failed) == (len(due), 0, 0), report
        assert report.skipped_reservation_ids == report.failed_reservation_ids == ()
        for hold in due:
            self.expire_hold(hold)

    def expire_hold(self, hold: ModelHold) -> None:
        """What the expiry does with what the hold still holds: releases it, or captures it to its payee."""
        still_held = hold.held
        hold.status = ReservationStatus.EXPIRED
        event(f"expiry: {hold.on_expiry.value}s {'part of ' if hold.captured else ''}a hold")
        if hold.on_expiry is OnExpiry.RELEASE:
            hold.released += still_held
            self.step(hold.wallet, 0, -still_held)
            return
        hold.captured += still_held
        self.step(hold.wallet, -still_held, -still_held)
        if isinstance(hold.payee, ModelWallet):
            hold.captures.append((still_held, True, hold.payee.id, None))
            self.step(hold.payee, still_held, 0)
        else:
            assert hold.payee is not None
            hold.captures.append((still_held, True, None, hold.payee))
            self.book(hold.payee, hold.wallet.currency, still_held)

    @precondition(lambda self: len(self.open_holds()) >= 2)
    @rule(batch_size=st.sampled_from([2, 3, 100]))
    def expire_every_hold(self, batch_size: int) -> None:
        """Several holds due at once, across wallets, in batches."""
        self.expire(MAX_TTL_SECONDS + 1, batch_size)

    @rule()
    def roll_checkpoints(self) -> None:
        """The every-minute roll: the platform accounts' postings into their checkpoints; no balance moves."""
        report = self.service.roll_checkpoints()
        assert report.finished
        event(f"roll: {'some' if report.postings else 'no'} postings")

    # ---------------------------------------------------------------- idempotency keys

    def replayable(self) -> list[KeyedCall | KeptRefusal]:
        return [*self.keyed.values(), *(kept for kept in self.refused.values() if kept.replayable)]

    @precondition(lambda self: self.replayable())
    @rule(pick=picks)
    def replay(self, pick: int) -> None:
        """Make an earlier keyed call again, whatever has happened since: the first answer comes back,
        a movement or a refusal."""
        earlier = self.replayable()[pick % len(self.replayable())]
        if isinstance(earlier, KeptRefusal):
            with pytest.raises(type(earlier.refusal)) as raised:
                earlier.invoke()
            assert str(raised.value) == str(earlier.refusal)
            if isinstance(earlier.refusal, InsufficientFunds):
                assert (raised.value.available, raised.value.requested) == (
                    earlier.refusal.available,
                    earlier.refusal.requested,
                )
            event(f"replay: {earlier.signature[0]} refused")
            return
        result = earlier.invoke()
        assert result.replayed is True
        assert result.model_dump(exclude={"replayed"}) == earlier.result.model_dump(exclude={"replayed"})
        event(f"replay: {earlier.signature[0]}")

    @precondition(lambda self: self.keyed or self.refused)
    @rule(pick=picks, slot=slots, amount=amounts)
    def reuse_key_for_a_deposit(self, pick: int, slot: tuple[str, str], amount: int) -> None:
        """An earlier key on a deposit: refused for its owner's other requests, independent for another owner."""
        earlier = [*self.keyed.values(), *self.refused.values()]
        self.deposit_with_key(slot, amount, earlier[pick % len(earlier)].key, None)

    # ---------------------------------------------------------------- after every step

    @invariant()
    def database_matches_model(self) -> None:
        wallets = {model.id: self.service.get_wallet(model.id) for model in self.wallets.values()}
        for model in self.wallets.values():
            self.expect_wallet(wallets[model.id], model)
            assert wallets[model.id].available >= 0, wallets[model.id]
        still_held: Counter = Counter()
        for hold in self.holds:
            reservation = self.service.get_reservation(hold.id)
            self.expect_hold(reservation, hold)
            # Each hold's figures add up, as the service itself tells them: all it held is its first
            # amount and its increments, and it is captured, released or still held.
            assert reservation.amount == hold.initial + sum(increment.amount for increment in reservation.increments)
            assert len(reservation.increments) <= MAX_INCREMENTS
            figures = (reservation.captured_amount, reservation.released_amount, reservation.held_amount)
            assert sum(figures) == reservation.amount, reservation
            assert reservation.captured_amount == sum(capture.amount for capture in reservation.captures)
            assert min(figures) >= 0, reservation
            if reservation.status in OPEN:
                assert reservation.held_amount > 0, reservation
                assert reservation.released_amount == 0, reservation
                still_held[reservation.wallet_id] += reservation.held_amount
            else:
                assert reservation.held_amount == 0, reservation
            assert reservation.expires_at <= hold.created_at + LIFETIME, reservation
        # A wallet holds exactly what its open holds still hold.
        for wallet_id, wallet in wallets.items():
            assert wallet.held == still_held[wallet_id], (wallet, still_held)
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
        kept = list(self.database[LEDGER].find({"kind": OPERATION, "refusal": {"$exists": True}}))
        for record in kept:
            assert record["idempotencyKey"] is not None, record
            assert record["refusal"]["code"] in {"insufficient_funds", "invalid_state", "wallet_frozen"}, record
        assert len(kept) == len(self.refused), (len(kept), len(self.refused))
        # The whole-ledger check reads every entry of every wallet and hold. After a step that
        # changed nothing (a refusal, a replay, the clock) it would read the same ledger again:
        # documents are only added to it but for the holds (each compared with the model above),
        # and every change of a wallet adds an entry, so its size and the wallets' sequences tell.
        fingerprint = (self.database[LEDGER].count_documents({}), *(model.sequence for model in self.wallets.values()))
        if fingerprint != self.checked:
            assert_ledger_consistent(self.database)
            # Each platform account's balance as the service reads it: its checkpoint and its tail.
            for (account, currency), total in self.platform.items():
                assert self.service.get_account(account, currency).balance == total, (account, currency)
            self.checked = fingerprint


def test_random_operation_sequences_match_the_model(service_client: MongoClient, mongo_client: MongoClient) -> None:
    run_state_machine_as_test(
        lambda: LedgerMachine(service_client, mongo_client),
        settings=settings(
            max_examples=35,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            # Every example builds a database, so shrinking a failure takes minutes and would run into
            # the suite's timeout; a failure is reported with its full sequence of steps instead.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
        ),
    )
