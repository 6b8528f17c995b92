"""Raising a hold (an increment): hold more of the wallet's available money on an open hold, when
a ride's fare grows on the way (a detour, a wait, a toll), as a card's incremental authorization.

A hold may be raised MAX_INCREMENTS times while it is open and not past its expiry; each raise is
a HOLD entry on the wallet and an increment on the hold, which may push the hold's expiry out,
never past MAX_TTL_SECONDS after the hold was placed.

Round trips: the hold's update (guarded on all of that), the wallet's, one insert, the commit.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession

from ..ledger import hold_commands
from ..ledger.errors import FieldError, InvalidState, ValidationFailed
from ..ledger.limits import MAX_INCREMENTS, MAX_TTL_SECONDS
from ..ledger.models import EntryType, Movement
from ..ledger.postings import Posting
from ..storage.idempotency import Call, move, record
from ..storage.queries import Database, change_hold
from ..storage.transactions import RetryTransaction
from .movements import debit_or_refuse, placed
from .reservations import find_hold

LIFETIME = timedelta(seconds=MAX_TTL_SECONDS)


def increment_reservation(db: Database, command: hold_commands.Increment) -> Movement:
    common = command.common
    parameters = {"reservationId": command.reservation_id, "amount": command.amount, "ttlSeconds": command.ttl_seconds}
    call = Call.start("increment_reservation", common, parameters)

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        condition: dict = {
            "expiresAt": {"$gt": now},
            f"increments.{MAX_INCREMENTS - 1}": {"$exists": False},  # fewer than MAX_INCREMENTS so far
        }
        expires_at: object = "$expiresAt"
        if command.ttl_seconds is not None:
            pushed_to = now + timedelta(seconds=command.ttl_seconds)
            condition["createdAt"] = {"$gte": pushed_to - LIFETIME}
            expires_at = {"$max": ["$expiresAt", pushed_to]}
        increment = {"id": ObjectId(), "amount": Int64(command.amount), "expiresAt": "$expiresAt", "createdAt": now}
        stages = [
            {"$set": {"amount": {"$toLong": {"$add": ["$amount", Int64(command.amount)]}}, "expiresAt": expires_at}},
            {"$set": {"increments": {"$concatArrays": [{"$ifNull": ["$increments", []]}, [increment]]}}},
        ]
        hold = change_hold(db, session, command.reservation_oid, common.owner_filter, condition, stages, now)
        if hold is None:
            _refuse(db, session, call, command, now)
        posting = Posting(EntryType.HOLD, command.amount, common.details, reservation_id=hold["_id"])
        wallet = debit_or_refuse(
            db, session, call, str(hold["walletId"]), hold["walletId"], {}, command.amount, [posting], now
        )
        entries = placed(wallet, [posting], call.operation_id(wallet["ownerId"]), now)
        return record(db, session, call, now, wallet, entries, reservation=hold)

    return move(db, call, work)


def _refuse(db: Database, session: ClientSession, call: Call, command: hold_commands.Increment, now) -> NoReturn:
    hold = find_hold(db, session, call, command.reservation_id, command.reservation_oid, command.common, now)
    if len(hold.get("increments", ())) >= MAX_INCREMENTS:
        raise InvalidState(f"reservation {command.reservation_id} has been raised {MAX_INCREMENTS} times, the most")
    if command.ttl_seconds is not None and now + timedelta(seconds=command.ttl_seconds) > hold["createdAt"] + LIFETIME:
        latest = (hold["createdAt"] + LIFETIME).isoformat()
        raise ValidationFailed(
            [FieldError("ttlSeconds", f"must not take the hold past {latest}, 7 days after it was placed")]
        )
    raise RetryTransaction("reservation changed while it was read")
