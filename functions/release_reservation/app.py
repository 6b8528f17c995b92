"""POST /v1/reservations/{reservationId}/release: give a hold back (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_api.schemas import ReleaseRequest
from wallet_core import MovementRecord

router = http.router()


@router.post(
    "/v1/reservations/<reservationId>/release",
    summary="Give a hold back",
    tags=["Holds"],
    responses=http.responses(200, MovementRecord, "the reservation, its entries and the wallet", http.MONEY_PROBLEMS),
    security=http.SECURITY,
)
def release_reservation(
    reservationId: http.ReservationId,
    body: Annotated[ReleaseRequest | None, Body()] = None,
):
    body = body or ReleaseRequest()  # the body is optional
    movement = wallet_service().release_reservation(
        reservationId,
        idempotency_key=http.idempotency_key(router),
        owner_id=http.caller(router).scope,
        **body.details(),
    )
    return http.movement_response(movement, status=200)


lambda_handler = http.lambda_handler_for(router, "ReleaseReservation", moves_money=True)
