"""GET /v1/wallets/{walletId}/reservations: a wallet's holds, newest first, optionally by status."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service
from wallet_service import ReservationStatus

OPERATION = operations.BY_NAME["ListReservations"]
router = http.router()


@http.route(router, OPERATION)
def list_reservations(
    walletId: parameters.WalletId,
    status: Annotated[ReservationStatus | None, Query()] = None,
    limit: parameters.PageSize = parameters.DEFAULT_LIMIT,
    cursor: parameters.Cursor = None,
):
    page = wallet_service().list_reservations(
        walletId, status=status, limit=limit, cursor=cursor, owner_id=http.caller(router).owner_filter
    )
    return http.json_response(OPERATION.status, page)


lambda_handler = http.lambda_handler_for(router, OPERATION)
