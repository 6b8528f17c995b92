"""POST /v1/wallets: open a wallet for the caller (or, for an admin, for anyone)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, identity, operations, problems
from wallet_lambda.runtime import wallet_service
from wallet_lambda.schemas import CreateWalletRequest

OPERATION = operations.BY_NAME["CreateWallet"]
router = http.router()


@http.route(router, OPERATION)
def create_wallet(body: Annotated[CreateWalletRequest, Body()]):
    who = http.caller(router)
    owner_id = body.owner_id or who.owner_id
    if not who.admin and (owner_id != who.owner_id or body.opening_balance):
        raise problems.forbidden(
            f"opening another owner's wallet or one with money in it needs {identity.scope('admin')}"
        )
    movement = wallet_service().create_wallet(
        owner_id,
        body.currency,
        http.request(router, body),
        opening_balance=body.opening_balance,
        alerts=body.alerts_document(),
    )
    return http.movement_response(OPERATION, movement, location=f"/v1/wallets/{movement.wallet.id}")


lambda_handler = http.lambda_handler_for(router, OPERATION)
