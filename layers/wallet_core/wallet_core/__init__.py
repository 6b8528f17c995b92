"""The wallet ledger: a transactional pymongo service shared by every Lambda function."""

from .errors import (
    Conflict,
    DatabaseUnavailable,
    FieldError,
    IdempotencyKeyMismatch,
    InsufficientFunds,
    InvalidState,
    NotFound,
    ValidationFailed,
    WalletError,
    WalletExists,
    WalletFrozen,
)
from .models import (
    EntryPage,
    EntryType,
    ExpiryReport,
    LedgerEntry,
    Movement,
    Reservation,
    ReservationPage,
    ReservationStatus,
    Wallet,
    WalletStatus,
)
from .service import WalletService

__all__ = [
    "Conflict",
    "DatabaseUnavailable",
    "EntryPage",
    "EntryType",
    "ExpiryReport",
    "FieldError",
    "IdempotencyKeyMismatch",
    "InsufficientFunds",
    "InvalidState",
    "LedgerEntry",
    "Movement",
    "NotFound",
    "Reservation",
    "ReservationPage",
    "ReservationStatus",
    "ValidationFailed",
    "Wallet",
    "WalletError",
    "WalletExists",
    "WalletFrozen",
    "WalletService",
    "WalletStatus",
]
