"""POST /v1/wallets/{walletId}/reservations: hold money until captured, released or expired (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations, parameters
from wallet_lambda.hold_schemas import ReservationRequest
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["CreateReservation"]
router = http.router()


@http.route(router, OPERATION)
def create_reservation(walletId: parameters.WalletId, body: Annotated[ReservationRequest, Body()]):
    movement = wallet_service().create_reservation(
        walletId,
        body.amount,
        http.request(router, body),
        ttl_seconds=body.ttl_seconds,
        on_expiry=body.on_expiry,
        capture_to=body.capture_to_place(),
    )
    return http.movement_response(OPERATION, movement, location=f"/v1/reservations/{movement.reservation.id}")


lambda_handler = http.lambda_handler_for(router, OPERATION)
