"""GET /v1/wallets/{walletId}/transactions: a wallet's journal, newest first, keyset-paged."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_core import EntryPage, EntryType

router = http.router()


@router.get(
    "/v1/wallets/<walletId>/transactions",
    summary="List a wallet's journal entries",
    tags=["Journal"],
    responses=http.responses(
        200, EntryPage, "one page, and the cursor of the next if there is one", http.READ_PROBLEMS
    ),
    security=http.SECURITY,
)
def list_transactions(
    walletId: http.WalletId,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    type: Annotated[EntryType | None, Query()] = None,
):
    page = wallet_service().list_transactions(
        walletId, limit=limit, cursor=cursor, entry_type=type, owner_id=http.caller(router).scope
    )
    return http.json_response(200, page)


lambda_handler = http.lambda_handler_for(router, "ListTransactions")
