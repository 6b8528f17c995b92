"""What the scheduled jobs report: expiry, the audit, the checkpoints' roll, the migration."""

from __future__ import annotations

from pydantic import computed_field

from .models import WalletModel


class ExpiryReport(WalletModel):
    expired: int
    skipped: int
    failed: int
    skipped_reservation_ids: tuple[str, ...] = ()
    failed_reservation_ids: tuple[str, ...] = ()
    operation_ids: tuple[str, ...] = ()  # of the batches that expired holds: their entries and events carry it


class Discrepancy(WalletModel):
    """Something the audit found wrong: its kind, what it is about (a currency, a wallet or a hold id), how."""

    kind: str  # ledger_imbalance, wallet_mismatch, broken_chain, negative_available, hold_mismatch, checkpoint_mismatch
    subject: str
    detail: str


class AuditReport(WalletModel):
    currencies: tuple[str, ...]
    wallets: int
    entries: int
    holds: int
    checkpoints: int
    discrepancies: tuple[Discrepancy, ...]

    @computed_field
    @property
    def ledger_imbalances(self) -> int:
        return sum(found.kind == "ledger_imbalance" for found in self.discrepancies)

    @computed_field
    @property
    def wallet_mismatches(self) -> int:
        """Wallets, holds and platform accounts' checkpoints whose figures their entries do not explain."""
        return len({found.subject for found in self.discrepancies if found.kind != "ledger_imbalance"})


class CheckpointReport(WalletModel):
    accounts: int  # platform accounts (one per currency) whose tail was rolled into their checkpoint
    postings: int  # postings rolled in
    finished: bool  # false when the time limit ended the run with tails left to roll


class MigrationReport(WalletModel):
    entries_dated: int  # wallet entries given their wallet's currency
    postings_added: int  # platform postings added to balance single-entry movements
    holds_updated: int  # holds given their refunded amount (and a captured one its capture)
    accounts_moved: int  # opened accounts moved from the ledger to their registry
    documents_routed: int  # wallets and ledger documents given their owner's bucket (routing key)
