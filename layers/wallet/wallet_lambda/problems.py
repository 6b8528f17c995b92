"""The one place where errors become HTTP responses: application/problem+json (RFC 9457).

Every error body has `type`, `title`, `status`, `detail` and a machine `code`; validation errors
list each field. Nothing from a stack trace or a raw database message ever reaches a client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_lambda_powertools.event_handler import Response

from wallet_service.ledger import errors

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = "1"


@dataclass(eq=False)
class Problem(Exception):  # a response, raised to stop a handler early
    status: int
    code: str
    title: str
    detail: str
    extra: tuple[tuple[str, object], ...] = ()
    retry_after: bool = False
    replayed: bool | None = None  # a kept refusal's: Idempotent-Replayed, as on a movement's answer

    def response(self) -> Response:
        body = {
            "type": f"urn:wallet:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **dict(self.extra),
        }
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if self.retry_after else {}
        if self.replayed is not None:
            headers["Idempotent-Replayed"] = "true" if self.replayed else "false"
        return Response(status_code=self.status, content_type=PROBLEM_JSON, body=json.dumps(body), headers=headers)


def bad_request(code: str, detail: str) -> Problem:
    return Problem(400, code, "Bad request", detail)


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail)


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail)


def not_found(detail: str) -> Problem:
    return Problem(404, "not_found", "Not found", detail)


def validation(errors: list[dict[str, str]], detail: str = "the request has invalid fields") -> Problem:
    return Problem(422, "validation_error", "Unprocessable content", detail, (("errors", errors),))


def internal_error() -> Problem:
    return Problem(500, "internal_error", "Internal server error", "an unexpected error occurred; it has been logged")


def from_wallet_error(error: errors.WalletError) -> Problem:
    """Map the core's error taxonomy to HTTP; a refusal kept under a key says whether it is a replay."""
    problem = _problem_for(error)
    problem.replayed = error.replayed
    return problem


def _problem_for(error: errors.WalletError) -> Problem:
    match error:
        case errors.InvalidCursor():
            return bad_request("invalid_cursor", error.message)
        case errors.ValidationFailed():
            return validation([{"field": item.field, "message": item.message} for item in error.errors], error.message)
        case errors.NotFound():
            return not_found(error.message)
        case errors.InsufficientFunds():
            extra = (("available", error.available), ("requested", error.requested))
            return Problem(409, "insufficient_funds", "Insufficient funds", error.message, extra)
        case errors.BalanceOverflow():
            return Problem(409, "balance_overflow", "Balance overflow", error.message)
        case errors.InvalidState():
            return Problem(409, "invalid_state", "Invalid state", error.message)
        case errors.WalletFrozen():
            return Problem(409, "wallet_frozen", "Wallet frozen", error.message)
        case errors.WalletExists():
            extra = (("existingWalletId", error.existing_wallet_id),)
            return Problem(409, "wallet_exists", "Wallet exists", error.message, extra)
        case errors.AccountExists():
            return Problem(409, "account_exists", "Account exists", error.message)
        case errors.Conflict():
            return Problem(409, "conflict", "errors.Conflict", error.message, retry_after=True)
        case errors.IdempotencyKeyMismatch():
            return Problem(422, "idempotency_key_mismatch", "Idempotency key reused", error.message)
        case errors.DatabaseUnavailable():
            return Problem(503, "database_unavailable", "Service unavailable", error.message, retry_after=True)
    return internal_error()
