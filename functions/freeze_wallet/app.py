"""POST /v1/wallets/{walletId}/freeze: stop money leaving a wallet (admin only)."""

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["FreezeWallet"]
router = http.router()


@http.route(router, OPERATION)
def freeze_wallet(walletId: parameters.WalletId):
    return http.json_response(OPERATION.status, wallet_service().freeze_wallet(walletId))


lambda_handler = http.lambda_handler_for(router, OPERATION)
