"""GET /v1/accounts/{name}/transactions?currency=USD: a platform account's postings, newest first (admin only)."""

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["ListAccountTransactions"]
router = http.router()


@http.route(router, OPERATION)
def list_account_transactions(
    name: parameters.AccountName,
    currency: parameters.AccountCurrency,
    limit: parameters.PageSize = parameters.DEFAULT_LIMIT,
    cursor: parameters.Cursor = None,
):
    page = wallet_service().list_account_entries(name, currency.value, limit=limit, cursor=cursor)
    return http.json_response(OPERATION.status, page)


lambda_handler = http.lambda_handler_for(router, OPERATION)
