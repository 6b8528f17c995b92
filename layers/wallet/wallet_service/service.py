"""The wallet service: every money movement is one MongoDB transaction, applied exactly once.

Exactly-once, in short. Each money-moving call gets an operation id: derived from the
wallet owner and the idempotency key when the caller gives one, otherwise unique to the call.
The transaction that moves the money also inserts the operation record (request fingerprint
and full result) under that id. So a call that is retried, by the caller with the same key or
by our own retry loop after a commit whose outcome was unknown, either commits once or hits
the existing record and is answered from it: the same ids and figures, never a second movement.

Round trips in steady state: the wallet update, one insert of everything new (the operation
record, entries, reservation), the commit. Captures and releases add the reservation update.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from bson import Int64, ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, PyMongoError
from pymongo.read_concern import ReadConcern

from . import store
from .errors import (
    Conflict,
    DatabaseUnavailable,
    FieldError,
    IdempotencyKeyMismatch,
    InsufficientFunds,
    InvalidState,
    NotFound,
    ValidationFailed,
    WalletExists,
    WalletFrozen,
)
from .models import (
    EntryPage,
    EntryType,
    ExpiryReport,
    Movement,
    Reservation,
    ReservationPage,
    ReservationStatus,
    Wallet,
    WalletStatus,
)
from .transactions import RetryTransaction, TransactionRunner, is_transient
from .validation import (
    MAX_INT64,
    MAX_PAGE_SIZE,
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    Checks,
    decode_cursor,
    encode_cursor,
)

logger = logging.getLogger("wallet_core")

DEFAULT_TTL_SECONDS = 30 * 60
IDEMPOTENCY_RETENTION = timedelta(hours=24)
DUPLICATE_KEY = 11000
AFTER = ReturnDocument.AFTER


@dataclass(frozen=True, slots=True)
class _Call:
    """One invocation of a money-moving operation, shared by all of its transaction attempts."""

    name: str
    key: str | None
    fingerprint: str
    call_id: str

    @classmethod
    def start(cls, name: str, key: str | None, parameters: dict) -> _Call:
        canonical = json.dumps({"operation": name, "parameters": parameters}, sort_keys=True, separators=(",", ":"))
        return cls(name, key, hashlib.sha256(canonical.encode()).hexdigest(), uuid.uuid4().hex)

    def operation_id(self, owner_id: str) -> str:
        if self.key is None:
            return f"call:{self.call_id}"
        # Keys are scoped to the wallet owner: two owners may use the same key independently.
        return "key:" + hashlib.sha256(f"{owner_id}\x00{self.key}".encode()).hexdigest()


class _AlreadyRecorded(Exception):
    """The operation id already has a committed record: answer from it instead of moving money."""

    def __init__(self, operation_id: str, record: dict | None = None) -> None:
        super().__init__(operation_id)
        self.operation_id = operation_id
        self.record = record


class _WalletTaken(Exception):
    pass


@dataclass(slots=True)
class _ExpiryBatch:
    """One expiry transaction's work, shared by its attempts."""

    operation_id: str
    due: list[ObjectId]
    cutoff: datetime
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class _Details:
    """Caller-supplied context stored on entries and reservations."""

    reference_type: str | None
    reference_id: str | None
    metadata: dict

    def fields(self) -> dict:
        fields: dict = {"metadata": self.metadata}
        if self.reference_type is not None:
            fields["referenceType"] = self.reference_type
        if self.reference_id is not None:
            fields["referenceId"] = self.reference_id
        return fields

    def parameters(self) -> dict:
        return {"referenceType": self.reference_type, "referenceId": self.reference_id, "metadata": self.metadata}


class WalletService:
    """The typed API of the wallet. Thread-safe; share one instance per process.

    `owner_id` on an operation scopes it to that owner: another owner's wallet or reservation
    is reported as not found. Leave it out for administrative access.
    """

    def __init__(
        self,
        database: Database,
        *,
        time_budget: float = 5.0,
        clock: Callable[[], datetime] = store.utc_now_ms,
    ) -> None:
        self._database = database.with_options(codec_options=store.CODEC_OPTIONS)
        self._wallets = self._database[store.WALLETS]
        self._ledger = self._database[store.LEDGER]
        self._records = self._ledger.with_options(read_concern=ReadConcern("majority"))
        self._runner = TransactionRunner(database.client, time_budget=time_budget)
        self._clock = clock

    def ensure_indexes(self) -> None:
        self._read(lambda: store.ensure_indexes(self._database))

    def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers."""
        self._read(lambda: self._database.command("ping"))

    # ---------------------------------------------------------------- wallets

    def create_wallet(
        self,
        owner_id: str,
        currency: str,
        *,
        opening_balance: int = 0,
        idempotency_key: str | None = None,
        metadata: dict | None = None,
    ) -> Movement:
        """Open a wallet. A non-zero opening balance is journaled as a DEPOSIT entry."""
        checks = Checks()
        checks.token("ownerId", owner_id, max_length=256)
        checks.currency("currency", currency)
        checks.opening_balance("openingBalance", opening_balance)
        key = checks.optional_token("idempotencyKey", idempotency_key, max_length=255)
        details = _Details(None, None, checks.metadata("metadata", metadata))
        checks.done()
        call = _Call.start(
            "create_wallet",
            key,
            {"ownerId": owner_id, "currency": currency, "openingBalance": opening_balance, **details.parameters()},
        )

        def work(session: ClientSession) -> Movement:
            now = self._clock()
            operation_id = call.operation_id(owner_id)
            wallet = {
                "_id": ObjectId(),
                "ownerId": owner_id,
                "currency": currency,
                "balance": Int64(opening_balance),
                "held": Int64(0),
                "status": WalletStatus.ACTIVE.value,
                "sequence": Int64(1 if opening_balance else 0),
                "createdAt": now,
                "updatedAt": now,
            }
            self._wallets.insert_one(wallet, session=session)
            entries = []
            if opening_balance:
                entries.append(
                    _entry(
                        wallet, EntryType.DEPOSIT, opening_balance, opening_balance, 0, 1, operation_id, now, details
                    )
                )
            claim = store.wallet_claim(owner_id, currency, wallet["_id"], now)
            return self._record(session, call, operation_id, now, wallet, entries, claim=claim)

        try:
            return self._move(call, work)
        except _WalletTaken:
            claim = self._read(lambda: self._ledger.find_one({"_id": store.wallet_claim_id(owner_id, currency)}))
            existing_id = str(claim["walletId"]) if claim else ""
            raise WalletExists(
                f"owner already has a {currency} wallet: {existing_id}", existing_wallet_id=existing_id
            ) from None

    def get_wallet(self, wallet_id: str, *, owner_id: str | None = None) -> Wallet:
        checks = Checks()
        wallet_oid = checks.object_id("walletId", wallet_id)
        scope = _scope(checks, owner_id)
        checks.done()
        document = self._read(lambda: self._wallets.find_one({"_id": wallet_oid, **scope}))
        if document is None:
            raise NotFound(f"wallet {wallet_id} not found")
        return store.wallet_from_document(document)

    def freeze_wallet(self, wallet_id: str, *, owner_id: str | None = None) -> Wallet:
        """Stop money leaving the wallet (withdrawals, transfers out, new holds); deposits still arrive."""
        return self._set_status(wallet_id, WalletStatus.FROZEN, owner_id)

    def unfreeze_wallet(self, wallet_id: str, *, owner_id: str | None = None) -> Wallet:
        return self._set_status(wallet_id, WalletStatus.ACTIVE, owner_id)

    def _set_status(self, wallet_id: str, status: WalletStatus, owner_id: str | None) -> Wallet:
        checks = Checks()
        wallet_oid = checks.object_id("walletId", wallet_id)
        scope = _scope(checks, owner_id)
        checks.done()
        # One document, one atomic update: no transaction needed, and repeating it is harmless.
        document = self._read(
            lambda: self._wallets.find_one_and_update(
                {"_id": wallet_oid, **scope},
                {"$set": {"status": status.value, "updatedAt": self._clock()}},
                return_document=AFTER,
            )
        )
        if document is None:
            raise NotFound(f"wallet {wallet_id} not found")
        return store.wallet_from_document(document)

    # ---------------------------------------------------------------- deposits, withdrawals, transfers

    def deposit(
        self,
        wallet_id: str,
        amount: int,
        *,
        idempotency_key: str | None = None,
        reference_type: str | None = None,
        reference_id: str | None = None,
        metadata: dict | None = None,
        owner_id: str | None = None,
    ) -> Movement:
        checks = Checks()
        wallet_oid = checks.object_id("walletId", wallet_id)
        checks.amount("amount", amount)
        key = checks.optional_token("idempotencyKey", idempotency_key, max_length=255)
        details = _details(checks, reference_type, reference_id, metadata)
        scope = _scope(checks, owner_id)
        checks.done()
        call = _Call.start("deposit", key, {"walletId": wallet_id, "amount": amount, **details.parameters()})

        def work(session: ClientSession) -> Movement:
            now = self._clock()
            wallet = self._wallets.find_one_and_update(
                {"_id": wallet_oid, **scope},
                _change_wallet(now, balance=amount, sequence=1),
                return_document=AFTER,
                session=session,
            )
            if wallet is None:
                raise NotFound(f"wallet {wallet_id} not found")
            operation_id = call.operation_id(wallet["ownerId"])
            entry = _entry(wallet, EntryType.DEPOSIT, amount, amount, 0, wallet["sequence"], operation_id, now, details)
            return self._record(session, call, operation_id, now, wallet, [entry])

        return self._move(call, work)

    def withdraw(
        self,
        wallet_id: str,
        amount: int,
        *,
        idempotency_key: str | None = None,
        reference_type: str | None = None,
        reference_id: str | None = None,
        metadata: dict | None = None,
        owner_id: str | None = None,
    ) -> Movement:
        checks = Checks()
        wallet_oid = checks.object_id("walletId", wallet_id)
        checks.amount("amount", amount)
        key = checks.optional_token("idempotencyKey", idempotency_key, max_length=255)
        details = _details(checks, reference_type, reference_id, metadata)
        scope = _scope(checks, owner_id)
        checks.done()
        call = _Call.start("withdraw", key, {"walletId": wallet_id, "amount": amount, **details.parameters()})

        def work(session: ClientSession) -> Movement:
            now = self._clock()
            wallet = self._debit(session, wallet_oid, scope, amount, {"balance": -amount}, now)
            if wallet is None:
                self._refuse_debit(session, call, wallet_id, wallet_oid, scope, amount)
            operation_id = call.operation_id(wallet["ownerId"])
            entry = _entry(
                wallet, EntryType.WITHDRAWAL, amount, -amount, 0, wallet["sequence"], operation_id, now, details
            )
            return self._record(session, call, operation_id, now, wallet, [entry])

        return self._move(call, work)

    def transfer(
        self,
        from_wallet_id: str,
        to_wallet_id: str,
        amount: int,
        *,
        idempotency_key: str | None = None,
        reference_type: str | None = None,
        reference_id: str | None = None,
        metadata: dict | None = None,
        owner_id: str | None = None,
    ) -> Movement:
        """Move money between two wallets of one currency, atomically.

        `owner_id` must own the source wallet; the destination may belong to anyone. The
        destination's entry and wallet are in the result only when the caller may see them.
        """
        checks = Checks()
        source_oid = checks.object_id("fromWalletId", from_wallet_id)
        destination_oid = checks.object_id("toWalletId", to_wallet_id)
        if isinstance(from_wallet_id, str) and from_wallet_id == to_wallet_id:
            checks.fail("toWalletId", "must differ from fromWalletId")
        checks.amount("amount", amount)
        key = checks.optional_token("idempotencyKey", idempotency_key, max_length=255)
        details = _details(checks, reference_type, reference_id, metadata)
        scope = _scope(checks, owner_id)
        checks.done()
        call = _Call.start(
            "transfer",
            key,
            {"fromWalletId": from_wallet_id, "toWalletId": to_wallet_id, "amount": amount, **details.parameters()},
        )

        def work(session: ClientSession) -> Movement:
            now = self._clock()
            source = self._debit(session, source_oid, scope, amount, {"balance": -amount}, now)
            if source is None:
                self._refuse_debit(session, call, from_wallet_id, source_oid, scope, amount)
            destination = self._wallets.find_one_and_update(
                {"_id": destination_oid, "currency": source["currency"]},
                _change_wallet(now, balance=amount, sequence=1),
                return_document=AFTER,
                session=session,
            )
            if destination is None:
                exists = self._wallets.find_one({"_id": destination_oid}, {"_id": 1}, session=session)
                if exists is None:
                    raise NotFound(f"wallet {to_wallet_id} not found")
                raise ValidationFailed([FieldError("toWalletId", f"must hold {source['currency']} like the source")])
            operation_id = call.operation_id(source["ownerId"])
            out_entry = _entry(
                source, EntryType.TRANSFER_OUT, amount, -amount, 0, source["sequence"], operation_id, now, details
            )
            out_entry["counterpartyWalletId"] = destination_oid
            in_entry = _entry(
                destination,
                EntryType.TRANSFER_IN,
                amount,
                amount,
                0,
                destination["sequence"],
                operation_id,
                now,
                details,
            )
            in_entry["counterpartyWalletId"] = source_oid
            return self._record(
                session, call, operation_id, now, source, [out_entry, in_entry], counterparty_wallet=destination
            )

        return _visible_to(self._move(call, work), owner_id)

    # ---------------------------------------------------------------- reservations

    def create_reservation(
        self,
        wallet_id: str,
        amount: int,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        idempotency_key: str | None = None,
        reference_type: str | None = None,
        reference_id: str | None = None,
        metadata: dict | None = None,
        owner_id: str | None = None,
    ) -> Movement:
        """Hold `amount` of the available money until captured, released or expired."""
        checks = Checks()
        wallet_oid = checks.object_id("walletId", wallet_id)
        checks.amount("amount", amount)
        checks.integer("ttlSeconds", ttl_seconds, low=MIN_TTL_SECONDS, high=MAX_TTL_SECONDS)
        key = checks.optional_token("idempotencyKey", idempotency_key, max_length=255)
        details = _details(checks, reference_type, reference_id, metadata)
        scope = _scope(checks, owner_id)
        checks.done()
        call = _Call.start(
            "create_reservation",
            key,
            {"walletId": wallet_id, "amount": amount, "ttlSeconds": ttl_seconds, **details.parameters()},
        )

        def work(session: ClientSession) -> Movement:
            now = self._clock()
            wallet = self._debit(session, wallet_oid, scope, amount, {"held": amount}, now)
            if wallet is None:
                self._refuse_debit(session, call, wallet_id, wallet_oid, scope, amount)
            operation_id = call.operation_id(wallet["ownerId"])
            reservation = {
                "_id": ObjectId(),
                "kind": store.RESERVATION,
                "walletId": wallet_oid,
                "ownerId": wallet["ownerId"],
                "currency": wallet["currency"],
                "amount": Int64(amount),
                "capturedAmount": Int64(0),
                "releasedAmount": Int64(0),
                "status": ReservationStatus.HELD.value,
                "expiresAt": now + timedelta(seconds=ttl_seconds),
                **details.fields(),
                "operationId": operation_id,
                "createdAt": now,
                "updatedAt": now,
            }
            entry = _entry(wallet, EntryType.HOLD, amount, 0, amount, wallet["sequence"], operation_id, now, details)
            entry["reservationId"] = reservation["_id"]
            return self._record(
                session, call, operation_id, now, wallet, [entry], reservation=reservation, new_reservation=True
            )

        return self._move(call, work)

    def get_reservation(self, reservation_id: str, *, owner_id: str | None = None) -> Reservation:
        checks = Checks()
        reservation_oid = checks.object_id("reservationId", reservation_id)
        scope = _scope(checks, owner_id)
        checks.done()
        document = self._read(
            lambda: self._ledger.find_one({"_id": reservation_oid, "kind": store.RESERVATION, **scope})
        )
        if document is None:
            raise NotFound(f"reservation {reservation_id} not found")
        return store.reservation_from_document(document)

    def capture_reservation(
        self,
        reservation_id: str,
        amount: int | None = None,
        *,
        idempotency_key: str | None = None,
        reference_type: str | None = None,
        reference_id: str | None = None,
        metadata: dict | None = None,
        owner_id: str | None = None,
    ) -> Movement:
        """Take `amount` (default: all) of a hold. Final: any remainder is released in the same transaction."""
        checks = Checks()
        reservation_oid = checks.object_id("reservationId", reservation_id)
        checks.optional_amount("amount", amount)
        key = checks.optional_token("idempotencyKey", idempotency_key, max_length=255)
        details = _details(checks, reference_type, reference_id, metadata)
        scope = _scope(checks, owner_id)
        checks.done()
        call = _Call.start(
            "capture_reservation", key, {"reservationId": reservation_id, "amount": amount, **details.parameters()}
        )
        captured: Int64 | str = "$amount" if amount is None else Int64(amount)

        def work(session: ClientSession) -> Movement:
            now = self._clock()
            condition = {"expiresAt": {"$gt": now}}
            if amount is not None:
                condition["amount"] = {"$gte": Int64(amount)}
            reservation = self._close_reservation(
                session,
                reservation_oid,
                scope,
                condition,
                {
                    "status": ReservationStatus.CAPTURED.value,
                    "capturedAmount": captured,
                    "releasedAmount": {"$toLong": {"$subtract": ["$amount", captured]}},
                },
                now,
            )
            if reservation is None:
                self._refuse_reservation(session, call, reservation_id, reservation_oid, scope, amount, now)
            return self._settle(session, call, reservation, now, details)

        return self._move(call, work)

    def release_reservation(
        self,
        reservation_id: str,
        *,
        idempotency_key: str | None = None,
        reference_type: str | None = None,
        reference_id: str | None = None,
        metadata: dict | None = None,
        owner_id: str | None = None,
    ) -> Movement:
        """Give the whole hold back to the available balance."""
        checks = Checks()
        reservation_oid = checks.object_id("reservationId", reservation_id)
        key = checks.optional_token("idempotencyKey", idempotency_key, max_length=255)
        details = _details(checks, reference_type, reference_id, metadata)
        scope = _scope(checks, owner_id)
        checks.done()
        call = _Call.start("release_reservation", key, {"reservationId": reservation_id, **details.parameters()})

        def work(session: ClientSession) -> Movement:
            now = self._clock()
            reservation = self._close_reservation(
                session,
                reservation_oid,
                scope,
                {},
                {"status": ReservationStatus.RELEASED.value, "releasedAmount": "$amount"},
                now,
            )
            if reservation is None:
                self._refuse_reservation(session, call, reservation_id, reservation_oid, scope, None, now)
            return self._settle(session, call, reservation, now, details)

        return self._move(call, work)

    def list_reservations(
        self,
        wallet_id: str,
        *,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner_id: str | None = None,
    ) -> ReservationPage:
        """A wallet's reservations, newest first, optionally of one status."""
        checks = Checks()
        wallet_oid = checks.object_id("walletId", wallet_id)
        wanted = checks.choice("status", status, ReservationStatus)
        checks.integer("limit", limit, low=1, high=MAX_PAGE_SIZE)
        scope = _scope(checks, owner_id)
        cursor_scope = f"reservations:{wallet_id}:{status or ''}"
        position = decode_cursor(checks, cursor, cursor_scope)
        if position is not None and not ObjectId.is_valid(position):
            checks.fail("cursor", "is not a cursor returned by this listing")
        checks.done()
        self.get_wallet(wallet_id, owner_id=scope.get("ownerId"))
        query: dict = {"walletId": wallet_oid, "kind": store.RESERVATION}
        if wanted is not None:
            query["status"] = wanted.value
        if position is not None:
            query["_id"] = {"$lt": ObjectId(position)}
        documents = self._read(lambda: list(self._ledger.find(query).sort("_id", -1).limit(limit + 1)))
        items = tuple(store.reservation_from_document(document) for document in documents[:limit])
        next_cursor = encode_cursor(cursor_scope, items[-1].id) if len(documents) > limit else None
        return ReservationPage(items=items, next_cursor=next_cursor)

    # ---------------------------------------------------------------- journal

    def list_transactions(
        self,
        wallet_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        entry_type: str | None = None,
        owner_id: str | None = None,
    ) -> EntryPage:
        """A wallet's journal, newest first. The cursor is a position in the wallet's sequence.

        A wallet's sequence numbers are dense (1..n, one per entry, written with the wallet in one
        transaction), so a page of the whole journal is the exact range (top - limit, top] below
        the wallet's sequence as just read, or below the cursor: one bounded index range, the same
        cost at any depth. A page of one entry type is a range scan from the cursor down."""
        checks = Checks()
        wallet_oid = checks.object_id("walletId", wallet_id)
        wanted = checks.choice("type", entry_type, EntryType)
        checks.integer("limit", limit, low=1, high=MAX_PAGE_SIZE)
        scope = _scope(checks, owner_id)
        cursor_scope = f"transactions:{wallet_id}:{entry_type or ''}"
        position = decode_cursor(checks, cursor, cursor_scope)
        # ASCII digits only ("²".isdigit() is true) and within Int64, or int() and Int64() fail later.
        if position is not None and not (position.isascii() and position.isdigit() and int(position) <= MAX_INT64):
            checks.fail("cursor", "is not a cursor returned by this listing")
        checks.done()
        wallet = self.get_wallet(wallet_id, owner_id=scope.get("ownerId"))
        query: dict = {"walletId": wallet_oid, "kind": store.ENTRY}
        if wanted is None:
            top = wallet.sequence if position is None else min(wallet.sequence, int(position) - 1)
            bottom = max(0, top - limit)
            query["sequence"] = {"$gt": Int64(bottom), "$lte": Int64(top)}
            documents = self._read(lambda: list(self._ledger.find(query).sort("sequence", -1)))
            items = tuple(store.entry_from_document(document) for document in documents)
            more = bottom > 0
        else:
            query["type"] = wanted.value
            if position is not None:
                query["sequence"] = {"$lt": Int64(int(position))}
            documents = self._read(lambda: list(self._ledger.find(query).sort("sequence", -1).limit(limit + 1)))
            items = tuple(store.entry_from_document(document) for document in documents[:limit])
            more = len(documents) > limit
        next_cursor = encode_cursor(cursor_scope, items[-1].sequence) if more and items else None
        return EntryPage(items=items, next_cursor=next_cursor)

    # ---------------------------------------------------------------- expiry

    def expire_reservations(
        self, now: datetime | None = None, batch_size: int = 100, *, time_limit: float = 50.0
    ) -> ExpiryReport:
        """Expire every hold whose time has come, one transaction per batch, and release its money.

        Safe to run concurrently with itself and with captures and releases: a hold changes from
        HELD only inside a transaction that also moves its money, so each hold's money moves once.
        A hold that cannot be expired (its wallet is missing or holds less than it should) is left
        HELD, logged and reported as skipped; a batch that keeps failing is reported as failed.
        Neither is tried again in this run. No batch starts after `time_limit` seconds.
        """
        checks = Checks()
        cutoff = self._clock() if now is None else checks.aware_datetime("now", now)
        checks.integer("batchSize", batch_size, low=1, high=1000)
        checks.done()
        stop_at = time.monotonic() + time_limit
        expired = 0
        passed_over: list[ObjectId] = []
        skipped: list[str] = []
        failed: list[str] = []
        while time.monotonic() < stop_at:
            query: dict = {
                "kind": store.RESERVATION,
                "status": ReservationStatus.HELD.value,
                "expiresAt": {"$lte": cutoff},
            }
            if passed_over:
                query["_id"] = {"$nin": passed_over}
            due = self._read(
                lambda query=query: [
                    document["_id"]
                    for document in self._ledger.find(query, {"_id": 1}).sort("expiresAt", 1).limit(batch_size)
                ]
            )
            if not due:
                break
            try:
                batch = _ExpiryBatch(f"expiry:{uuid.uuid4().hex}", due, cutoff)
                count, unexpirable = self._runner.run(lambda session, batch=batch: self._expire_batch(session, batch))
            except (PyMongoError, RetryTransaction):
                logger.exception("expiry batch of %d holds failed; they stay HELD until the next run", len(due))
                failed.extend(str(reservation_id) for reservation_id in due)
                passed_over.extend(due)
                continue
            expired += count
            skipped.extend(str(reservation_id) for reservation_id in unexpirable)
            passed_over.extend(unexpirable)
        return ExpiryReport(
            expired=expired,
            skipped=len(skipped),
            failed=len(failed),
            skipped_reservation_ids=tuple(skipped),
            failed_reservation_ids=tuple(failed),
        )

    def _expire_batch(self, session: ClientSession, batch: _ExpiryBatch) -> tuple[int, list]:
        """Expire one batch; returns (holds expired, holds that cannot be expired)."""
        if batch.attempts > 0:
            # A retry after a commit whose outcome was unknown: if it did commit, report what it did.
            record = self._ledger.find_one({"_id": batch.operation_id, "kind": store.OPERATION}, session=session)
            if record is not None:
                return record["expired"], record["skippedReservationIds"]
        batch.attempts += 1
        due, cutoff = batch.due, batch.cutoff
        now = self._clock()
        holds = list(
            self._ledger.find(
                {
                    "_id": {"$in": due},
                    "kind": store.RESERVATION,
                    "status": ReservationStatus.HELD.value,
                    "expiresAt": {"$lte": cutoff},
                },
                session=session,
            )
        )
        if not holds:
            return 0, []
        by_wallet: dict[ObjectId, list[dict]] = {}
        for hold in holds:
            by_wallet.setdefault(hold["walletId"], []).append(hold)
        wallets = {
            wallet["_id"]: wallet for wallet in self._wallets.find({"_id": {"$in": list(by_wallet)}}, session=session)
        }
        unexpirable: list[ObjectId] = []
        expirable: list[tuple[dict, list[dict]]] = []
        for wallet_id, wallet_holds in by_wallet.items():
            wallet = wallets.get(wallet_id)
            total = sum(hold["amount"] for hold in wallet_holds)
            if wallet is None or wallet["held"] < total:
                logger.error(
                    "cannot expire holds %s: wallet %s %s",
                    [str(hold["_id"]) for hold in wallet_holds],
                    wallet_id,
                    "is missing" if wallet is None else f"holds {wallet['held']} < {total}",
                )
                unexpirable.extend(hold["_id"] for hold in wallet_holds)
            else:
                expirable.append((wallet, wallet_holds))
        if not expirable:
            return 0, unexpirable

        operation_id = batch.operation_id
        hold_ids = [hold["_id"] for _, wallet_holds in expirable for hold in wallet_holds]
        updated = self._ledger.update_many(
            {"_id": {"$in": hold_ids}, "kind": store.RESERVATION, "status": ReservationStatus.HELD.value},
            [
                {
                    "$set": {
                        "status": ReservationStatus.EXPIRED.value,
                        "releasedAmount": "$amount",
                        "updatedAt": now,
                    }
                }
            ],
            session=session,
        )
        if updated.matched_count != len(hold_ids):
            raise RetryTransaction("holds changed during expiry")
        wallet_updates = []
        entries = []
        for wallet, wallet_holds in expirable:
            total = sum(hold["amount"] for hold in wallet_holds)
            # Guard on the held amount we read: a wallet changed since then fails the batch, which is retried.
            wallet_updates.append(
                UpdateOne(
                    {"_id": wallet["_id"], "held": wallet["held"], "sequence": wallet["sequence"]},
                    _change_wallet(now, held=-total, sequence=len(wallet_holds)),
                )
            )
            state = dict(wallet)
            for hold in wallet_holds:
                state["held"] -= hold["amount"]
                state["sequence"] += 1
                entry = _entry(
                    state,
                    EntryType.EXPIRE,
                    hold["amount"],
                    0,
                    -hold["amount"],
                    state["sequence"],
                    operation_id,
                    now,
                    _Details(hold.get("referenceType"), hold.get("referenceId"), {}),
                )
                entry["reservationId"] = hold["_id"]
                entries.append(entry)
        written = self._wallets.bulk_write(wallet_updates, ordered=True, session=session)
        if written.matched_count != len(wallet_updates):
            raise RetryTransaction("wallets changed during expiry")
        record = {
            "_id": operation_id,
            "kind": store.OPERATION,
            "operation": "expire_reservations",
            "expired": len(hold_ids),
            "skippedReservationIds": unexpirable,
            "createdAt": now,
            "purgeAfter": now + IDEMPOTENCY_RETENTION,
        }
        self._ledger.insert_many([record, *entries], ordered=True, session=session)
        return len(hold_ids), unexpirable

    # ---------------------------------------------------------------- shared steps

    def _debit(
        self, session: ClientSession, wallet_oid: ObjectId, scope: dict, amount: int, changes: dict, now: datetime
    ) -> dict | None:
        """Take `amount` out of the available money of an active wallet, or return None."""
        return self._wallets.find_one_and_update(
            {
                "_id": wallet_oid,
                **scope,
                "status": WalletStatus.ACTIVE.value,
                "$expr": {"$gte": [{"$subtract": ["$balance", "$held"]}, Int64(amount)]},
            },
            _change_wallet(now, **changes, sequence=1),
            return_document=AFTER,
            session=session,
        )

    def _refuse_debit(
        self, session: ClientSession, call: _Call, wallet_id: str, wallet_oid: ObjectId, scope: dict, amount: int
    ) -> NoReturn:
        wallet = self._wallets.find_one({"_id": wallet_oid, **scope}, session=session)
        if wallet is None:
            raise NotFound(f"wallet {wallet_id} not found")
        self._raise_if_recorded(session, call, wallet["ownerId"])
        if wallet["status"] != WalletStatus.ACTIVE.value:
            raise WalletFrozen(f"wallet {wallet_id} is frozen: no money may leave it")
        available = wallet["balance"] - wallet["held"]
        raise InsufficientFunds(
            f"wallet {wallet_id} has {available} available, {amount} requested", available=available, requested=amount
        )

    def _close_reservation(
        self, session: ClientSession, reservation_oid: ObjectId, scope: dict, condition: dict, changes: dict, now
    ) -> dict | None:
        """Move a HELD reservation to a terminal state, or return None when it is not HELD (or fails `condition`)."""
        return self._ledger.find_one_and_update(
            {
                "_id": reservation_oid,
                "kind": store.RESERVATION,
                **scope,
                "status": ReservationStatus.HELD.value,
                **condition,
            },
            [{"$set": {**changes, "updatedAt": now}}],
            return_document=AFTER,
            session=session,
        )

    def _refuse_reservation(
        self,
        session: ClientSession,
        call: _Call,
        reservation_id: str,
        reservation_oid: ObjectId,
        scope: dict,
        amount: int | None,
        now: datetime,
    ) -> NoReturn:
        reservation = self._ledger.find_one(
            {"_id": reservation_oid, "kind": store.RESERVATION, **scope}, session=session
        )
        if reservation is None:
            raise NotFound(f"reservation {reservation_id} not found")
        self._raise_if_recorded(session, call, reservation["ownerId"])
        if reservation["status"] != ReservationStatus.HELD.value:
            raise InvalidState(f"reservation {reservation_id} is already {reservation['status']}")
        if reservation["expiresAt"] <= now:
            raise InvalidState(f"reservation {reservation_id} expired at {reservation['expiresAt'].isoformat()}")
        if amount is not None and amount > reservation["amount"]:
            raise ValidationFailed([FieldError("amount", f"must be at most the held amount {reservation['amount']}")])
        raise RetryTransaction("reservation changed while it was read")

    def _settle(self, session: ClientSession, call: _Call, reservation: dict, now: datetime, details: _Details):
        """Apply a closed reservation's money to its wallet: the captured part leaves, the rest is released."""
        captured = reservation["capturedAmount"]
        released = reservation["releasedAmount"]
        legs = (1 if captured else 0) + (1 if released else 0)
        wallet = self._wallets.find_one_and_update(
            {"_id": reservation["walletId"], "held": {"$gte": reservation["amount"]}, "balance": {"$gte": captured}},
            _change_wallet(now, balance=-captured, held=-reservation["amount"], sequence=legs),
            return_document=AFTER,
            session=session,
        )
        if wallet is None:
            raise InvalidState(f"wallet {reservation['walletId']} holds less than reservation {reservation['_id']}")
        operation_id = call.operation_id(reservation["ownerId"])
        entries = []
        sequence = wallet["sequence"] - legs
        held_before = wallet["held"] + reservation["amount"]
        balance_before = wallet["balance"] + captured
        if captured:
            sequence += 1
            state = {**wallet, "balance": balance_before - captured, "held": held_before - captured}
            entries.append(
                _entry(state, EntryType.CAPTURE, captured, -captured, -captured, sequence, operation_id, now, details)
            )
        if released:
            sequence += 1
            entries.append(
                _entry(wallet, EntryType.RELEASE, released, 0, -released, sequence, operation_id, now, details)
            )
        for entry in entries:
            entry["reservationId"] = reservation["_id"]
        return self._record(session, call, operation_id, now, wallet, entries, reservation=reservation)

    def _record(
        self,
        session: ClientSession,
        call: _Call,
        operation_id: str,
        now: datetime,
        wallet: dict,
        entries: list[dict],
        *,
        reservation: dict | None = None,
        new_reservation: bool = False,
        counterparty_wallet: dict | None = None,
        claim: dict | None = None,
    ) -> Movement:
        """Insert the operation record and everything the movement creates, in one command.

        `claim`: a new wallet's owner-and-currency claim, right after the record: a duplicate there
        means the owner has a wallet in that currency already."""
        movement = Movement(
            operation_id=operation_id,
            entries=tuple(store.entry_from_document(entry) for entry in entries),
            wallet=store.wallet_from_document(wallet),
            counterparty_wallet=None
            if counterparty_wallet is None
            else store.wallet_from_document(counterparty_wallet),
            reservation=None if reservation is None else store.reservation_from_document(reservation),
        )
        record = {
            "_id": operation_id,
            "kind": store.OPERATION,
            "operation": call.name,
            "ownerId": wallet["ownerId"],
            "idempotencyKey": call.key,
            "fingerprint": call.fingerprint,
            "callId": call.call_id,
            "result": movement.model_dump_json(exclude={"replayed"}),
            "createdAt": now,
            "purgeAfter": now + IDEMPOTENCY_RETENTION,
        }
        # The record goes first: a duplicate at index 0 means this operation id has already committed.
        claims = [claim] if claim is not None else []
        documents = [record, *claims, *entries, *([reservation] if new_reservation else [])]
        try:
            self._ledger.insert_many(documents, ordered=True, session=session)
        except BulkWriteError as error:
            first = error.details["writeErrors"][0]
            if first["code"] == DUPLICATE_KEY and first["index"] == 0:
                raise _AlreadyRecorded(operation_id) from error
            if first["code"] == DUPLICATE_KEY and claims and first["index"] == 1:
                raise _WalletTaken from error
            raise
        return movement

    def _raise_if_recorded(self, session: ClientSession, call: _Call, owner_id: str) -> None:
        """Before refusing a call, check whether it was already applied (a replay or our own retry)."""
        operation_id = call.operation_id(owner_id)
        record = self._ledger.find_one({"_id": operation_id, "kind": store.OPERATION}, session=session)
        if record is not None:
            raise _AlreadyRecorded(operation_id, record)

    def _move(self, call: _Call, work: Callable[[ClientSession], Movement]) -> Movement:
        try:
            return self._runner.run(work)
        except _AlreadyRecorded as recorded:
            operation_id = recorded.operation_id
            record = recorded.record or self._read(
                lambda: self._records.find_one({"_id": operation_id, "kind": store.OPERATION})
            )
            if record is None:
                raise Conflict("the operation record vanished while it was read; retry") from None
            return self._replay(call, record)
        except (PyMongoError, RetryTransaction) as error:
            translated = _translate(error)
            if translated is None:
                raise
            raise translated from error

    def _replay(self, call: _Call, record: dict) -> Movement:
        if record["fingerprint"] != call.fingerprint:
            raise IdempotencyKeyMismatch(
                f"idempotency key was used for a different {record['operation']} request"
                if record["operation"] != call.name
                else "idempotency key was used with different parameters"
            )
        movement = Movement.model_validate_json(record["result"])
        return movement.model_copy(update={"replayed": record["callId"] != call.call_id})

    def _read[T](self, read: Callable[[], T]) -> T:
        try:
            return read()
        except PyMongoError as error:
            translated = _translate(error)
            if translated is None:
                raise
            raise translated from error


def _scope(checks: Checks, owner_id: object) -> dict:
    if owner_id is None:
        return {}
    return {"ownerId": checks.token("ownerId", owner_id, max_length=256)}


def _details(checks: Checks, reference_type: object, reference_id: object, metadata: object) -> _Details:
    return _Details(
        checks.optional_token("referenceType", reference_type, max_length=64),
        checks.optional_token("referenceId", reference_id, max_length=128),
        checks.metadata("metadata", metadata),
    )


def _entry(
    wallet_after: dict,
    entry_type: EntryType,
    amount: int,
    balance_delta: int,
    held_delta: int,
    sequence: int,
    operation_id: str,
    now: datetime,
    details: _Details,
) -> dict:
    """A journal entry; `wallet_after` is the wallet's state right after this entry.

    Its id is the wallet id and the entry's sequence number: one entry per wallet position,
    enforced by the _id index, which every server checks by lookup.
    """
    return {
        "_id": f"{wallet_after['_id']}:{sequence}",
        "kind": store.ENTRY,
        "walletId": wallet_after["_id"],
        "type": entry_type.value,
        "amount": Int64(amount),
        "balanceDelta": Int64(balance_delta),
        "heldDelta": Int64(held_delta),
        "balanceAfter": Int64(wallet_after["balance"]),
        "heldAfter": Int64(wallet_after["held"]),
        "sequence": Int64(sequence),
        **details.fields(),
        "operationId": operation_id,
        "createdAt": now,
    }


def _change_wallet(now: datetime, **deltas: int) -> list[dict]:
    """A pipeline update adding `deltas` to a wallet's counters.

    MongoDB keeps long + long as long, but turns a sum past Int64 into a double; $toLong makes
    that an error (ConversionFailure) instead of a balance that is silently no longer exact.
    """
    fields = {field: {"$toLong": {"$add": [f"${field}", Int64(delta)]}} for field, delta in deltas.items()}
    return [{"$set": {**fields, "updatedAt": now}}]


def _visible_to(movement: Movement, owner_id: str | None) -> Movement:
    """Hide the other side of a transfer from a caller who does not own it."""
    counterparty = movement.counterparty_wallet
    if owner_id is None or counterparty is None or counterparty.owner_id == owner_id:
        return movement
    return movement.model_copy(
        update={
            "counterparty_wallet": None,
            "entries": tuple(entry for entry in movement.entries if entry.wallet_id == movement.wallet.id),
        }
    )


def _translate(error: BaseException) -> Exception | None:
    """The taxonomy's name for a database failure that outlived the retries; None for anything else."""
    if isinstance(error, ConnectionFailure) or getattr(error, "timeout", False):
        return DatabaseUnavailable("the database could not be reached in time; retry with the same idempotency key")
    if is_transient(error):
        return Conflict("concurrent updates kept colliding; retry with the same idempotency key")
    return None
