"""POST /v1/accounts: open a platform account in a currency (admin only)."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from wallet_lambda import http, operations
from wallet_lambda.runtime import wallet_service
from wallet_lambda.schemas import OpenAccountRequest

OPERATION = operations.BY_NAME["OpenAccount"]
router = http.router()


@http.route(router, OPERATION)
def open_account(body: Annotated[OpenAccountRequest, Body()]):
    account = wallet_service().open_account(body.name, body.currency)
    return http.json_response(OPERATION.status, account, headers={"Location": f"/v1/accounts/{account.name}"})


lambda_handler = http.lambda_handler_for(router, OPERATION)
