"""POST /v1/wallets: open a wallet for the caller (or, for an admin, for anyone)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_api import http, problems
from wallet_api.runtime import wallet_service
from wallet_api.schemas import CreateWalletRequest
from wallet_core import MovementRecord

router = http.router()


@router.post(
    "/v1/wallets",
    summary="Open a wallet",
    tags=["Wallets"],
    responses=http.responses(
        201, MovementRecord, "the wallet, and its opening DEPOSIT entry if any", (*http.MONEY_PROBLEMS, 403)
    ),
    security=http.SECURITY,
)
def create_wallet(body: Annotated[CreateWalletRequest, Body()]):
    who = http.caller(router)
    owner_id = body.owner_id or who.owner_id
    if not who.admin and (owner_id != who.owner_id or body.opening_balance):
        raise problems.forbidden(f"opening another owner's wallet or one with money in it needs {http.ADMIN_SCOPE}")
    movement = wallet_service().create_wallet(
        owner_id,
        body.currency,
        opening_balance=body.opening_balance,
        idempotency_key=router.current_event.headers.get("idempotency-key"),
        metadata=body.metadata,
    )
    return http.movement_response(movement, status=201, location=f"/v1/wallets/{movement.wallet.id}")


lambda_handler = http.lambda_handler_for(router, "CreateWallet")
