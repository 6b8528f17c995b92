"""Refunds: give back part or all of what a hold captured, as often as needed, never more than
captured minus refunded (an open hold's captures too). The money comes back from its captures,
newest first, each in proportion to what its destinations still hold of it (largest remainder,
so the cents add up) unless the request names its sources, and goes to the hold's wallet. The
platform decides refunds (administrators only at the HTTP edge): a payer never pulls money back
out of a payee's wallet by itself.

Round trips: the hold read, its update (guarded on what was refunded before), one per destination
wallet, the payer's wallet, one insert of everything new, the commit."""

from __future__ import annotations

from bson import Int64, ObjectId
from pymongo.client_session import ClientSession

from ..ledger import hold_commands
from ..ledger.errors import FieldError, InsufficientFunds, InvalidState, NotFound, ValidationFailed
from ..ledger.models import EntryType, Movement
from ..ledger.postings import REVENUE, Details, Posting, largest_remainder
from ..storage import documents
from ..storage.idempotency import Call, move, raise_if_recorded, record
from ..storage.queries import Database, reclaim
from ..storage.transactions import RetryTransaction
from .movements import credit_or_refuse, hold_entries, placed


def refund_reservation(db: Database, command: hold_commands.Refund) -> Movement:
    common = command.common
    sources = [source.as_parameter() for source in command.sources]
    parameters = {"reservationId": command.reservation_id, "amount": command.amount, "reason": command.reason}
    call = Call.start("refund_reservation", common, {**parameters, "from": sources})

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        hold_id = command.reservation_oid
        query = {"_id": hold_id, **db.where.hold(hold_id), "kind": documents.RESERVATION}
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
        entries, sources_paid = _take_back(db, session, hold, _by_place(sources), common.details, operation_id, now)
        back = Posting(EntryType.REFUND_IN, command.amount, common.details, reservation_id=hold["_id"])
        payer_match = {"_id": hold["walletId"], **db.where.of(hold)}  # a hold and its wallet share a bucket
        payer = credit_or_refuse(db, session, payer_match, str(hold["walletId"]), [back], now)
        entries = [*placed(payer, [back], operation_id, now), *entries]
        return record(db, session, call, now, payer, entries, reservation=updated, others=sources_paid)

    return move(db, call, work)


def _sources(db: Database, session: ClientSession, call: Call, hold: dict, command: hold_commands.Refund) -> list[dict]:
    """What the refund takes back from each destination of each capture, newest capture first: named
    by the request, or from each capture in proportion to what its destinations still hold of it.
    A refusal looks for this call's record first."""
    refundable = hold.get("capturedAmount", 0) - hold.get("refundedAmount", 0)
    if command.amount > refundable:
        raise_if_recorded(db, session, call, hold["ownerId"])
        if not hold.get("capturedAmount"):
            raise InvalidState(f"reservation {command.reservation_id} is {hold['status']}: nothing was captured")
        raise InvalidState(f"reservation {command.reservation_id} has {refundable} left to refund")
    left = _left(hold)
    if not command.sources:
        return _proportional(command.amount, left)
    errors = []
    sources = []
    for number, source in enumerate(command.sources):
        place = _key(source.as_document())
        at_place = [(capture_id, key, amount) for capture_id, key, amount in left if key == place]
        if not at_place:
            errors.append(FieldError(f"from[{number}]", "is not a destination of this hold's captures"))
            continue
        held_there = sum(amount for _, _, amount in at_place)
        if source.amount > held_there:
            errors.append(FieldError(f"from[{number}].amount", f"must be at most the {held_there} left there"))
            continue
        wanted = source.amount
        for capture_id, _, amount in at_place:  # newest capture first
            take = min(wanted, amount)
            if take:
                sources.append(_source(source.as_document(), capture_id, take))
            wanted -= take
    if errors:
        # What is left at each place changes with the hold's captures and refunds: a call whose
        # refusal was kept is answered from its record, not refused anew.
        raise_if_recorded(db, session, call, hold["ownerId"])
        raise ValidationFailed(errors)
    return sources


def _proportional(amount: int, left: list[tuple[ObjectId | None, tuple, int]]) -> list[dict]:
    """`amount` from the captures newest first, each capture's part shared among its destinations in
    proportion to what each still holds of it (largest remainder: the cents add up, none passes its share)."""
    sources = []
    for capture_id in dict.fromkeys(capture_id for capture_id, _, _ in left):
        places = [(key, held) for one, key, held in left if one == capture_id and held]
        take = min(amount, sum(held for _, held in places))
        if not take:
            continue
        shares = largest_remainder(take, [held for _, held in places])
        sources.extend(
            _source(_place(key), capture_id, share) for (key, _), share in zip(places, shares, strict=True) if share
        )
        amount -= take
    return sources


def _source(place: dict, capture_id: ObjectId | None, amount: int) -> dict:
    where = {name: place[name] for name in ("walletId", "account") if name in place}
    return {**where, "captureId": capture_id, "amount": Int64(amount)}


def _key(place: dict) -> tuple:
    return (place.get("walletId"), place.get("account"))


def _place(key: tuple) -> dict:
    wallet_id, account = key
    return {"walletId": wallet_id} if wallet_id is not None else {"account": account}


def _left(hold: dict) -> list[tuple[ObjectId | None, tuple, int]]:
    """(capture id, destination, what the destination still holds of that capture), newest capture first."""
    # A hold captured before captures were kept (single-entry data) paid @revenue all of it.
    captures = hold.get("captures") or [
        {"id": None, "splits": [{"account": REVENUE, "amount": hold["capturedAmount"]}]}
    ]
    held: dict[tuple, int] = {}
    for capture in captures:
        for split in capture["splits"]:
            spot = (capture["id"], _key(split))
            held[spot] = held.get(spot, 0) + split["amount"]
    for refund in hold.get("refunds", []):
        for source in refund["sources"]:
            # A refund from before holds had several captures took from the first (the only) one.
            held[(source.get("captureId", captures[0]["id"]), _key(source))] -= source["amount"]
    order = {capture["id"]: position for position, capture in enumerate(reversed(captures))}
    return sorted(
        ((capture_id, key, amount) for (capture_id, key), amount in held.items()), key=lambda item: order[item[0]]
    )


def _by_place(sources: list[dict]) -> list[dict]:
    """The sources added up per destination: one entry (and one wallet update) for each."""
    totals: dict[tuple, int] = {}
    for source in sources:
        totals[_key(source)] = totals.get(_key(source), 0) + source["amount"]
    return [{**_place(key), "amount": Int64(amount)} for key, amount in totals.items()]


def _take_back(
    db: Database, session: ClientSession, hold: dict, sources: list[dict], details: Details, operation_id: str, now
) -> tuple[list[dict], list[dict]]:
    """A REFUND_OUT on each source: a wallet must have it available (else InsufficientFunds naming
    it, and nothing moves); a platform account only gets its entry."""

    def reclaimed(source: dict, posting: Posting) -> dict:
        wallet = reclaim(db, session, source["walletId"], source["amount"], [posting], now)
        if wallet is not None:
            return wallet
        found = db.wallets.find_one({"_id": source["walletId"], **db.where.wallet(source["walletId"])}, session=session)
        available = 0 if found is None else found["balance"] - found["held"]
        raise InsufficientFunds(
            f"wallet {source['walletId']} has {available} available, {source['amount']} to refund",
            available=available,
            requested=source["amount"],
        )

    return hold_entries(db, session, hold, sources, EntryType.REFUND_OUT, "from", details, operation_id, now, reclaimed)
