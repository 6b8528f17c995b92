"""POST /v1/reservations/{reservationId}/refunds: give back what a hold captured (admin only, idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations, parameters
from wallet_lambda.hold_schemas import RefundRequest
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["RefundReservation"]
router = http.router()


@http.route(router, OPERATION)
def refund_reservation(reservationId: parameters.ReservationId, body: Annotated[RefundRequest, Body()]):
    movement = wallet_service().refund_reservation(
        reservationId,
        body.amount,
        http.request(router, body),
        reason=body.reason,
        sources=body.source_list(),
    )
    return http.movement_response(OPERATION, movement, location=f"/v1/reservations/{reservationId}")


lambda_handler = http.lambda_handler_for(router, OPERATION)
