"""POST /v1/reservations/{reservationId}/capture: take all or part of a hold; the rest is released (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_api.schemas import CaptureRequest
from wallet_core import MovementRecord

router = http.router()


@router.post(
    "/v1/reservations/<reservationId>/capture",
    summary="Take all or part of a hold; the rest is released",
    tags=["Holds"],
    responses=http.responses(200, MovementRecord, "the reservation, its entries and the wallet", http.MONEY_PROBLEMS),
    security=http.SECURITY,
)
def capture_reservation(
    reservationId: http.ReservationId,
    body: Annotated[CaptureRequest | None, Body()] = None,
):
    body = body or CaptureRequest()  # the body is optional
    movement = wallet_service().capture_reservation(
        reservationId,
        body.amount,
        idempotency_key=http.idempotency_key(router),
        owner_id=http.caller(router).scope,
        **body.details(),
    )
    return http.movement_response(movement, status=200)


lambda_handler = http.lambda_handler_for(router, "CaptureReservation", moves_money=True)
