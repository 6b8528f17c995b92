"""Wallets: open one per owner and currency (with an opening balance, journaled as a deposit),
read it, freeze and unfreeze it, set its balance alert."""

from __future__ import annotations

import uuid
from dataclasses import replace

from pymongo.client_session import ClientSession

from ..ledger import answers, commands, reads
from ..ledger.errors import NotFound, WalletExists
from ..ledger.models import EntryType, Movement, Wallet, WalletStatus
from ..ledger.postings import FUNDING, Posting, WalletState, post
from ..storage import documents, outbox, queries
from ..storage.idempotency import Call, move, record
from ..storage.queries import Database, WalletTaken
from ..storage.routing import route
from ..storage.transactions import database_errors

EMPTY = WalletState(balance=0, held=0, sequence=0)


def create_wallet(db: Database, command: commands.OpenWallet) -> Movement:
    parameters = {"ownerId": command.owner_id, "currency": command.currency, "alerts": command.alerts}
    call = Call.start("create_wallet", command.common, {**parameters, "openingBalance": command.opening_balance})
    details = command.common.details
    postings = [Posting(EntryType.DEPOSIT, command.opening_balance, details)] if command.opening_balance else []
    funded = [
        Posting(EntryType.FUNDING, posting.amount, posting.details, account=FUNDING) for posting in postings
    ]  # the wallet's id is known only inside the transaction: set there

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        posted = post(EMPTY, postings)
        state = WalletState(posted[-1].balance_after, posted[-1].held_after, posted[-1].sequence) if posted else EMPTY
        wallet = documents.new_wallet(command.owner_id, command.currency, state, now)
        if command.alerts is not None:
            wallet["alerts"] = command.alerts
        route([wallet])
        db.wallets.insert_one(wallet, session=session)
        operation_id = call.operation_id(command.owner_id)
        entries = [
            *documents.journal_entries(wallet["_id"], command.currency, posted, operation_id, now),
            *documents.account_entries(
                command.currency,
                [replace(posting, counterparty_wallet_id=wallet["_id"]) for posting in funded],
                operation_id,
                now,
            ),
        ]
        claim = documents.wallet_claim(command.owner_id, command.currency, wallet["_id"], now)
        return record(db, session, call, now, wallet, entries, claim=claim)

    try:
        return move(db, call, work)
    except WalletTaken:
        claim_id = documents.wallet_claim_id(command.owner_id, command.currency)
        claim = db.read(lambda: db.ledger.find_one({"_id": claim_id, **db.where.owner(command.owner_id)}))
        existing_id = str(claim["walletId"]) if claim else ""
        raise WalletExists(
            f"owner already has a {command.currency} wallet: {existing_id}", existing_wallet_id=existing_id
        ) from None


def get_wallet(db: Database, wallet: reads.One) -> Wallet:
    match = {"_id": wallet.oid, **db.where.wallet(wallet.oid), **wallet.owner_filter}
    document = db.read(lambda: db.wallets.find_one(match))
    if document is None:
        raise NotFound(f"wallet {wallet.id} not found")
    return answers.wallet_from_document(document)


def change_status(db: Database, wallet: reads.One, status: WalletStatus) -> Wallet:
    """Freeze or unfreeze, with its event, in one transaction (the wallet update, the event's
    insert, the commit); a wallet already in that status is answered as it is, with no event."""
    operation = "freeze_wallet" if status is WalletStatus.FROZEN else "unfreeze_wallet"

    def work(session: ClientSession) -> dict | None:
        now = db.clock()
        document = queries.set_status(db, session, wallet.oid, wallet.owner_filter, status, now)
        if document is None:
            match = {"_id": wallet.oid, **db.where.wallet(wallet.oid), **wallet.owner_filter}
            return db.wallets.find_one(match, session=session)
        operation_id = f"call:{uuid.uuid4().hex}"
        events = outbox.movement_events(operation, operation_id, now, [document], [])
        route(events)
        db.ledger.insert_many(events, session=session)
        return document

    with database_errors():
        document = db.runner.run(work)
    if document is None:
        raise NotFound(f"wallet {wallet.id} not found")
    return answers.wallet_from_document(document)


def set_alerts(db: Database, command: commands.SetAlerts) -> Wallet:
    """Set (or, with None, remove) the wallet's balance alert: one document, one atomic update. The
    version stays: it counts the changes that have events (an alert setting moves no money and has
    none), so a consumer ordering a wallet's events by version never meets a gap it cannot explain."""
    alerts = [{"$set": {"alerts": {"$literal": command.alerts}}}] if command.alerts else [{"$unset": "alerts"}]
    changed = [*alerts, {"$set": {"updatedAt": db.clock()}}]
    document = db.read(
        lambda: db.wallets.find_one_and_update(
            {"_id": command.wallet_oid, **db.where.wallet(command.wallet_oid), **command.owner_filter},
            changed,
            return_document=queries.AFTER,
        )
    )
    if document is None:
        raise NotFound(f"wallet {command.wallet_id} not found")
    return answers.wallet_from_document(document)
