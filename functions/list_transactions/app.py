"""GET /v1/wallets/{walletId}/transactions: a wallet's journal, newest first, keyset-paged."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service
from wallet_service import EntryType

OPERATION = operations.BY_NAME["ListTransactions"]
router = http.router()


@http.route(router, OPERATION)
def list_transactions(
    walletId: parameters.WalletId,
    limit: parameters.PageSize = parameters.DEFAULT_LIMIT,
    cursor: parameters.Cursor = None,
    type: Annotated[EntryType | None, Query()] = None,
):
    page = wallet_service().list_transactions(
        walletId, limit=limit, cursor=cursor, entry_type=type, owner_id=http.caller(router).owner_filter
    )
    return http.json_response(OPERATION.status, page)


lambda_handler = http.lambda_handler_for(router, OPERATION)
