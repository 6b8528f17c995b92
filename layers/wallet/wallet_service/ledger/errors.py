"""The wallet's error taxonomy. The HTTP layer maps each class to a status in one place."""

from __future__ import annotations

from dataclasses import dataclass


class WalletError(Exception):
    """Base of every error the service raises on purpose. `code` is machine-readable."""

    code = "wallet_error"
    # For a business refusal kept under an idempotency key: whether this answer repeats the one an
    # earlier call with the key was given (True), or is that first answer (False); None otherwise.
    replayed: bool | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    message: str


class ValidationFailed(WalletError):
    """The request is malformed or breaks a rule; nothing was written."""

    code = "validation_error"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in errors))
        self.errors = tuple(errors)


class InvalidCursor(ValidationFailed):
    """A listing cursor that this listing did not issue (forged, truncated, or from another listing)."""

    code = "invalid_cursor"


class NotFound(WalletError):
    """The resource does not exist, or the acting owner may not see it."""

    code = "not_found"


class InsufficientFunds(WalletError):
    code = "insufficient_funds"

    def __init__(self, message: str, *, available: int, requested: int) -> None:
        super().__init__(message)
        self.available = available
        self.requested = requested


class BalanceOverflow(WalletError):
    """The movement would take a balance past what a 64-bit integer holds; nothing was written."""

    code = "balance_overflow"


class InvalidState(WalletError):
    """The resource is in a state that does not allow the operation (e.g. a hold already captured)."""

    code = "invalid_state"


class WalletFrozen(WalletError):
    code = "wallet_frozen"


class AccountExists(WalletError):
    """A platform account of that name is already open in that currency (or is built in)."""

    code = "account_exists"


class Conflict(WalletError):
    """Concurrent updates kept colliding until the retry budget ran out; retrying later is safe."""

    code = "conflict"


class WalletExists(Conflict):
    code = "wallet_exists"

    def __init__(self, message: str, *, existing_wallet_id: str) -> None:
        super().__init__(message)
        self.existing_wallet_id = existing_wallet_id


class IdempotencyKeyMismatch(WalletError):
    """The idempotency key was already used for a request with other parameters."""

    code = "idempotency_key_mismatch"


class DatabaseUnavailable(WalletError):
    """The database could not be reached within the time budget; nothing is known to have changed twice."""

    code = "database_unavailable"
