"""GET /v1/reservations/{reservationId}: one hold."""

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_core import Reservation

router = http.router()


@router.get(
    "/v1/reservations/<reservationId>",
    summary="Read a reservation",
    tags=["Holds"],
    responses=http.responses(200, Reservation, "the reservation", http.READ_PROBLEMS),
    security=http.SECURITY,
)
def get_reservation(reservationId: http.ReservationId):
    reservation = wallet_service().get_reservation(reservationId, owner_id=http.caller(router).scope)
    return http.json_response(200, reservation)


lambda_handler = http.lambda_handler_for(router, "GetReservation")
