"""How the documents (documents.py) become the models the service answers with (models.py)."""

from __future__ import annotations

from collections.abc import Sequence

from bson import ObjectId

from .models import (
    AccountEntry,
    Capture,
    Increment,
    LedgerEntry,
    Movement,
    Place,
    Refund,
    RefundSource,
    Reservation,
    Split,
    Wallet,
    WalletAlerts,
)


def movement(
    operation_id: str,
    wallet: dict,
    entries: Sequence[dict],
    *,
    reservation: dict | None = None,
    counterparty_wallet: dict | None = None,
) -> Movement:
    """The answer to a movement from its entry documents, wallets' and platform accounts' alike."""
    return Movement(
        operation_id=operation_id,
        entries=tuple(entry_from_document(entry) for entry in entries if "account" not in entry),
        account_entries=tuple(account_entry_from_document(entry) for entry in entries if "account" in entry),
        wallet=wallet_from_document(wallet),
        counterparty_wallet=None if counterparty_wallet is None else wallet_from_document(counterparty_wallet),
        reservation=None if reservation is None else reservation_from_document(reservation),
    )


def _optional_id(value: ObjectId | None) -> str | None:
    return None if value is None else str(value)


def wallet_from_document(document: dict) -> Wallet:
    return Wallet(
        id=str(document["_id"]),
        owner_id=document["ownerId"],
        currency=document["currency"],
        balance=document["balance"],
        held=document["held"],
        status=document["status"],
        sequence=document["sequence"],
        alerts=None if document.get("alerts") is None else WalletAlerts(**document["alerts"]),
        created_at=document["createdAt"],
        updated_at=document["updatedAt"],
    )


def entry_from_document(document: dict) -> LedgerEntry:
    return LedgerEntry(
        id=str(document["_id"]),
        wallet_id=str(document["walletId"]),
        type=document["type"],
        amount=document["amount"],
        balance_delta=document["balanceDelta"],
        held_delta=document["heldDelta"],
        balance_after=document["balanceAfter"],
        held_after=document["heldAfter"],
        sequence=document["sequence"],
        reservation_id=_optional_id(document.get("reservationId")),
        counterparty_wallet_id=_optional_id(document.get("counterpartyWalletId")),
        **_described(document),
        operation_id=document["operationId"],
    )


def account_entry_from_document(document: dict) -> AccountEntry:
    return AccountEntry(
        id=str(document["_id"]),
        account=document["account"],
        currency=document["currency"],
        type=document["type"],
        amount=document["amount"],
        balance_delta=document["balanceDelta"],
        wallet_id=_optional_id(document.get("counterpartyWalletId")),
        reservation_id=_optional_id(document.get("reservationId")),
        **_described(document),
        operation_id=document["operationId"],
    )


def reservation_from_document(document: dict) -> Reservation:
    return Reservation(
        id=str(document["_id"]),
        wallet_id=str(document["walletId"]),
        owner_id=document["ownerId"],
        currency=document["currency"],
        amount=document["amount"],
        captured_amount=document["capturedAmount"],
        released_amount=document["releasedAmount"],
        increments=tuple(_increment(increment) for increment in document.get("increments", ())),
        captures=tuple(_capture(capture) for capture in document.get("captures", ())),
        refunded_amount=document.get("refundedAmount", 0),
        refunds=tuple(_refund(refund) for refund in document.get("refunds", ())),
        status=document["status"],
        expires_at=document["expiresAt"],
        on_expiry=document.get("onExpiry", "release"),
        capture_to=None if "captureTo" not in document else _place(document["captureTo"]),
        **_described(document),
        updated_at=document["updatedAt"],
    )


def _described(document: dict) -> dict:
    """What the caller said about a movement (its reference and metadata), and when it was made."""
    return {
        "reference_type": document.get("referenceType"),
        "reference_id": document.get("referenceId"),
        "metadata": document.get("metadata", {}),
        "created_at": document["createdAt"],
    }


def _place(document: dict) -> Place:
    return Place(wallet_id=_optional_id(document.get("walletId")), account=document.get("account"))


def _increment(document: dict) -> Increment:
    return Increment(
        id=str(document["id"]),
        amount=document["amount"],
        expires_at=document["expiresAt"],
        created_at=document["createdAt"],
    )


def _splits(documents: list[dict]) -> tuple[Split, ...]:
    return tuple(
        Split(wallet_id=_optional_id(split.get("walletId")), account=split.get("account"), amount=split["amount"])
        for split in documents
    )


def _capture(document: dict) -> Capture:
    return Capture(
        id=str(document["id"]),
        amount=document["amount"],
        splits=_splits(document["splits"]),
        final=document.get("final", True),
        created_at=document["createdAt"],
    )


def _refund(document: dict) -> Refund:
    return Refund(
        id=str(document["id"]),
        amount=document["amount"],
        reason=document.get("reason"),
        sources=tuple(
            RefundSource(
                wallet_id=_optional_id(source.get("walletId")),
                account=source.get("account"),
                amount=source["amount"],
                capture_id=_optional_id(source.get("captureId")),
            )
            for source in document["sources"]
        ),
        created_at=document["createdAt"],
    )
