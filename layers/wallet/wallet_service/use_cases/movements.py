"""Money in, out and across: deposits, withdrawals and transfers, each one transaction.

Round trips: the wallet update(s), one insert of everything new, the commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bson import ObjectId
from pymongo.client_session import ClientSession

from ..ledger import commands
from ..ledger.errors import BalanceOverflow, FieldError, InsufficientFunds, NotFound, ValidationFailed, WalletFrozen
from ..ledger.limits import MAX_INT64
from ..ledger.models import EntryType, Movement, WalletStatus
from ..ledger.postings import FUNDING, PAYOUTS, Details, Posting, post, rewind
from ..storage import documents
from ..storage.idempotency import Call, move, raise_if_recorded, record
from ..storage.queries import Database, credit, debit
from .accounts import require_open


def placed(wallet_after: dict, postings: Sequence[Posting], operation_id: str, now) -> list[dict]:
    """The entry documents of postings just applied to a wallet, from its state after them."""
    after = documents.wallet_state(wallet_after)
    posted = post(rewind(after, postings), postings)
    return documents.journal_entries(wallet_after["_id"], wallet_after["currency"], posted, operation_id, now)


def paired(wallet: dict, postings: Sequence[Posting], operation_id: str, now) -> list[dict]:
    """The entry documents of a movement on one wallet and platform accounts: the wallet's postings
    (those without an account) placed in its journal, the others on their accounts."""
    own = [posting for posting in postings if posting.account is None]
    others = [posting for posting in postings if posting.account is not None]
    return [
        *placed(wallet, own, operation_id, now),
        *documents.account_entries(wallet["currency"], others, operation_id, now),
    ]


def hold_entries(
    db: Database,
    session: ClientSession,
    hold: dict,
    places: list[dict],
    entry_type: EntryType,
    field: str,
    details: Details,
    operation_id: str,
    now,
    update_wallet: Callable[[dict, Posting], dict],
) -> tuple[list[dict], list[dict]]:
    """The entries of a hold's money arriving at, or leaving, the places its captures paid (each a
    wallet or a platform account, with an amount): a platform account gets its entry (it must be
    open in the hold's currency, else a 422 on `field`); a wallet is updated by `update_wallet`
    (one round trip each) and the posting placed in its journal. Returns the entries and the
    wallets updated, after the update."""
    currency = hold["currency"]

    def posting(place: dict) -> Posting:
        return Posting(
            entry_type,
            place["amount"],
            details,
            reservation_id=hold["_id"],
            counterparty_wallet_id=hold["walletId"],
            account=place.get("account"),
        )

    accounts = [place for place in places if "account" in place]
    require_open(db, field, [place["account"] for place in accounts], currency)
    entries = documents.account_entries(currency, [posting(place) for place in accounts], operation_id, now)
    wallets = []
    for place in places:
        if "walletId" in place:
            one = posting(place)
            wallets.append(update_wallet(place, one))
            entries.extend(placed(wallets[-1], [one], operation_id, now))
    return entries, wallets


def credit_or_refuse(
    db: Database, session: ClientSession, match: dict, wallet_id: str, postings: Sequence[Posting], now
) -> dict:
    """Apply incoming postings to the wallet `match` finds, or say why not: it is not there (or
    not in the currency `match` names), or its balance would pass what Int64 holds."""
    wallet = credit(db, session, match, postings, now)
    if wallet is not None:
        return wallet
    require_wallet(db, session, match, wallet_id)
    raise BalanceOverflow(f"wallet {wallet_id} would hold more than {MAX_INT64} minor units")


def require_wallet(db: Database, session: ClientSession, match: dict, wallet_id: str) -> None:
    """Refuse a wallet that is not there (or not the owner's `match` names), or not in the currency
    `match` names."""
    found = db.wallets.find_one({"_id": match["_id"], **unless_currency(match)}, {"currency": 1}, session=session)
    if found is None:
        raise NotFound(f"wallet {wallet_id} not found")
    if "currency" in match and found["currency"] != match["currency"]:
        raise ValidationFailed([FieldError("walletId", f"wallet {wallet_id} must hold {match['currency']}")])


def unless_currency(match: dict) -> dict:
    """What else `match` names (its bucket, its owner), but for the currency."""
    return {field: value for field, value in match.items() if field not in ("_id", "currency")}


def debit_or_refuse(
    db: Database,
    session: ClientSession,
    call: Call,
    wallet_id: str,
    wallet_oid: ObjectId,
    owner_filter: dict,
    amount: int,
    postings: Sequence[Posting],
    now,
    check: Callable[[dict], object] | None = None,
) -> dict:
    """Take `amount` out of a wallet's available money with `postings`, or say why not, after
    making sure this very call has not already been applied (then it is answered from its record).
    `check(wallet)` refuses what else is wrong with the call, whatever the money (a destination
    that is not there): it runs before a refusal for the money, which a key keeps (idempotency.py),
    so a retry once the wallet can pay meets the same answer."""
    wallet = debit(db, session, wallet_oid, owner_filter, amount, postings, now)
    if wallet is not None:
        return wallet
    wallet = db.wallets.find_one({"_id": wallet_oid, **db.where.wallet(wallet_oid), **owner_filter}, session=session)
    if wallet is None:
        raise NotFound(f"wallet {wallet_id} not found")
    raise_if_recorded(db, session, call, wallet["ownerId"])
    if check is not None:
        check(wallet)
    if wallet["status"] != WalletStatus.ACTIVE.value:
        raise WalletFrozen(f"wallet {wallet_id} is frozen: no money may leave it")
    available = wallet["balance"] - wallet["held"]
    raise InsufficientFunds(
        f"wallet {wallet_id} has {available} available, {amount} requested", available=available, requested=amount
    )


def deposit(db: Database, command: commands.WalletAmount) -> Movement:
    def apply(session: ClientSession, call: Call, postings: list[Posting], now) -> dict:
        match = {"_id": command.wallet_oid, **db.where.wallet(command.wallet_oid), **command.common.owner_filter}
        return credit_or_refuse(db, session, match, command.wallet_id, postings, now)

    return _on_one_wallet(db, "deposit", (EntryType.DEPOSIT, EntryType.FUNDING, FUNDING), command, apply)


def withdraw(db: Database, command: commands.WalletAmount) -> Movement:
    def apply(session: ClientSession, call: Call, postings: list[Posting], now) -> dict:
        common = command.common
        return debit_or_refuse(
            db, session, call, command.wallet_id, command.wallet_oid, common.owner_filter, command.amount, postings, now
        )

    return _on_one_wallet(db, "withdraw", (EntryType.WITHDRAWAL, EntryType.PAYOUT, PAYOUTS), command, apply)


def _on_one_wallet(
    db: Database,
    name: str,
    sides: tuple[EntryType, EntryType, str],
    command: commands.WalletAmount,
    apply: Callable[..., dict],
) -> Movement:
    """A movement between one wallet and one platform account: `sides` is the wallet's entry type,
    the account's and the account; `apply` updates the wallet (or says why not)."""
    common = command.common
    call = Call.start(name, common, {"walletId": command.wallet_id, "amount": command.amount})
    wallet_type, account_type, account = sides
    own = [Posting(wallet_type, command.amount, common.details)]
    other = Posting(
        account_type, command.amount, common.details, counterparty_wallet_id=command.wallet_oid, account=account
    )

    def work(session: ClientSession) -> Movement:
        now = db.clock()
        wallet = apply(session, call, own, now)
        entries = paired(wallet, [*own, other], call.operation_id(wallet["ownerId"]), now)
        return record(db, session, call, now, wallet, entries)

    return move(db, call, work)


def transfer(db: Database, command: commands.Transfer) -> Movement:
    """Move money between two wallets of one currency, atomically. The caller must own the source;
    the destination may belong to anyone, and is shown only to a caller who may see it."""
    common = command.common
    parameters = {"fromWalletId": command.from_wallet_id, "toWalletId": command.to_wallet_id, "amount": command.amount}
    call = Call.start("transfer", common, parameters)
    paid = [Posting(EntryType.TRANSFER_OUT, command.amount, common.details, counterparty_wallet_id=command.to_oid)]
    received = [Posting(EntryType.TRANSFER_IN, command.amount, common.details, counterparty_wallet_id=command.from_oid)]

    def work(session: ClientSession) -> Movement:
        now = db.clock()

        def credit_destination(source: dict, postings: Sequence[Posting] = ()) -> dict | None:
            """Credit the destination with `postings`; with none, only refuse it if it must be."""
            match = {"_id": command.to_oid, **db.where.wallet(command.to_oid), "currency": source["currency"]}
            try:
                if not postings:
                    return require_wallet(db, session, match, command.to_wallet_id)
                return credit_or_refuse(db, session, match, command.to_wallet_id, postings, now)
            except ValidationFailed:
                currency = source["currency"]
                raise ValidationFailed([FieldError("toWalletId", f"must hold {currency} like the source")]) from None

        source = debit_or_refuse(
            db,
            session,
            call,
            command.from_wallet_id,
            command.from_oid,
            common.owner_filter,
            command.amount,
            paid,
            now,
            check=credit_destination,
        )
        destination = credit_destination(source, received)
        operation_id = call.operation_id(source["ownerId"])
        entries = [*placed(source, paid, operation_id, now), *placed(destination, received, operation_id, now)]
        return record(db, session, call, now, source, entries, counterparty_wallet=destination)

    return visible_to(move(db, call, work), common.owner_filter.get("ownerId"))


def visible_to(movement: Movement, owner_id: str | None) -> Movement:
    """Hide the other wallets of a movement (a transfer's destination, a capture's payees) from a
    caller who does not own them: their entries carry their balances."""
    if owner_id is None:
        return movement
    counterparty = movement.counterparty_wallet
    shown = counterparty if counterparty is not None and counterparty.owner_id == owner_id else None
    visible = {movement.wallet.id, *([shown.id] if shown is not None else [])}
    entries = tuple(entry for entry in movement.entries if entry.wallet_id in visible)
    if shown is counterparty and entries == movement.entries:
        return movement
    return movement.model_copy(update={"counterparty_wallet": shown, "entries": entries})
