"""POST /v1/reservations/{reservationId}/increments: hold more on an open hold, perhaps for longer (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations, parameters
from wallet_lambda.hold_schemas import IncrementRequest
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["IncrementReservation"]
router = http.router()


@http.route(router, OPERATION)
def increment_reservation(reservationId: parameters.ReservationId, body: Annotated[IncrementRequest, Body()]):
    movement = wallet_service().increment_reservation(
        reservationId, body.amount, http.request(router, body), ttl_seconds=body.ttl_seconds
    )
    return http.movement_response(OPERATION, movement, location=f"/v1/reservations/{reservationId}")


lambda_handler = http.lambda_handler_for(router, OPERATION)
