"""GET /health: 200 when the database answers a ping, else 503 (no token needed)."""

from wallet_lambda import http, operations
from wallet_lambda.runtime import wallet_service
from wallet_lambda.schemas import Health

OPERATION = operations.BY_NAME["Health"]
router = http.router()


@http.route(router, OPERATION)
def health():
    wallet_service().ping()
    return http.json_response(OPERATION.status, Health(status="ok"))


lambda_handler = http.lambda_handler_for(router, OPERATION)
