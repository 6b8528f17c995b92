"""The outbox: every committed change of a wallet leaves its events in the ledger, in the same
transaction and the same insert as the money, so an event is never lost and never invented (a
refused or aborted call writes none). publishing.py sends them.

Whoever publishes right after a call learns which events it committed from `committed_events()`: the
events of every transaction that commits inside that block, named when the commit succeeds (an
aborted attempt names none), so the publisher needs no query to find them.

One event per wallet a movement touched: its type says what happened to that wallet (EVENT_TYPES),
its data is what that wallet's owner may see of the movement (the wallet after it, its own entries,
the hold when it is the hold's wallet). A wallet's events are ordered by its `version` (one more
on every change of the wallet document) and then `index` (0 for the movement, 1 for a balance
alert the movement set off); `sequence` is the wallet's journal position after the movement.

A wallet may carry `alerts: {"availableBelow": n}`: a movement that takes its available money from
at least n to below n adds `wallet.balance.low`; one that brings it back to n or more adds
`wallet.balance.restored`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from bson import Int64, ObjectId

from ..ledger import answers
from . import documents
from .transactions import on_commit

# The event types of each operation: (for the wallet it acts on, for every other wallet it touched).
EVENT_TYPES: dict[str, tuple[str, str]] = {
    "create_wallet": ("wallet.opened", ""),
    "deposit": ("wallet.deposit.created", ""),
    "withdraw": ("wallet.withdrawal.created", ""),
    "transfer": ("wallet.transfer.sent", "wallet.transfer.received"),
    "create_reservation": ("reservation.created", ""),
    "increment_reservation": ("reservation.incremented", ""),
    "capture_reservation": ("reservation.captured", "wallet.capture.received"),
    "release_reservation": ("reservation.released", ""),
    "refund_reservation": ("reservation.refunded", "wallet.refund.taken"),
    "expire_reservations": ("reservation.expired", "wallet.capture.received"),
    "freeze_wallet": ("wallet.frozen", ""),
    "unfreeze_wallet": ("wallet.unfrozen", ""),
}
BALANCE_LOW = "wallet.balance.low"
BALANCE_RESTORED = "wallet.balance.restored"
EVENT_TYPE_NAMES = tuple(
    sorted({name for pair in EVENT_TYPES.values() for name in pair if name} | {BALANCE_LOW, BALANCE_RESTORED})
)


class CommittedEvents:
    """The events the transactions inside one `committed_events()` block committed, in commit order."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    @property
    def wallet_ids(self) -> list[ObjectId]:
        """The wallets they are for, each once, in the order first named."""
        return list(dict.fromkeys(event["walletId"] for event in self.events))

    def __len__(self) -> int:
        return len(self.events)


_collecting: ContextVar[CommittedEvents | None] = ContextVar("committed_events", default=None)


@contextmanager
def committed_events() -> Iterator[CommittedEvents]:
    """Collect the events of every transaction that commits inside the block (in this thread or task)."""
    committed = CommittedEvents()
    token = _collecting.set(committed)
    try:
        yield committed
    finally:
        _collecting.reset(token)


def _name_when_committed(events: list[dict]) -> None:
    committed = _collecting.get()
    if committed is not None and events:
        on_commit(lambda: committed.events.extend(events))


def movement_events(
    operation: str,
    operation_id: str,
    now: datetime,
    wallets: Sequence[dict],
    entries: Sequence[dict],
    *,
    reservation: dict | None = None,
    reservation_ids: Sequence[ObjectId] = (),
) -> list[dict]:
    """The events of one movement, to insert in its transaction: `wallets` are the documents of the
    wallets it touched, after it, the one it acts on first (expiry: each wallet whose holds expired,
    before the ones paid). Once the transaction commits they are named to `committed_events()`."""
    own_type, other_type = EVENT_TYPES[operation]
    events = []
    for position, wallet in enumerate(_latest(wallets)):
        own = [entry for entry in entries if entry.get("walletId") == wallet["_id"]]
        acted_on = (
            position == 0 if operation != "expire_reservations" else any(entry["type"] != "CAPTURE_IN" for entry in own)
        )
        data: dict = {"operationId": operation_id, "wallet": _wallet(wallet), "entries": [_entry(e) for e in own]}
        if acted_on and reservation is not None:
            data["reservation"] = answers.reservation_from_document(reservation).model_dump(mode="json", by_alias=True)
        if acted_on and reservation_ids:
            held_here = {entry.get("reservationId") for entry in own}
            data["reservationIds"] = [str(hold_id) for hold_id in reservation_ids if hold_id in held_here]
        events.append(event(own_type if acted_on else other_type, wallet, 0, operation_id, now, data))
        alert = None if operation == "create_wallet" else _alert(wallet, own, operation_id, now)
        if alert is not None:
            events.append(alert)
    _name_when_committed(events)
    return events


def event(kind: str, wallet: dict, index: int, operation_id: str, now: datetime, data: dict) -> dict:
    """An event document of the outbox, not yet sent."""
    return {
        "_id": f"evt_{ObjectId()}",
        "kind": documents.EVENT,
        "type": kind,
        "walletId": wallet["_id"],
        "ownerId": wallet["ownerId"],
        "currency": wallet["currency"],
        "version": Int64(wallet.get("version", 0)),
        "index": index,
        "sequence": Int64(wallet["sequence"]),
        "operationId": operation_id,
        "occurredAt": now,
        "data": data,
        "sent": False,
        "createdAt": now,
    }


def _latest(wallets: Sequence[dict]) -> list[dict]:
    """Each wallet once, as it was last seen (the highest version), in the order first named."""
    latest: dict[ObjectId, dict] = {}
    for wallet in wallets:
        seen = latest.get(wallet["_id"])
        if seen is None or wallet.get("version", 0) >= seen.get("version", 0):
            latest[wallet["_id"]] = wallet
    return list(latest.values())


def _wallet(wallet: dict) -> dict:
    return answers.wallet_from_document(wallet).model_dump(mode="json", by_alias=True)


def _entry(entry: dict) -> dict:
    return answers.entry_from_document(entry).model_dump(mode="json", by_alias=True)


def _alert(wallet: dict, own: list[dict], operation_id: str, now: datetime) -> dict | None:
    """`wallet.balance.low` or `.restored` when the movement took the wallet's available money across
    its alert's threshold; None otherwise."""
    threshold = (wallet.get("alerts") or {}).get("availableBelow")
    if threshold is None or not own:
        return None
    after = wallet["balance"] - wallet["held"]
    before = after - sum(entry["balanceDelta"] - entry["heldDelta"] for entry in own)
    if before >= threshold > after:
        kind = BALANCE_LOW
    elif before < threshold <= after:
        kind = BALANCE_RESTORED
    else:
        return None
    data = {"wallet": _wallet(wallet), "availableBelow": threshold, "availableBefore": before, "available": after}
    return event(kind, wallet, 1, operation_id, now, {"operationId": operation_id, **data})
