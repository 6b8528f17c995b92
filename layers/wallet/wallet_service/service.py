"""WalletService: the typed API every handler calls, one method per operation.

Each method validates its arguments into a command (commands.py, hold_commands.py) and hands it
to its use case: wallets.py, movements.py, reservations.py, increments.py, refunds.py, journal.py,
expiry.py. Every money movement is one MongoDB transaction (transactions.py), applied exactly once
(idempotency.py), its entries made by the posting rules (postings.py). Thread-safe; share one
instance per process.

Every money method takes what the caller says about the movement as one `Request` (request.py):
its idempotency key, reference, metadata and the owner it acts for. Without one, the call has no
key and acts as an administrator. A read takes `owner_id`: that owner's wallets and holds only,
another owner's reported as not found; leave it out for administrative access.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo.database import Database as MongoDatabase

from .ledger import commands, hold_commands, reads
from .ledger.limits import DEFAULT_PAGE_SIZE, DEFAULT_TTL_SECONDS
from .ledger.models import (
    AccountEntryPage,
    EntryPage,
    EntryType,
    Movement,
    OnExpiry,
    PlatformAccount,
    Reservation,
    ReservationPage,
    ReservationStatus,
    Wallet,
    WalletBalance,
    WalletStatus,
)
from .ledger.reports import AuditReport, CheckpointReport, ExpiryReport, MigrationReport
from .ledger.request import ADMINISTRATOR, Request
from .storage import documents, indexes
from .storage.outbox import CommittedEvents
from .storage.queries import Database
from .use_cases import (
    accounts,
    audit,
    checkpoints,
    expiry,
    increments,
    journal,
    migration,
    movements,
    publishing,
    refunds,
    reservations,
    wallets,
)
from .use_cases.publishing import EventSink, PublishReport


class WalletService:
    def __init__(
        self,
        database: MongoDatabase,
        *,
        time_budget: float = 5.0,
        clock: Callable[[], datetime] = documents.utc_now_ms,
        zones: int = 1,
    ) -> None:
        """`zones`: the shards of a sharded cluster (make shard-plan's SHARDS), by which the jobs
        batch so that each transaction stays on one; 1 for a replica set."""
        self._db = Database.of(database, time_budget=time_budget, clock=clock, zones=zones)

    def ensure_indexes(self) -> None:
        """Create the indexes (a no-op when they exist), and see whether commands may name their
        buckets yet (a new database: from the start; storage/targets.py)."""
        self._db.read(lambda: indexes.ensure_indexes(self._db.wallets.database))
        self._db.where.start_if_new(self._db.clock())  # its reads and write name their own errors

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers."""
        self._db.read(lambda: self._db.wallets.database.command("ping"))

    # ---------------------------------------------------------------- wallets

    def create_wallet(
        self,
        owner_id: str,
        currency: str,
        request: Request = ADMINISTRATOR,
        *,
        opening_balance: int = 0,
        alerts: dict | None = None,
    ) -> Movement:
        """Open a wallet. A non-zero opening balance is journaled as a DEPOSIT entry, with the
        request's metadata. `alerts` (`{"availableBelow": n}`) makes its events say when its
        available money runs low."""
        command = commands.open_wallet(owner_id, currency, opening_balance, alerts, request)
        return wallets.create_wallet(self._db, command)

    def set_wallet_alerts(self, wallet_id: str, alerts: dict | None, *, owner_id: str | None = None) -> Wallet:
        """Set the wallet's balance alert (`{"availableBelow": n}`), or remove it (None)."""
        return wallets.set_alerts(self._db, commands.set_alerts(wallet_id, alerts, owner_id))

    def get_wallet(self, wallet_id: str, *, owner_id: str | None = None) -> Wallet:
        return wallets.get_wallet(self._db, reads.one("walletId", wallet_id, owner_id))

    def freeze_wallet(self, wallet_id: str, *, owner_id: str | None = None) -> Wallet:
        """Stop money leaving the wallet (withdrawals, transfers out, new holds); deposits still arrive."""
        return wallets.change_status(self._db, reads.one("walletId", wallet_id, owner_id), WalletStatus.FROZEN)

    def unfreeze_wallet(self, wallet_id: str, *, owner_id: str | None = None) -> Wallet:
        return wallets.change_status(self._db, reads.one("walletId", wallet_id, owner_id), WalletStatus.ACTIVE)

    # ---------------------------------------------------------------- deposits, withdrawals, transfers

    def deposit(self, wallet_id: str, amount: int, request: Request = ADMINISTRATOR) -> Movement:
        return movements.deposit(self._db, commands.wallet_amount(wallet_id, amount, request))

    def withdraw(self, wallet_id: str, amount: int, request: Request = ADMINISTRATOR) -> Movement:
        return movements.withdraw(self._db, commands.wallet_amount(wallet_id, amount, request))

    def transfer(
        self, from_wallet_id: str, to_wallet_id: str, amount: int, request: Request = ADMINISTRATOR
    ) -> Movement:
        """Move money between two wallets of one currency, atomically. The request's owner must own
        the source; the destination may belong to anyone, and is in the result only when that owner
        may see it."""
        return movements.transfer(self._db, commands.transfer(from_wallet_id, to_wallet_id, amount, request))

    # ---------------------------------------------------------------- reservations

    def create_reservation(
        self,
        wallet_id: str,
        amount: int,
        request: Request = ADMINISTRATOR,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        on_expiry: str = OnExpiry.RELEASE,
        capture_to: dict | None = None,
    ) -> Movement:
        """Hold `amount` of the available money until captured, released or expired. At expiry,
        `on_expiry` "release" gives back what is still held; "capture" captures it to `capture_to`
        (`{"walletId"}` or `{"account"}`; default @revenue)."""
        command = hold_commands.hold(wallet_id, amount, ttl_seconds, on_expiry, capture_to, request)
        return reservations.create_reservation(self._db, command)

    def increment_reservation(
        self, reservation_id: str, amount: int, request: Request = ADMINISTRATOR, *, ttl_seconds: int | None = None
    ) -> Movement:
        """Hold `amount` more on an open hold (at most MAX_INCREMENTS times); `ttl_seconds` pushes its
        expiry out to that long from now, never past 7 days after the hold was placed."""
        command = hold_commands.increment(reservation_id, amount, ttl_seconds, request)
        return increments.increment_reservation(self._db, command)

    def get_reservation(self, reservation_id: str, *, owner_id: str | None = None) -> Reservation:
        return reservations.get_reservation(self._db, reads.one("reservationId", reservation_id, owner_id))

    def capture_reservation(
        self,
        reservation_id: str,
        amount: int | None = None,
        request: Request = ADMINISTRATOR,
        *,
        splits: list[dict] | None = None,
        final: bool = True,
    ) -> Movement:
        """Take `amount` (default: all it still holds) of a hold, to `splits` (`[{"walletId" or
        "account", "amount"}]`, adding up to the amount; default: all to @revenue). Final: any
        remainder is released in the same transaction; not final: the rest stays held."""
        command = hold_commands.close_hold(reservation_id, amount, splits, final, request)
        return reservations.capture_reservation(self._db, command)

    def refund_reservation(
        self,
        reservation_id: str,
        amount: int,
        request: Request = ADMINISTRATOR,
        *,
        reason: str | None = None,
        sources: list[dict] | None = None,
    ) -> Movement:
        """Give back `amount` of what a hold captured to its wallet, from `sources`
        (`[{"walletId" or "account", "amount"}]`; default: from the capture's destinations in
        proportion to what each still holds of it). For the platform, never for the payer: the
        request names no owner."""
        command = hold_commands.refund(reservation_id, amount, reason, sources, request)
        return refunds.refund_reservation(self._db, command)

    def release_reservation(self, reservation_id: str, request: Request = ADMINISTRATOR) -> Movement:
        """Give the whole hold back to the available balance."""
        command = hold_commands.close_hold(reservation_id, None, None, True, request)
        return reservations.release_reservation(self._db, command)

    def list_reservations(
        self,
        wallet_id: str,
        *,
        status: str | None = None,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        owner_id: str | None = None,
    ) -> ReservationPage:
        """A wallet's reservations, newest first, optionally of one status."""
        page = reads.page("reservations", wallet_id, limit, cursor, owner_id, "status", status, ReservationStatus)
        return reservations.list_reservations(self._db, page)

    # ---------------------------------------------------------------- platform accounts

    def open_account(self, name: str, currency: str) -> PlatformAccount:
        """Open a platform account (`@tips`) in a currency; the built-in ones are always open."""
        return accounts.open_account(self._db, reads.account_name(name, currency))

    def get_account(self, name: str, currency: str) -> PlatformAccount:
        """A platform account's balance in a currency: the sum of its postings, read as its checkpoint
        plus the postings since."""
        return accounts.get_account(self._db, reads.account_name(name, currency))

    def list_account_entries(
        self, name: str, currency: str, *, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> AccountEntryPage:
        """A platform account's postings in a currency, newest first."""
        return accounts.list_account_entries(self._db, reads.account_page(name, currency, limit, cursor))

    # ---------------------------------------------------------------- journal and expiry

    def list_transactions(
        self,
        wallet_id: str,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        entry_type: str | None = None,
        owner_id: str | None = None,
    ) -> EntryPage:
        """A wallet's journal, newest first. The cursor is a position in the wallet's sequence."""
        page = reads.page("transactions", wallet_id, limit, cursor, owner_id, "type", entry_type, EntryType)
        return journal.list_transactions(self._db, page)

    def balance_at(self, wallet_id: str, at: datetime | None = None, *, owner_id: str | None = None) -> WalletBalance:
        """A wallet's balance, held and available as they were at `at` (timezone-aware; None: now)."""
        wallet, moment = reads.one_at(wallet_id, self._db.clock() if at is None else at, owner_id)
        return journal.balance_at(self._db, wallet, moment)

    def audit_ledger(self, batch_size: int = 200) -> AuditReport:
        """Prove the ledger: zero-sum per currency, every wallet's counters and chain, every hold's
        figures, every checkpoint. Reads only: short snapshot transactions (the recent entries and the
        tails; a batch of wallets and their open holds), and what no longer changes outside them."""
        return audit.audit_ledger(self._db, batch_size)

    def roll_checkpoints(self, *, time_limit: float = 50.0) -> CheckpointReport:
        """Roll each platform account's postings since its checkpoint into it, a batch per
        transaction, so its balance stays cheap to read. No batch starts after `time_limit` seconds."""
        return checkpoints.roll_checkpoints(self._db, time_limit)

    def migrate_ledger(self) -> MigrationReport:
        """Bring a ledger written before double entry over to it: idempotent, one wallet per transaction."""
        return migration.migrate_ledger(self._db)

    def publish_events(
        self,
        sink: EventSink,
        *,
        committed: CommittedEvents | None = None,
        older_than_seconds: float | None = None,
        time_limit: float = 5.0,
    ) -> PublishReport:
        """Send unsent events to `sink`, each wallet's in order, within `time_limit` seconds: those of
        the wallets a call's transactions wrote events for (`committed`, from committed_events()), or
        (`older_than_seconds`) of every wallet whose oldest unsent event is that old: the scheduled
        publisher."""
        if committed is not None:
            return publishing.publish_committed(self._db, sink, committed, time_limit)
        older_than = timedelta(seconds=older_than_seconds or 0)
        return publishing.publish_due(self._db, sink, older_than, time_limit)

    def expire_reservations(
        self, now: datetime | None = None, batch_size: int = 100, *, time_limit: float = 50.0
    ) -> ExpiryReport:
        """Expire every hold whose time has come (at `now`, default the clock's), one transaction per
        batch, and release its money. No batch starts after `time_limit` seconds."""
        return expiry.expire_reservations(self._db, commands.expiry(now, batch_size), time_limit)
