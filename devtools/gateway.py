"""API Gateway's own part, as `make run` (devtools/local_api.py) and `make sam-api`
(devtools/sam_local.py) both play it in front of the functions: the JWT authorizer's check with the
local development key (devtools/local_auth.py), the answers the gateway gives itself, and one
access log line per request."""

from __future__ import annotations

import json
import time

from devtools.local_auth import Unauthorized, verify


def gateway_answer(status: int, message: str, headers: dict[str, str] | None = None) -> dict:
    """An answer API Gateway gives itself, before or instead of a function's: {"message": ...}."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": json.dumps({"message": message}),
        "isBase64Encoded": False,
    }


def unauthorized() -> dict:
    """API Gateway's own answer when its JWT authorizer rejects a request."""
    return gateway_answer(401, "Unauthorized", {"www-authenticate": 'Bearer error="invalid_token"'})


def function_failed() -> dict:
    """API Gateway's own answer when the function raised, crashed or timed out."""
    return gateway_answer(500, "Internal Server Error")


def authorize(request: dict) -> dict | None:
    """The JWT authorizer on an HTTP API event: puts the token's claims in
    requestContext.authorizer.jwt and answers None, or answers the 401 the gateway sends instead
    of calling the function."""
    headers = {name.lower(): value for name, value in (request.get("headers") or {}).items()}
    try:
        claims = verify(headers.get("authorization"))
    except Unauthorized:
        return unauthorized()
    request.setdefault("requestContext", {})["authorizer"] = {"jwt": claims}
    return None


def access_line(request: dict, status: object, started: float, function: str) -> str:
    """`GET /v1/wallets/… 200 12.3 ms get_wallet`: one line per request, `started` from perf_counter."""
    http = (request.get("requestContext") or {}).get("http") or {}
    duration = (time.perf_counter() - started) * 1000
    return f"{http.get('method', '?')} {http.get('path', '?')} {status} {duration:.1f} ms {function}"
