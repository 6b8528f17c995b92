"""GET /v1/wallets/{walletId}/reservations: a wallet's holds, newest first, optionally by status."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Query

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_core import ReservationPage, ReservationStatus

router = http.router()


@router.get(
    "/v1/wallets/<walletId>/reservations",
    summary="List a wallet's reservations",
    tags=["Holds"],
    responses=http.responses(
        200, ReservationPage, "one page, and the cursor of the next if there is one", http.READ_PROBLEMS
    ),
    security=http.SECURITY,
)
def list_reservations(
    walletId: http.WalletId,
    status: Annotated[ReservationStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
):
    page = wallet_service().list_reservations(
        walletId, status=status, limit=limit, cursor=cursor, owner_id=http.caller(router).scope
    )
    return http.json_response(200, page)


lambda_handler = http.lambda_handler_for(router, "ListReservations")
