"""GET /v1/wallets/{walletId}: a wallet's balance, held and available money."""

from wallet_lambda import http, operations, parameters
from wallet_lambda.runtime import wallet_service

OPERATION = operations.BY_NAME["GetWallet"]
router = http.router()


@http.route(router, OPERATION)
def get_wallet(walletId: parameters.WalletId):
    wallet = wallet_service().get_wallet(walletId, owner_id=http.caller(router).owner_filter)
    return http.json_response(OPERATION.status, wallet)


lambda_handler = http.lambda_handler_for(router, OPERATION)
