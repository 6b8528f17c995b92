"""POST /v1/wallets/{walletId}/deposits: add money to a wallet (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_api.schemas import AmountRequest
from wallet_core import MovementRecord

router = http.router()


@router.post(
    "/v1/wallets/<walletId>/deposits",
    summary="Add money to a wallet",
    tags=["Money movements"],
    responses=http.responses(201, MovementRecord, "the deposit entry and the wallet after it", http.MONEY_PROBLEMS),
    security=http.SECURITY,
)
def deposit(walletId: http.WalletId, body: Annotated[AmountRequest, Body()]):
    movement = wallet_service().deposit(
        walletId,
        body.amount,
        idempotency_key=http.idempotency_key(router),
        owner_id=http.caller(router).scope,
        **body.details(),
    )
    return http.movement_response(movement, status=201, location=f"/v1/wallets/{walletId}/transactions")


lambda_handler = http.lambda_handler_for(router, "Deposit", moves_money=True)
