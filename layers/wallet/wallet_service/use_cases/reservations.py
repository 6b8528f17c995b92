"""Holds (reservations): hold part of a wallet's available money for a time, raise it
(increments.py), capture it in one or several parts, release it; a hold left open is expired by
the expiry job (expiry.py), which releases or captures what it still holds.

A hold's figures always add up: captured + released + still held = amount (all it has held).
Money is released only when the hold ends (a final capture, a release, an expiry), so the
released part of a change is the hold's releasedAmount once the change has ended it.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NoReturn

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession

from ..ledger import answers, hold_commands, reads
from ..ledger.errors import FieldError, InvalidState, NotFound, ValidationFailed
from ..ledger.models import (
    OPEN_HOLD_STATUSES,
    EntryType,
    Movement,
    OnExpiry,
    Reservation,
    ReservationPage,
    ReservationStatus,
)
from ..ledger.postings import REVENUE, Details, Posting
from ..ledger.request import Common
from ..ledger.validation import encode_cursor
from ..storage import documents
from ..storage.idempotency import Call, move, raise_if_recorded, record
from ..storage.queries import Database, change_hold, settle
from ..storage.transactions import RetryTransaction
from .accounts import require_open
from .movements import credit_or_refuse, debit_or_refuse, hold_entries, placed, visible_to
from .wallets import get_wallet

# What an open hold still holds, as an aggregation expression.
STILL_HELD = {"$subtract": ["$amount", {"$add": ["$capturedAmount", "$releasedAmount"]}]}


def create_reservation(db: Database, command: hold_commands.Hold) -> Movement:
    """Hold `amount` of the available money until captured, released or expired."""
    common = command.common
    capture_to = command.capture_to
    place = None if capture_to is None else [capture_to.wallet_id, capture_to.account]
    parameters = {"walletId": command.wallet_id, "amount": command.amount, "ttlSeconds": command.ttl_seconds}
    call = Call.start(
        "create_reservation", common, {**parameters, "onExpiry": command.on_expiry.value, "captureTo": place}
    )

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        held = Posting(EntryType.HOLD, command.amount, common.details)  # its hold's id is minted below
        capture_to = None
        if command.on_expiry is OnExpiry.CAPTURE:
            capture_to = functools.partial(_capture_to, db, session, command)
        wallet = debit_or_refuse(
            db,
            session,
            call,
            command.wallet_id,
            command.wallet_oid,
            common.owner_filter,
            command.amount,
            [held],
            now,
            check=capture_to,
        )
        on_expiry = {"onExpiry": command.on_expiry.value}
        if capture_to is not None:
            on_expiry["captureTo"] = capture_to(wallet)
        operation_id = call.operation_id(wallet["ownerId"])
        expires_at = now + timedelta(seconds=command.ttl_seconds)
        reservation = documents.new_reservation(
            wallet, command.amount, expires_at, on_expiry, common.details, operation_id, now
        )  # its id carries the owner's bucket, known once the wallet is
        postings = [replace(held, reservation_id=reservation["_id"])]
        entries = placed(wallet, postings, operation_id, now)
        return record(db, session, call, now, wallet, entries, reservation=reservation, new_reservation=True)

    return move(db, call, work)


def _capture_to(db: Database, session: ClientSession, command: hold_commands.Hold, wallet: dict) -> dict:
    """Where an expiry's capture goes, checked now so that the expiry cannot fail on it: an open
    platform account (default @revenue), or another wallet in the hold's currency."""
    place = command.capture_to
    currency = wallet["currency"]
    if place is None or place.account is not None:
        account = REVENUE if place is None else place.account
        require_open(db, "captureTo.account", [account], currency)
        return {"account": account}
    if place.wallet_oid == wallet["_id"]:
        raise ValidationFailed([FieldError("captureTo.walletId", "must not be the hold's own wallet")])
    payee = {"_id": place.wallet_oid, **db.where.wallet(place.wallet_oid), "currency": currency}
    if db.wallets.find_one(payee, {"_id": 1}, session=session) is None:
        raise ValidationFailed([FieldError("captureTo.walletId", f"no {currency} wallet {place.wallet_id}")])
    return {"walletId": place.wallet_oid}


def get_reservation(db: Database, reservation: reads.One) -> Reservation:
    query = {"_id": reservation.oid, **db.where.hold(reservation.oid), "kind": documents.RESERVATION}
    query |= reservation.owner_filter
    document = db.read(lambda: db.ledger.find_one(query))
    if document is None:
        raise NotFound(f"reservation {reservation.id} not found")
    return answers.reservation_from_document(document)


def capture_reservation(db: Database, command: hold_commands.CloseHold) -> Movement:
    """Take `amount` (default: all it still holds) of a hold, to its `splits` (default: all to
    @revenue). A final capture releases the rest in the same transaction; one that is not leaves
    the rest held (the hold is PARTIALLY_CAPTURED, or CAPTURED when nothing is left)."""
    amount = command.amount
    taken: Int64 | str = "$taken" if amount is None else Int64(amount)
    splits = [split.as_document() for split in command.splits] or [{"account": REVENUE, "amount": taken}]

    def change(session: ClientSession, now: datetime, capture_id: ObjectId) -> dict | None:
        condition: dict = {"expiresAt": {"$gt": now}}
        if amount is not None:
            condition["$expr"] = {"$gte": [STILL_HELD, Int64(amount)]}
        elif command.splits:  # all it holds, which the splits must add up to
            condition["$expr"] = {"$eq": [STILL_HELD, Int64(sum(split.amount for split in command.splits))]}
        ends = {"$literal": True} if command.final else {"$eq": [STILL_HELD, "$taken"]}
        capture = {"id": capture_id, "amount": "$taken", "splits": splits, "final": ends, "createdAt": now}
        stages = [
            {"$set": {"taken": STILL_HELD if amount is None else Int64(amount)}},
            {
                "$set": {
                    "capturedAmount": {"$toLong": {"$add": ["$capturedAmount", "$taken"]}},
                    "releasedAmount": {
                        "$cond": [ends, {"$toLong": {"$subtract": [STILL_HELD, "$taken"]}}, "$releasedAmount"]
                    },
                    "status": {
                        "$cond": [
                            ends,
                            ReservationStatus.CAPTURED.value,
                            ReservationStatus.PARTIALLY_CAPTURED.value,
                        ]
                    },
                    "captures": {"$concatArrays": [{"$ifNull": ["$captures", []]}, [capture]]},
                }
            },
            {"$unset": "taken"},
        ]
        return change_hold(db, session, command.reservation_oid, command.common.owner_filter, condition, stages, now)

    parameters = {
        "amount": amount,
        "final": command.final,
        "splits": [split.as_parameter() for split in command.splits],
    }
    movement = _close("capture_reservation", db, command, parameters, change, mind_expiry=True)
    return visible_to(movement, command.common.owner_filter.get("ownerId"))


def release_reservation(db: Database, command: hold_commands.CloseHold) -> Movement:
    """Give back all a hold still holds; what it captured before stays captured."""

    def change(session: ClientSession, now: datetime, capture_id: ObjectId) -> dict | None:
        stages = [
            {
                "$set": {
                    "status": ReservationStatus.RELEASED.value,
                    "releasedAmount": {"$toLong": {"$subtract": ["$amount", "$capturedAmount"]}},
                }
            }
        ]
        return change_hold(db, session, command.reservation_oid, command.common.owner_filter, {}, stages, now)

    # A hold past its expiry that the job has not reached yet may still be released.
    return _close("release_reservation", db, command, {}, change, mind_expiry=False)


def _close(
    name: str, db: Database, command: hold_commands.CloseHold, parameters: dict, change, *, mind_expiry: bool
) -> Movement:
    common = command.common
    call = Call.start(name, common, {"reservationId": command.reservation_id, **parameters})

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        capture_id = ObjectId()
        hold = change(session, now, capture_id)
        if hold is None:
            _refuse(db, session, call, command, now if mind_expiry else None)
        return _settle(db, session, call, hold, capture_id, now, common.details)

    return move(db, call, work)


def settlement(hold: dict, capture: dict | None, details: Details, ended_by: EntryType) -> list[Posting]:
    """The postings of one change to a hold, from the hold after it: the change's `capture` (if
    any) leaves the wallet; if the change ended the hold, what it released is `ended_by` (RELEASE,
    or EXPIRE for the expiry job)."""
    postings = []
    if capture is not None:
        postings.append(Posting(EntryType.CAPTURE, capture["amount"], details, reservation_id=hold["_id"]))
    if hold["status"] not in OPEN_HOLD_STATUSES and hold["releasedAmount"]:
        postings.append(Posting(ended_by, hold["releasedAmount"], details, reservation_id=hold["_id"]))
    return postings


def _settle(
    db: Database, session: ClientSession, call: Call, hold: dict, capture_id: ObjectId, now, details: Details
) -> Movement:
    capture = next((capture for capture in hold.get("captures", ()) if capture["id"] == capture_id), None)
    own = settlement(hold, capture, details, EntryType.RELEASE)
    wallet = settle(db, session, hold["walletId"], own, now)
    if wallet is None:
        raise_if_recorded(db, session, call, hold["ownerId"])
        raise InvalidState(f"wallet {hold['walletId']} holds less than reservation {hold['_id']}")
    operation_id = call.operation_id(hold["ownerId"])
    paid, payees = _pay(db, session, hold, capture, details, operation_id, now)
    entries = [*placed(wallet, own, operation_id, now), *paid]
    return record(db, session, call, now, wallet, entries, reservation=hold, others=payees)


def _pay(
    db: Database, session: ClientSession, hold: dict, capture: dict | None, details: Details, operation_id: str, now
) -> tuple[list[dict], list[dict]]:
    """The captured money arriving at `capture`'s destinations, a CAPTURE_IN on each: a wallet is
    credited (a frozen one still receives, as with a deposit); a platform account gets its entry.
    Returns the entries and the wallets paid."""
    if capture is None:
        return [], []
    currency = hold["currency"]
    splits = capture["splits"]
    if any(split.get("walletId") == hold["walletId"] for split in splits):
        raise ValidationFailed([FieldError("splits", f"wallet {hold['walletId']} is the hold's own wallet")])

    def credit(split: dict, posting: Posting) -> dict:
        wallet_id = str(split["walletId"])
        match = {"_id": split["walletId"], **db.where.wallet(split["walletId"]), "currency": currency}
        try:
            return credit_or_refuse(db, session, match, wallet_id, [posting], now)
        except (NotFound, ValidationFailed):
            raise ValidationFailed([FieldError("splits", f"no {currency} wallet {wallet_id}")]) from None

    return hold_entries(db, session, hold, splits, EntryType.CAPTURE_IN, "splits", details, operation_id, now, credit)


def _refuse(
    db: Database, session: ClientSession, call: Call, command: hold_commands.CloseHold, now: datetime | None
) -> NoReturn:
    reservation = find_hold(db, session, call, command.reservation_id, command.reservation_oid, command.common, now)
    still_held = reservation["amount"] - reservation["capturedAmount"] - reservation["releasedAmount"]
    if command.amount is not None and command.amount > still_held:
        raise ValidationFailed([FieldError("amount", f"must be at most the {still_held} the hold still holds")])
    if command.amount is None and command.splits and sum(split.amount for split in command.splits) != still_held:
        raise ValidationFailed([FieldError("splits", f"must add up to the {still_held} the hold still holds")])
    raise RetryTransaction("reservation changed while it was read")


def find_hold(
    db: Database,
    session: ClientSession,
    call: Call,
    reservation_id: str,
    reservation_oid: ObjectId,
    common: Common,
    now: datetime | None,
) -> dict:
    """An open hold a refused change was for, once sure that the change was not already made (then
    it is answered from its record); a hold not found, no longer open or past its expiry by `now`
    (None: whatever its expiry) is refused."""
    query = {"_id": reservation_oid, **db.where.hold(reservation_oid), "kind": documents.RESERVATION}
    query |= common.owner_filter
    reservation = db.ledger.find_one(query, session=session)
    if reservation is None:
        raise NotFound(f"reservation {reservation_id} not found")
    raise_if_recorded(db, session, call, reservation["ownerId"])
    if reservation["status"] not in OPEN_HOLD_STATUSES:
        raise InvalidState(f"reservation {reservation_id} is already {reservation['status']}")
    if now is not None and reservation["expiresAt"] <= now:
        raise InvalidState(f"reservation {reservation_id} expired at {reservation['expiresAt'].isoformat()}")
    return reservation


def list_reservations(db: Database, page: reads.Page) -> ReservationPage:
    """A wallet's reservations, newest first, optionally of one status."""
    get_wallet(db, page.wallet)
    page.refuse_a_bad_cursor()
    query: dict = {"walletId": page.wallet.oid, **db.where.wallet(page.wallet.oid), "kind": documents.RESERVATION}
    if page.kind is not None:
        query["status"] = page.kind.value
    if page.position is not None:
        query["_id"] = {"$lt": ObjectId(page.position)}
    found = db.read(lambda: list(db.ledger.find(query).sort("_id", -1).limit(page.limit + 1)))
    items = tuple(answers.reservation_from_document(document) for document in found[: page.limit])
    next_cursor = encode_cursor(page.cursor_scope, items[-1].id) if len(found) > page.limit else None
    return ReservationPage(items=items, next_cursor=next_cursor)
