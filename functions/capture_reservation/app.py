"""POST /v1/reservations/{reservationId}/capture: take all or part of a hold, finally or in parts (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations, parameters
from wallet_lambda.hold_schemas import CaptureRequest
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["CaptureReservation"]
router = http.router()


@http.route(router, OPERATION)
def capture_reservation(
    reservationId: parameters.ReservationId,
    body: Annotated[CaptureRequest | None, Body()] = None,
):
    body = body or CaptureRequest()  # the body is optional
    movement = wallet_service().capture_reservation(
        reservationId,
        body.amount,
        http.request(router, body),
        splits=body.split_list(),
        final=body.final,
    )
    return http.movement_response(OPERATION, movement)


lambda_handler = http.lambda_handler_for(router, OPERATION)
