"""POST /v1/wallets/{walletId}/reservations: hold money until captured, released or expired (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_api.schemas import ReservationRequest
from wallet_core import MovementRecord

router = http.router()


@router.post(
    "/v1/wallets/<walletId>/reservations",
    summary="Hold money",
    tags=["Holds"],
    responses=http.responses(
        201, MovementRecord, "the reservation, its HOLD entry and the wallet", http.MONEY_PROBLEMS
    ),
    security=http.SECURITY,
)
def create_reservation(walletId: http.WalletId, body: Annotated[ReservationRequest, Body()]):
    movement = wallet_service().create_reservation(
        walletId,
        body.amount,
        ttl_seconds=body.ttl_seconds,
        idempotency_key=http.idempotency_key(router),
        owner_id=http.caller(router).scope,
        **body.details(),
    )
    return http.movement_response(movement, status=201, location=f"/v1/reservations/{movement.reservation.id}")


lambda_handler = http.lambda_handler_for(router, "CreateReservation", moves_money=True)
