"""GET /v1/accounts/{name}?currency=USD: a platform account's balance, the sum of its postings (admin only)."""

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["GetAccount"]
router = http.router()


@http.route(router, OPERATION)
def get_account(name: parameters.AccountName, currency: parameters.AccountCurrency):
    return http.json_response(OPERATION.status, wallet_service().get_account(name, currency.value))


lambda_handler = http.lambda_handler_for(router, OPERATION)
