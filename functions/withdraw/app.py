"""POST /v1/wallets/{walletId}/withdrawals: take money out of a wallet (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service
from wallet_lambda.schemas import AmountRequest

OPERATION = operations.BY_NAME["Withdraw"]
router = http.router()


@http.route(router, OPERATION)
def withdraw(walletId: parameters.WalletId, body: Annotated[AmountRequest, Body()]):
    movement = wallet_service().withdraw(walletId, body.amount, http.request(router, body))
    return http.movement_response(OPERATION, movement)


lambda_handler = http.lambda_handler_for(router, OPERATION)
