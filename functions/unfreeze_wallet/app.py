"""POST /v1/wallets/{walletId}/unfreeze: let money leave a frozen wallet again (admin only)."""

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_core import Wallet

router = http.router()


@router.post(
    "/v1/wallets/<walletId>/unfreeze",
    summary="Unfreeze a wallet",
    tags=["Wallets"],
    responses=http.responses(200, Wallet, "the wallet after the change", http.ADMIN_PROBLEMS),
    security=http.SECURITY,
)
def unfreeze_wallet(walletId: http.WalletId):
    http.require_admin(http.caller(router))
    return http.json_response(200, wallet_service().unfreeze_wallet(walletId))


lambda_handler = http.lambda_handler_for(router, "UnfreezeWallet")
