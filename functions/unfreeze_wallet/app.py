"""POST /v1/wallets/{walletId}/unfreeze: let money leave a frozen wallet again (admin only)."""

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["UnfreezeWallet"]
router = http.router()


@http.route(router, OPERATION)
def unfreeze_wallet(walletId: parameters.WalletId):
    return http.json_response(OPERATION.status, wallet_service().unfreeze_wallet(walletId))


lambda_handler = http.lambda_handler_for(router, OPERATION)
