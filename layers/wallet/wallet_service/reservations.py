"""Holds (reservations): hold part of a wallet's available money for a time, then capture all or
part of it (the rest is released in the same transaction) or release it. A hold left open is
expired by the expiry job (expiry.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NoReturn

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession

from . import answers, commands, documents, reads
from .errors import FieldError, InvalidState, NotFound, ValidationFailed
from .idempotency import Call, move, raise_if_recorded, record
from .models import EntryType, Movement, Reservation, ReservationPage, ReservationStatus
from .movements import credit_or_refuse, debit_or_refuse, details_parameters, hold_entries, placed, visible_to
from .postings import REVENUE, Details, Posting
from .queries import Database, close_reservation, settle
from .transactions import RetryTransaction
from .validation import encode_cursor
from .wallets import get_wallet


def create_reservation(db: Database, command: commands.WalletAmount) -> Movement:
    """Hold `amount` of the available money until captured, released or expired."""
    common = command.common
    call = Call.start(
        "create_reservation",
        common.key,
        {
            "walletId": command.wallet_id,
            "amount": command.amount,
            "ttlSeconds": command.ttl_seconds,
            **details_parameters(common.details),
        },
    )

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        reservation_oid = ObjectId()
        postings = [Posting(EntryType.HOLD, command.amount, common.details, reservation_id=reservation_oid)]
        wallet = debit_or_refuse(
            db, session, call, command.wallet_id, command.wallet_oid, common.owner_filter, command.amount, postings, now
        )
        operation_id = call.operation_id(wallet["ownerId"])
        expires_at = now + timedelta(seconds=command.ttl_seconds)
        reservation = documents.new_reservation(wallet, command.amount, expires_at, common.details, operation_id, now)
        reservation["_id"] = reservation_oid
        entries = placed(wallet, postings, operation_id, now)
        return record(db, session, call, now, wallet, entries, reservation=reservation, new_reservation=True)

    return move(db, call, work)


def get_reservation(db: Database, reservation: reads.One) -> Reservation:
    query = {"_id": reservation.oid, "kind": documents.RESERVATION, **reservation.owner_filter}
    document = db.read(lambda: db.ledger.find_one(query))
    if document is None:
        raise NotFound(f"reservation {reservation.id} not found")
    return answers.reservation_from_document(document)


def capture_reservation(db: Database, command: commands.CloseHold) -> Movement:
    """Take `amount` (default: all) of a hold, to its `splits` (default: all to @revenue). Final:
    any remainder is released in the same transaction."""
    amount = command.amount
    captured: Int64 | str = "$amount" if amount is None else Int64(amount)
    splits = [split.as_document() for split in command.splits] or [{"account": REVENUE, "amount": captured}]

    def close(session: ClientSession, now: datetime) -> dict | None:
        condition: dict = {"expiresAt": {"$gt": now}}
        if amount is not None:
            condition["amount"] = {"$gte": Int64(amount)}
        elif command.splits:  # all of the hold, which the splits must add up to
            condition["amount"] = Int64(sum(split.amount for split in command.splits))
        changes = {
            "status": ReservationStatus.CAPTURED.value,
            "capturedAmount": captured,
            "releasedAmount": {"$toLong": {"$subtract": ["$amount", captured]}},
            "captures": [{"id": ObjectId(), "amount": captured, "splits": splits, "createdAt": now}],
        }
        return close_reservation(
            db, session, command.reservation_oid, command.common.owner_filter, condition, changes, now
        )

    parameters = {"amount": amount, "splits": [split.as_parameter() for split in command.splits]}
    movement = _close("capture_reservation", db, command, parameters, close)
    return visible_to(movement, command.common.owner_filter.get("ownerId"))


def release_reservation(db: Database, command: commands.CloseHold) -> Movement:
    """Give the whole hold back to the available balance."""

    def close(session: ClientSession, now: datetime) -> dict | None:
        changes = {"status": ReservationStatus.RELEASED.value, "releasedAmount": "$amount"}
        return close_reservation(db, session, command.reservation_oid, command.common.owner_filter, {}, changes, now)

    return _close("release_reservation", db, command, {}, close)


def _close(name: str, db: Database, command: commands.CloseHold, parameters: dict, close) -> Movement:
    common = command.common
    call = Call.start(
        name, common.key, {"reservationId": command.reservation_id, **parameters, **details_parameters(common.details)}
    )

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        reservation = close(session, now)
        if reservation is None:
            _refuse(db, session, call, command, now)
        return _settle(db, session, call, reservation, now, common.details)

    return move(db, call, work)


def settlement(reservation: dict, details: Details) -> list[Posting]:
    """The postings of a closed hold: what was captured leaves, the rest is released."""
    postings = []
    for entry_type, amount in (
        (EntryType.CAPTURE, reservation["capturedAmount"]),
        (EntryType.RELEASE, reservation["releasedAmount"]),
    ):
        if amount:
            postings.append(Posting(entry_type, amount, details, reservation_id=reservation["_id"]))
    return postings


def _settle(db: Database, session: ClientSession, call: Call, reservation: dict, now, details: Details) -> Movement:
    own = settlement(reservation, details)
    wallet = settle(db, session, reservation, own, now)
    if wallet is None:
        raise_if_recorded(db, session, call, reservation["ownerId"])
        raise InvalidState(f"wallet {reservation['walletId']} holds less than reservation {reservation['_id']}")
    operation_id = call.operation_id(reservation["ownerId"])
    entries = [*placed(wallet, own, operation_id, now), *_pay(db, session, reservation, details, operation_id, now)]
    return record(db, session, call, now, wallet, entries, reservation=reservation)


def _pay(db: Database, session: ClientSession, hold: dict, details: Details, operation_id: str, now) -> list[dict]:
    """The captured money arriving at the capture's destinations, a CAPTURE_IN on each: a wallet is
    credited (a frozen one still receives, as with a deposit); a platform account gets its entry."""
    if not hold["capturedAmount"]:
        return []
    currency = hold["currency"]
    splits = hold["captures"][-1]["splits"]
    if any(split.get("walletId") == hold["walletId"] for split in splits):
        raise ValidationFailed([FieldError("splits", f"wallet {hold['walletId']} is the hold's own wallet")])

    def credit(split: dict, posting: Posting) -> dict:
        wallet_id = str(split["walletId"])
        match = {"_id": split["walletId"], "currency": currency}
        try:
            return credit_or_refuse(db, session, match, wallet_id, [posting], now)
        except (NotFound, ValidationFailed):
            raise ValidationFailed([FieldError("splits", f"no {currency} wallet {wallet_id}")]) from None

    return hold_entries(db, session, hold, splits, EntryType.CAPTURE_IN, "splits", details, operation_id, now, credit)


def _refuse(db: Database, session: ClientSession, call: Call, command: commands.CloseHold, now) -> NoReturn:
    query = {"_id": command.reservation_oid, "kind": documents.RESERVATION, **command.common.owner_filter}
    reservation = db.ledger.find_one(query, session=session)
    if reservation is None:
        raise NotFound(f"reservation {command.reservation_id} not found")
    raise_if_recorded(db, session, call, reservation["ownerId"])
    if reservation["status"] != ReservationStatus.HELD.value:
        raise InvalidState(f"reservation {command.reservation_id} is already {reservation['status']}")
    if reservation["expiresAt"] <= now:
        raise InvalidState(f"reservation {command.reservation_id} expired at {reservation['expiresAt'].isoformat()}")
    if command.amount is not None and command.amount > reservation["amount"]:
        raise ValidationFailed([FieldError("amount", f"must be at most the held amount {reservation['amount']}")])
    if (
        command.amount is None
        and command.splits
        and sum(split.amount for split in command.splits) != reservation["amount"]
    ):
        raise ValidationFailed([FieldError("splits", f"must add up to the captured amount {reservation['amount']}")])
    raise RetryTransaction("reservation changed while it was read")


def list_reservations(db: Database, page: reads.Page) -> ReservationPage:
    """A wallet's reservations, newest first, optionally of one status."""
    get_wallet(db, page.wallet)
    query: dict = {"walletId": page.wallet.oid, "kind": documents.RESERVATION}
    if page.kind is not None:
        query["status"] = page.kind.value
    if page.position is not None:
        query["_id"] = {"$lt": ObjectId(page.position)}
    found = db.read(lambda: list(db.ledger.find(query).sort("_id", -1).limit(page.limit + 1)))
    items = tuple(answers.reservation_from_document(document) for document in found[: page.limit])
    next_cursor = encode_cursor(page.cursor_scope, items[-1].id) if len(found) > page.limit else None
    return ReservationPage(items=items, next_cursor=next_cursor)
