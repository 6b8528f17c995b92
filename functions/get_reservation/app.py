"""GET /v1/reservations/{reservationId}: one hold."""

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["GetReservation"]
router = http.router()


@http.route(router, OPERATION)
def get_reservation(reservationId: parameters.ReservationId):
    reservation = wallet_service().get_reservation(reservationId, owner_id=http.caller(router).owner_filter)
    return http.json_response(OPERATION.status, reservation)


lambda_handler = http.lambda_handler_for(router, OPERATION)
