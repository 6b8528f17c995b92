"""The audit: proves from the ledger alone that money was conserved and every counter is right.

Checks:

- per currency, the postings of all accounts (wallets and platform accounts) sum to zero;
- each wallet's balance and held are the sums of its entries, its entries run 1..n without a
  gap, each entry's after-values are the previous ones plus its deltas, `available` never went
  below zero, and no entry is past the wallet's sequence;
- each hold's captured + released + still held = amount, refunded <= captured; its wallet's
  entries for it explain its figures (its HOLD entries, one and one per increment, add up to its
  amount, its CAPTURE entries to what it captured, its RELEASE and EXPIRE entries to what it
  released); and each wallet's held is what its open holds still hold;
- each platform account's checkpoint and tail are exactly its postings, and no posting of a
  checkpointed account is outside both (ledger_sums.py).

It reports what it checked and every discrepancy; it never changes anything, and never blocks live
traffic (reads take no locks). No transaction of its own grows with the ledger, so each ends well
inside the database's transaction lifetime: the zero-sum and the checkpoints are one short
transaction over the recent entries and the tails, and one aggregation of the settled entries
outside any (ledger_sums.py).

Wallets are read a batch at a time, in a transaction that reads only the wallets and their open
holds: the snapshot. Each wallet's history is read after it, outside any transaction, and cut at
the snapshot's sequence: entries are immutable once committed, and a wallet's entry n commits with
the update that made its sequence n, so the entries up to the sequence are exactly the journal the
snapshot's counters stand for. Its holds are read before its entries (a hold's HOLD entry commits
with it, so every hold read has it among the entries read next). A hold not open at the snapshot
was closed then, its figures final but for what refunds add, or opened after it, its HOLD entries
past the sequence (left to the next audit). Last, the batch's wallets are read again: a wallet's
sequence is never behind an entry committed earlier, so an entry past it is one no wallet update
accounts for (a lost update).
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.read_concern import ReadConcern

from ..ledger.models import OPEN_HOLD_STATUSES, EntryType
from ..ledger.reports import AuditReport, Discrepancy
from ..storage import documents
from ..storage.queries import Database
from ..storage.routing import scatter
from ..storage.transactions import database_errors
from .ledger_sums import ledger_sums

HOLD = EntryType.HOLD.value


def audit_ledger(db: Database, batch_size: int = 200) -> AuditReport:
    found: list[Discrepancy] = []
    with database_errors():
        sums, found_in_checkpoints, checkpoints = ledger_sums(db)
        found.extend(found_in_checkpoints)
        for currency, total in sorted(sums.totals.items(), key=lambda item: item[0] or ""):
            if currency is None:  # entries from before double entry: `make migrate` dates them
                found.append(_found("ledger_imbalance", "no currency", f"postings without a currency sum to {total}"))
            elif total:
                found.append(_found("ledger_imbalance", currency, f"postings in {currency} sum to {total}"))
        wallets = entries = holds = 0
        after: ObjectId | None = None
        while True:
            batch = _wallet_batch(db, after, batch_size)
            if not batch.wallet_ids:
                break
            wallets += len(batch.wallet_ids)
            entries += batch.entries
            holds += batch.holds
            found.extend(batch.found)
            after = batch.wallet_ids[-1]
    return AuditReport(
        currencies=tuple(sorted(currency for currency in sums.totals if currency is not None)),
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


class _Batch:
    def __init__(self) -> None:
        self.wallet_ids: list[ObjectId] = []
        self.entries = 0
        self.holds = 0
        self.found: list[Discrepancy] = []


def next_wallets(db: Database, after: ObjectId | None, size: int) -> dict[ObjectId, int | None]:
    """The ids (and buckets) of the next `size` wallets after `after`, outside any transaction (ids
    never change; a wallet opened meanwhile is in a later batch, or in the next audit)."""
    query = {} if after is None else {"_id": {"$gt": after}}
    found = db.wallets.find(query, {"bucket": 1}, comment=scatter("audit")).sort("_id", 1).limit(size)
    return {wallet["_id"]: wallet.get("bucket") for wallet in found}


def wallet_snapshot(db: Database, session: ClientSession, batch: dict[ObjectId, int | None]) -> tuple[list, list]:
    """The batch's transaction: its wallets, by id, and their open holds (on the shards of their buckets)."""
    where = db.where.among(batch.values())
    wallet_ids = list(batch)
    wallets = list(db.wallets.find({"_id": {"$in": wallet_ids}, **where}, session=session).sort("_id", 1))
    open_holds = {
        "walletId": {"$in": wallet_ids},
        **where,
        "kind": documents.RESERVATION,
        "status": {"$in": OPEN_HOLD_STATUSES},
    }
    # Hinted: a server planning only key fields (SecantusDB) would read every hold of the wallets.
    return wallets, list(db.ledger.find(open_holds, session=session).hint("wallet_reservations_by_status"))


def wallet_history(db: Database, wallet: dict) -> tuple[list[dict], list[dict]]:
    """The wallet's holds, then its entries in order, outside any transaction (on its shard)."""
    where = {"walletId": wallet["_id"], **db.where.of(wallet)}
    holds = list(db.records.find({**where, "kind": documents.RESERVATION}))
    entries = list(db.records.find({**where, "kind": documents.ENTRY}).sort("sequence", 1))
    return holds, entries


def _wallet_batch(db: Database, after: ObjectId | None, size: int) -> _Batch:
    batch = _Batch()
    found = next_wallets(db, after, size)
    if not found:
        return batch
    wallets, open_holds = db.runner.run(lambda session: wallet_snapshot(db, session, found))
    batch.wallet_ids = list(found)
    open_at_snapshot: dict[ObjectId, list[dict]] = {}
    for hold in open_holds:
        open_at_snapshot.setdefault(hold["walletId"], []).append(hold)
    last_entries: dict[ObjectId, int] = {}
    for wallet in wallets:
        holds, entries = wallet_history(db, wallet)
        journal = [entry for entry in entries if entry["sequence"] <= wallet["sequence"]]  # a prefix: in order
        opened_since = {entry.get("reservationId") for entry in entries[len(journal) :] if entry["type"] == HOLD}
        opened = open_at_snapshot.get(wallet["_id"], [])
        open_ids = {hold["_id"] for hold in opened}
        closed = [hold for hold in holds if hold["_id"] not in open_ids and hold["_id"] not in opened_since]
        batch.entries += len(journal)
        batch.holds += len(opened) + len(closed)
        batch.found.extend(_wallet_discrepancies(wallet, journal))
        batch.found.extend(_hold_discrepancies(wallet, [*opened, *closed], journal))
        if entries:
            last_entries[wallet["_id"]] = entries[-1]["sequence"]
    batch.found.extend(_entries_past_their_wallet(db, last_entries, db.where.among(found.values())))
    return batch


def _entries_past_their_wallet(db: Database, last_entries: dict[ObjectId, int], where: dict) -> list[Discrepancy]:
    """Each wallet read again: one whose sequence is behind an entry read before lost an update."""
    if not last_entries:
        return []
    wallets = db.wallets.with_options(read_concern=ReadConcern("majority"))
    found = []
    for wallet in wallets.find({"_id": {"$in": list(last_entries)}, **where}, {"sequence": 1}):
        if last_entries[wallet["_id"]] > wallet["sequence"]:
            detail = f"entry {last_entries[wallet['_id']]} is past the wallet's sequence {wallet['sequence']}"
            found.append(_found("wallet_mismatch", str(wallet["_id"]), detail))
    return found


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
