"""Exactly once: operation ids, fingerprints, operation records and replays.

Each money-moving call gets an operation id: derived from the wallet owner and the idempotency key
when the caller gives one, otherwise unique to the call. The transaction that moves the money also
inserts the operation record (the request's fingerprint and the full result) under that id. So a
call that is retried, by the caller with the same key or by our own retry after a commit whose
outcome was unknown, either commits once or meets the existing record and is answered from it:
the same ids and figures, never a second movement. A call that would now be refused (a capture of
a hold it already captured, a withdrawal that drained the wallet) looks for its record before it
is refused, so it replays too.

A keyed call refused for a business reason (not enough money, a hold in the wrong state, a frozen
wallet, a balance past Int64) keeps that answer under its key, as Stripe and TigerBeetle do: the
refusal is recorded, and a retry with the same key gets the same refusal even once the wallet
could pay, so a declined charge never goes through later by surprise. For the kept answer to stay
the only one, whatever a call can be refused for whatever the money (a wallet or an account it
names that is not there, or holds another currency) is checked before a refusal for the money
(movements.debit_or_refuse's `check`), and a refusal that depends on what changes (what a hold's
captures left at a place) looks for the record first. A hold no longer open never opens again, so
a capture, raise or release refused for it is refused the same way on every retry.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from ..ledger import answers
from ..ledger.errors import (
    BalanceOverflow,
    Conflict,
    IdempotencyKeyMismatch,
    InsufficientFunds,
    InvalidState,
    WalletError,
    WalletFrozen,
)
from ..ledger.models import Movement
from ..ledger.request import Common
from . import documents, outbox
from .queries import AlreadyRecorded, Database, find_record, insert_movement
from .routing import route
from .transactions import database_errors


@dataclass(slots=True)
class Call:
    """One invocation of a money-moving operation, shared by all of its transaction attempts.
    `owner_id` is the owner its key belongs to, once an attempt has read it."""

    name: str
    key: str | None
    fingerprint: str
    call_id: str
    owner_id: str | None = None

    @classmethod
    def start(cls, name: str, common: Common, parameters: dict) -> Call:
        """A call of operation `name` with the command's own `parameters`: with its reference and
        metadata, they make the fingerprint a retry with the same key must match."""
        details = common.details
        described = {
            **parameters,
            "referenceType": details.reference_type,
            "referenceId": details.reference_id,
            "metadata": details.metadata,
        }
        canonical = json.dumps({"operation": name, "parameters": described}, sort_keys=True, separators=(",", ":"))
        return cls(name, common.key, hashlib.sha256(canonical.encode()).hexdigest(), uuid.uuid4().hex)

    def operation_id(self, owner_id: str) -> str:
        if self.key is None:
            return f"call:{self.call_id}"
        # Keys are scoped to the wallet owner: two owners may use the same key independently.
        return "key:" + hashlib.sha256(f"{owner_id}\x00{self.key}".encode()).hexdigest()


def record(
    db: Database,
    session: ClientSession,
    call: Call,
    now: datetime,
    wallet: dict,
    entries: Sequence[dict],
    *,
    reservation: dict | None = None,
    new_reservation: bool = False,
    counterparty_wallet: dict | None = None,
    claim: dict | None = None,
    others: Sequence[dict] = (),
) -> Movement:
    """The movement's answer, inserted with its operation record, everything it creates and its
    events (outbox.py): `others` are the other wallets it touched (paid or taken from), after it."""
    operation_id = call.operation_id(wallet["ownerId"])
    documents.assert_balanced(entries)
    movement = answers.movement(
        operation_id, wallet, entries, reservation=reservation, counterparty_wallet=counterparty_wallet
    )
    operation_record = documents.operation_record(
        call.name,
        operation_id,
        now,
        ownerId=wallet["ownerId"],
        idempotencyKey=call.key,
        fingerprint=call.fingerprint,
        callId=call.call_id,
        result=movement.model_dump_json(),
    )
    touched = [wallet, *([counterparty_wallet] if counterparty_wallet is not None else []), *others]
    events = outbox.movement_events(call.name, operation_id, now, touched, entries, reservation=reservation)
    created = [*entries, *([reservation] if new_reservation else []), *events]
    owners = {touched_wallet["_id"]: touched_wallet["ownerId"] for touched_wallet in touched}
    insert_movement(db, session, operation_record, created, owners=owners, claim=claim)
    return movement


def raise_if_recorded(db: Database, session: ClientSession, call: Call, owner_id: str) -> None:
    """Before refusing a call, check whether it was already applied (a replay or our own retry)."""
    call.owner_id = owner_id
    operation_id = call.operation_id(owner_id)
    where = db.where.owner(owner_id)
    existing = find_record(db, session, operation_id, where)
    if existing is not None:
        raise AlreadyRecorded(operation_id, where, existing)


# The refusals a key keeps, by code: how to raise one again from its record.
REFUSALS: dict[str, Callable[[dict], WalletError]] = {
    InsufficientFunds.code: lambda kept: InsufficientFunds(
        kept["message"], available=kept["available"], requested=kept["requested"]
    ),
    InvalidState.code: lambda kept: InvalidState(kept["message"]),
    WalletFrozen.code: lambda kept: WalletFrozen(kept["message"]),
    BalanceOverflow.code: lambda kept: BalanceOverflow(kept["message"]),
}


def move(db: Database, call: Call, work: Callable[[ClientSession], Movement]) -> Movement:
    """Run a movement in a transaction, once: answered from its record when it already happened;
    a keyed call's business refusal is recorded, and answered again from there."""
    try:
        with database_errors():
            return db.runner.run(work)
    except AlreadyRecorded as recorded:
        operation_id, where = recorded.operation_id, recorded.where
        existing = recorded.record or db.read(lambda: find_record(db, None, operation_id, where))
        if existing is None:
            raise Conflict("the operation record vanished while it was read; retry") from None
        return replay(call, existing)
    except WalletError as refusal:
        if refusal.code not in REFUSALS or call.key is None or call.owner_id is None:
            raise
        kept = _keep_refusal(db, call, refusal)
        if kept is None:
            refusal.replayed = False
            raise
        return replay(call, kept)  # another call with the key was recorded first: its answer


def _keep_refusal(db: Database, call: Call, refusal: WalletError) -> dict | None:
    """Record the refusal under the call's operation id; None when recorded, else the record another
    call with the same key left first. Written as any movement is (a transaction, its retries, the
    one error boundary): a refusal that cannot be kept is answered as the database's error, which
    the caller retries with the same key, never as a refusal a retry might not repeat."""
    operation_id = call.operation_id(call.owner_id)
    kept = {"code": refusal.code, "message": refusal.message}
    if isinstance(refusal, InsufficientFunds):
        kept |= {"available": refusal.available, "requested": refusal.requested}
    record_ = documents.operation_record(
        call.name,
        operation_id,
        db.clock(),
        ownerId=call.owner_id,
        idempotencyKey=call.key,
        fingerprint=call.fingerprint,
        callId=call.call_id,
        refusal=kept,
    )
    route([record_])
    try:
        with database_errors():
            db.runner.run(lambda session: db.ledger.insert_one(record_, session=session))
    except DuplicateKeyError:
        return db.read(lambda: find_record(db, None, operation_id, db.where.of(record_)))
    return None


def replay(call: Call, existing: dict) -> Movement:
    if existing["fingerprint"] != call.fingerprint:
        first, this = (name.replace("_", " ") for name in (existing["operation"], call.name))
        raise IdempotencyKeyMismatch(
            f"idempotency key was used for a {first} request, not a {this}: use a new key"
            if first != this
            else f"idempotency key was used for a {first} request with different parameters: use a new key"
        )
    if "refusal" in existing:
        refusal = REFUSALS[existing["refusal"]["code"]](existing["refusal"])
        refusal.replayed = existing["callId"] != call.call_id
        raise refusal
    movement = Movement.model_validate_json(existing["result"])
    return movement.model_copy(update={"replayed": existing["callId"] != call.call_id})
