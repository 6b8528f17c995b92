"""POST /v1/transfers: move money between two wallets of one currency, atomically (idempotent)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations
from wallet_lambda.runtime import wallet_service
from wallet_lambda.schemas import TransferRequest

OPERATION = operations.BY_NAME["Transfer"]
router = http.router()


@http.route(router, OPERATION)
def transfer(body: Annotated[TransferRequest, Body()]):
    movement = wallet_service().transfer(
        body.from_wallet_id, body.to_wallet_id, body.amount, http.request(router, body)
    )
    return http.movement_response(OPERATION, movement)


lambda_handler = http.lambda_handler_for(router, OPERATION)
