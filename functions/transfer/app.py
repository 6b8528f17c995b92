"""POST /v1/transfers: move money between two wallets of one currency, atomically (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_api.schemas import TransferRequest
from wallet_core import MovementRecord

router = http.router()


@router.post(
    "/v1/transfers",
    summary="Transfer between wallets",
    tags=["Money movements"],
    responses=http.responses(201, MovementRecord, "the entries and wallets the caller may see", http.MONEY_PROBLEMS),
    security=http.SECURITY,
)
def transfer(body: Annotated[TransferRequest, Body()]):
    movement = wallet_service().transfer(
        body.from_wallet_id,
        body.to_wallet_id,
        body.amount,
        idempotency_key=http.idempotency_key(router),
        owner_id=http.caller(router).scope,
        **body.details(),
    )
    return http.movement_response(movement, status=201, location=f"/v1/wallets/{body.from_wallet_id}/transactions")


lambda_handler = http.lambda_handler_for(router, "Transfer", moves_money=True)
