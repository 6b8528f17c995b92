"""GET /v1/wallets/{walletId}/balance?at=2026-11-25T12:00:00Z: a wallet's balance as it was at a time (no `at`: now)."""

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["GetBalance"]
router = http.router()


@http.route(router, OPERATION)
def get_balance(
    walletId: parameters.WalletId,
    at: parameters.Moment = None,
):
    moment = parameters.moment("at", at)
    balance = wallet_service().balance_at(walletId, moment, owner_id=http.caller(router).owner_filter)
    return http.json_response(OPERATION.status, balance)


lambda_handler = http.lambda_handler_for(router, OPERATION)
