"""GET /v1/wallets/{walletId}: a wallet's balance, held and available money."""

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_core import Wallet

router = http.router()


@router.get(
    "/v1/wallets/<walletId>",
    summary="Read a wallet",
    tags=["Wallets"],
    responses=http.responses(200, Wallet, "the wallet", http.READ_PROBLEMS),
    security=http.SECURITY,
)
def get_wallet(walletId: http.WalletId):
    wallet = wallet_service().get_wallet(walletId, owner_id=http.caller(router).scope)
    return http.json_response(200, wallet)


lambda_handler = http.lambda_handler_for(router, "GetWallet")
