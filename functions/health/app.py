"""GET /health: 200 when the database answers a ping, else 503 (no token needed)."""

from wallet_api import http
from wallet_api.runtime import wallet_service
from wallet_api.schemas import Health

router = http.router()


@router.get(
    "/health",
    summary="Health",
    tags=["Service"],
    responses=http.responses(200, Health, "the database answered", http.HEALTH_PROBLEMS),
)
def health():
    wallet_service().ping()
    return http.json_response(200, Health(status="ok"))


lambda_handler = http.lambda_handler_for(router, "Health")
