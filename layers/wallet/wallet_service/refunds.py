"""Refunds: give back part or all of what a hold captured, as often as needed, never more than
captured minus refunded. The money comes back from the capture's destinations, in proportion to
what each still holds of it (largest remainder, so the cents add up) unless the request names its
sources, and goes to the hold's wallet. The platform decides refunds (administrators only at the
HTTP edge): a payer never pulls money back out of a payee's wallet by itself.

Round trips: the hold read, its update (guarded on what was refunded before), one per destination
wallet, the payer's wallet, one insert of everything new, the commit."""

from __future__ import annotations

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession

from . import commands, documents
from .errors import FieldError, InsufficientFunds, InvalidState, NotFound, ValidationFailed
from .idempotency import Call, move, raise_if_recorded, record
from .models import EntryType, Movement, ReservationStatus
from .movements import credit_or_refuse, details_parameters, hold_entries, placed
from .postings import REVENUE, Details, Posting, largest_remainder
from .queries import Database, reclaim
from .transactions import RetryTransaction


def refund_reservation(db: Database, command: commands.Refund) -> Movement:
    common = command.common
    call = Call.start(
        "refund_reservation",
        common.key,
        {
            "reservationId": command.reservation_id,
            "amount": command.amount,
            "reason": command.reason,
            "from": [source.as_parameter() for source in command.sources],
            **details_parameters(common.details),
        },
    )

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        query = {"_id": command.reservation_oid, "kind": documents.RESERVATION}
        hold = db.ledger.find_one(query, session=session)
        if hold is None:
            raise NotFound(f"reservation {command.reservation_id} not found")
        operation_id = call.operation_id(hold["ownerId"])
        sources = _sources(db, session, call, hold, command)
        refund = {"id": ObjectId(), "amount": Int64(command.amount), "sources": sources, "createdAt": now}
        if command.reason is not None:
            refund["reason"] = command.reason
        updated = db.ledger.find_one_and_update(
            {**query, "refundedAmount": hold.get("refundedAmount", {"$exists": False})},
            {
                "$set": {"refundedAmount": Int64(hold.get("refundedAmount", 0) + command.amount), "updatedAt": now},
                "$push": {"refunds": refund},
            },
            return_document=True,
            session=session,
        )
        if updated is None:
            raise RetryTransaction("the hold was refunded meanwhile")
        entries = _take_back(db, session, hold, sources, common.details, operation_id, now)
        back = Posting(EntryType.REFUND_IN, command.amount, common.details, reservation_id=hold["_id"])
        payer = credit_or_refuse(db, session, {"_id": hold["walletId"]}, str(hold["walletId"]), [back], now)
        entries = [*placed(payer, [back], operation_id, now), *entries]
        return record(db, session, call, now, payer, entries, reservation=updated)

    return move(db, call, work)


def _sources(db: Database, session: ClientSession, call: Call, hold: dict, command: commands.Refund) -> list[dict]:
    """Where the refund comes back from: named by the request, or shared out in proportion to what
    each destination still holds of the captures. A refusal looks for this call's record first."""
    refundable = hold.get("capturedAmount", 0) - hold.get("refundedAmount", 0)
    captured = hold["status"] == ReservationStatus.CAPTURED.value
    if not captured or command.amount > refundable:
        raise_if_recorded(db, session, call, hold["ownerId"])
        if not captured:
            raise InvalidState(f"reservation {command.reservation_id} is {hold['status']}: nothing was captured")
        raise InvalidState(f"reservation {command.reservation_id} has {refundable} left to refund")
    remaining = _remaining(hold)
    if not command.sources:
        shares = largest_remainder(command.amount, [amount for _, amount in remaining])
        return [{**place, "amount": Int64(share)} for (place, _), share in zip(remaining, shares, strict=True) if share]
    left = {_key(place): amount for place, amount in remaining}
    errors = []
    for number, source in enumerate(command.sources):
        place = _key(source.as_document())
        if place not in left:
            errors.append(FieldError(f"from[{number}]", "is not a destination of this hold's captures"))
        elif source.amount > left[place]:
            errors.append(FieldError(f"from[{number}].amount", f"must be at most the {left[place]} left there"))
    if errors:
        raise ValidationFailed(errors)
    return [{**source.as_document(), "amount": Int64(source.amount)} for source in command.sources]


def _key(place: dict) -> tuple:
    return (place.get("walletId"), place.get("account"))


def _remaining(hold: dict) -> list[tuple[dict, int]]:
    """Each destination of the hold's captures, newest capture first, with what it still holds of them."""
    paid: dict[tuple, int] = {}
    places: dict[tuple, dict] = {}
    # A hold captured before captures were kept (single-entry data) paid @revenue all of it.
    captures = hold.get("captures") or [{"splits": [{"account": REVENUE, "amount": hold["capturedAmount"]}]}]
    for capture in reversed(captures):
        for split in capture["splits"]:
            place = {name: split[name] for name in ("walletId", "account") if name in split}
            paid[_key(place)] = paid.get(_key(place), 0) + split["amount"]
            places.setdefault(_key(place), place)
    for refund in hold.get("refunds", []):
        for source in refund["sources"]:
            paid[_key(source)] -= source["amount"]
    return [(places[key], amount) for key, amount in paid.items()]


def _take_back(
    db: Database, session: ClientSession, hold: dict, sources: list[dict], details: Details, operation_id: str, now
) -> list[dict]:
    """A REFUND_OUT on each source: a wallet must have it available (else InsufficientFunds naming
    it, and nothing moves); a platform account only gets its entry."""

    def reclaimed(source: dict, posting: Posting) -> dict:
        wallet = reclaim(db, session, source["walletId"], source["amount"], [posting], now)
        if wallet is not None:
            return wallet
        found = db.wallets.find_one({"_id": source["walletId"]}, session=session)
        available = 0 if found is None else found["balance"] - found["held"]
        raise InsufficientFunds(
            f"wallet {source['walletId']} has {available} available, {source['amount']} to refund",
            available=available,
            requested=source["amount"],
        )

    return hold_entries(db, session, hold, sources, EntryType.REFUND_OUT, "from", details, operation_id, now, reclaimed)
