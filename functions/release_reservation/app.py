"""POST /v1/reservations/{reservationId}/release: give a hold back (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations, parameters
from wallet_lambda.hold_schemas import ReleaseRequest
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["ReleaseReservation"]
router = http.router()


@http.route(router, OPERATION)
def release_reservation(
    reservationId: parameters.ReservationId,
    body: Annotated[ReleaseRequest | None, Body()] = None,
):
    body = body or ReleaseRequest()  # the body is optional
    movement = wallet_service().release_reservation(reservationId, http.request(router, body))
    return http.movement_response(OPERATION, movement)


lambda_handler = http.lambda_handler_for(router, OPERATION)
