"""The audit: proves from the ledger alone that money was conserved and every counter is right.

Checks, each read in a transaction (snapshot reads, so a movement committing meanwhile is seen
whole or not at all, and live traffic is never blocked: reads take no locks):

- per currency, the postings of all accounts (wallets and platform accounts) sum to zero;
- each wallet's balance and held are the sums of its entries, its entries run 1..n without a
  gap, each entry's after-values are the previous ones plus its deltas, and `available` never
  went below zero;
- each hold's captured + released + still held = amount, refunded <= captured; its wallet's
  entries for it explain its figures (its HOLD entries, one and one per increment, add up to its
  amount, its CAPTURE entries to what it captured, its RELEASE and EXPIRE entries to what it
  released); and each wallet's held is what its open holds still hold;
- each platform account's checkpoint is the sum and the count of the postings rolled into it, and
  no posting of a checkpointed account is outside both the checkpoint and the tail.

Wallets and holds are read a batch at a time (one transaction per batch); the zero-sum and the
checkpoints are one pass over the entries, in one transaction with the checkpoints. It reports what
it checked and every discrepancy; it never changes anything.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.client_session import ClientSession

from . import documents
from .models import OPEN_HOLD_STATUSES, AuditReport, Discrepancy, EntryType
from .queries import Database
from .transactions import database_errors


def audit_ledger(db: Database, batch_size: int = 200) -> AuditReport:
    found: list[Discrepancy] = []
    with database_errors():
        totals, found_in_checkpoints, checkpoints = db.runner.run(lambda session: _ledger_sums(db, session))
        found.extend(found_in_checkpoints)
        for currency, total in sorted(totals.items(), key=lambda item: item[0] or ""):
            if currency is None:  # entries from before double entry: `make migrate` dates them
                found.append(_found("ledger_imbalance", "no currency", f"postings without a currency sum to {total}"))
            elif total:
                found.append(_found("ledger_imbalance", currency, f"postings in {currency} sum to {total}"))
        wallets = entries = holds = 0
        after: ObjectId | None = None
        while True:
            batch = db.runner.run(lambda session, after=after: _wallet_batch(db, session, after, batch_size))
            if not batch.wallet_ids:
                break
            wallets += len(batch.wallet_ids)
            entries += batch.entries
            holds += batch.holds
            found.extend(batch.found)
            after = batch.wallet_ids[-1]
    return AuditReport(
        currencies=tuple(sorted(currency for currency in totals if currency is not None)),
        wallets=wallets,
        entries=entries,
        holds=holds,
        checkpoints=checkpoints,
        discrepancies=tuple(found),
    )


def _hold_entry_discrepancies(hold: dict, journal: dict[tuple, list[int]]) -> list[Discrepancy]:
    """The hold's figures against its wallet's entries for it."""
    raised = journal.get((hold["_id"], EntryType.HOLD.value), [])
    captured = journal.get((hold["_id"], EntryType.CAPTURE.value), [])
    released = [
        *journal.get((hold["_id"], EntryType.RELEASE.value), []),
        *journal.get((hold["_id"], EntryType.EXPIRE.value), []),
    ]
    found = []
    for what, amounts, figure in (
        ("held", raised, hold["amount"]),
        ("captured", captured, hold["capturedAmount"]),
        ("released", released, hold["releasedAmount"]),
    ):
        if sum(amounts) != figure:
            found.append(_found("hold_mismatch", str(hold["_id"]), f"{what} {figure}, its entries say {sum(amounts)}"))
    if len(raised) != 1 + len(hold.get("increments", ())):
        detail = f"{len(hold.get('increments', ()))} increments, {len(raised)} HOLD entries"
        found.append(_found("hold_mismatch", str(hold["_id"]), detail))
    return found


def _found(kind: str, subject: str, detail: str) -> Discrepancy:
    return Discrepancy(kind=kind, subject=subject, detail=detail)


class _Sums:
    """One pass over the entries: balanceDelta per currency, and the postings of each platform
    account (per currency) rolled into its checkpoint and written before checkpoints existed."""

    def __init__(self, db: Database, session: ClientSession) -> None:
        self.totals: dict[str | None, int] = {}
        self.rolled: dict[tuple, tuple[int, int]] = {}  # (account, currency): (sum, count)
        self.untracked: dict[tuple, int] = {}  # (account, currency): postings with no `tail` at all
        group = {"currency": "$currency", "account": "$account", "tail": "$tail"}
        pipeline = [
            {"$match": {"kind": documents.ENTRY}},
            {"$group": {"_id": group, "total": {"$sum": "$balanceDelta"}, "postings": {"$sum": 1}}},
        ]
        for row in db.ledger.aggregate(pipeline, session=session):
            currency, account, tail = (row["_id"].get(field) for field in group)
            self.totals[currency] = self.totals.get(currency, 0) + row["total"]
            if account is not None and tail is False:
                self.rolled[(account, currency)] = (row["total"], row["postings"])
            elif account is not None and tail is None:
                self.untracked[(account, currency)] = row["postings"]


def _ledger_sums(db: Database, session: ClientSession) -> tuple[dict, list[Discrepancy], int]:
    """(balanceDelta per currency, each checkpoint's discrepancies, checkpoints checked), at one snapshot."""
    sums = _Sums(db, session)
    query = {"kind": documents.CHECKPOINT, "tail": True}  # a checkpoint heads its account's tail
    points = db.ledger.find(query, session=session).hint("account_tails")
    checkpoints = {(at["account"], at["currency"]): (at["balanceDelta"], at["postings"]) for at in points}
    found = []
    for pair in sorted(checkpoints.keys() | sums.rolled.keys()):
        subject, rolled = " ".join(pair), sums.rolled.get(pair, (0, 0))
        if pair not in checkpoints:
            found.append(_found("checkpoint_mismatch", subject, f"postings rolled {rolled} with no checkpoint"))
        elif checkpoints[pair] != rolled:
            detail = "checkpoint {} of {} postings".format(*checkpoints[pair])
            found.append(_found("checkpoint_mismatch", subject, f"{detail}; rolled into it {rolled[0]} of {rolled[1]}"))
        if pair in checkpoints and sums.untracked.get(pair):
            detail = f"{sums.untracked[pair]} postings outside its checkpoint and its tail"
            found.append(_found("checkpoint_mismatch", subject, detail))
    return sums.totals, found, len(checkpoints)


class _Batch:
    def __init__(self) -> None:
        self.wallet_ids: list[ObjectId] = []
        self.entries = 0
        self.holds = 0
        self.found: list[Discrepancy] = []


def _wallet_batch(db: Database, session: ClientSession, after: ObjectId | None, size: int) -> _Batch:
    batch = _Batch()
    query = {} if after is None else {"_id": {"$gt": after}}
    wallets = list(db.wallets.find(query, session=session).sort("_id", 1).limit(size))
    batch.wallet_ids = [wallet["_id"] for wallet in wallets]
    for wallet in wallets:
        entries = list(
            db.ledger.find({"walletId": wallet["_id"], "kind": documents.ENTRY}, session=session).sort("sequence", 1)
        )
        holds = list(db.ledger.find({"walletId": wallet["_id"], "kind": documents.RESERVATION}, session=session))
        batch.entries += len(entries)
        batch.holds += len(holds)
        batch.found.extend(_wallet_discrepancies(wallet, entries))
        batch.found.extend(_hold_discrepancies(wallet, holds, entries))
    return batch


def _wallet_discrepancies(wallet: dict, entries: list[dict]) -> list[Discrepancy]:
    subject = str(wallet["_id"])
    found = []
    balance = held = 0
    for position, entry in enumerate(entries, start=1):
        if entry["sequence"] != position:
            found.append(_found("broken_chain", subject, f"entry {position} has sequence {entry['sequence']}"))
            break
        balance += entry["balanceDelta"]
        held += entry["heldDelta"]
        if (entry["balanceAfter"], entry["heldAfter"]) != (balance, held):
            found.append(
                _found(
                    "broken_chain",
                    subject,
                    f"entry {position} says {entry['balanceAfter']}/{entry['heldAfter']} after it, "
                    f"its deltas make {balance}/{held}",
                )
            )
            break
        if held < 0 or balance - held < 0:
            found.append(_found("negative_available", subject, f"entry {position} leaves {balance - held}"))
    if (wallet["balance"], wallet["held"], wallet["sequence"]) != (balance, held, len(entries)):
        found.append(
            _found(
                "wallet_mismatch",
                subject,
                f"wallet says balance {wallet['balance']}, held {wallet['held']}, sequence {wallet['sequence']}; "
                f"its {len(entries)} entries sum to {balance}, {held}",
            )
        )
    return found


def _hold_discrepancies(wallet: dict, holds: list[dict], entries: list[dict]) -> list[Discrepancy]:
    found = []
    still_held = 0
    journal: dict[tuple, list[int]] = {}
    for entry in entries:
        if "reservationId" in entry:
            journal.setdefault((entry["reservationId"], entry["type"]), []).append(entry["amount"])
    for hold in holds:
        subject = str(hold["_id"])
        open_ = hold["status"] in OPEN_HOLD_STATUSES
        holding = hold["amount"] - hold["capturedAmount"] - hold["releasedAmount"] if open_ else 0
        still_held += holding
        if hold["capturedAmount"] + hold["releasedAmount"] + holding != hold["amount"] or holding < 0:
            found.append(
                _found(
                    "hold_mismatch",
                    subject,
                    f"captured {hold['capturedAmount']} + released {hold['releasedAmount']} + held {holding} "
                    f"!= amount {hold['amount']}",
                )
            )
        if hold.get("refundedAmount", 0) > hold["capturedAmount"]:
            found.append(
                _found(
                    "hold_mismatch",
                    subject,
                    f"refunded {hold['refundedAmount']} > captured {hold['capturedAmount']}",
                )
            )
        found.extend(_hold_entry_discrepancies(hold, journal))
    if still_held != wallet["held"]:
        found.append(
            _found("wallet_mismatch", str(wallet["_id"]), f"held {wallet['held']}, its open holds hold {still_held}")
        )
    return found
