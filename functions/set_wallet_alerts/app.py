"""PUT /v1/wallets/{walletId}/alerts: set the wallet's balance alert, or remove it with `{"availableBelow": null}`.

Its owner or an administrator. A PUT: the same body again leaves the same alert, so no
Idempotency-Key is needed. The alert moves no money and has no event of its own; the movements
after it carry `wallet.balance.low` and `wallet.balance.restored` when they cross it.
"""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service
from wallet_lambda.schemas import SetAlertsRequest

OPERATION = operations.BY_NAME["SetWalletAlerts"]
router = http.router()


@http.route(router, OPERATION)
def set_wallet_alerts(walletId: parameters.WalletId, body: Annotated[SetAlertsRequest, Body()]):
    wallet = wallet_service().set_wallet_alerts(walletId, body.alerts(), owner_id=http.caller(router).owner_filter)
    return http.json_response(OPERATION.status, wallet)


lambda_handler = http.lambda_handler_for(router, OPERATION)
