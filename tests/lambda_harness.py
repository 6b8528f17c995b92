"""Invoke the Lambda functions in-process with API Gateway HTTP API v2 events, as AWS would."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from devtools.functions import load_handler_module
from devtools.lambda_inputs import LambdaContext
from devtools.paths import EVENTS, FUNCTIONS

__all__ = ["EVENTS", "FUNCTIONS", "LambdaContext", "function_module", "http_event", "invoke"]


@cache
def function_module(name: str) -> ModuleType:
    """functions/<name>/app.py, imported under a unique module name (every handler is called `app`)."""
    return load_handler_module(FUNCTIONS / name, f"functions_{name}_app")


def http_event(
    method: str,
    route: str,
    path_parameters: dict[str, str] | None = None,
    *,
    body: object = None,
    raw_body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    sub: str | None = "rider-42",
    scopes: tuple[str, ...] = ("wallet:read", "wallet:write"),
    idempotency_key: str | None = None,
) -> dict:
    """An HTTP API v2 event for `route` (e.g. "/v1/wallets/{walletId}"), with JWT claims when `sub` is set."""
    path = route.format(**(path_parameters or {}))
    all_headers = {"content-type": "application/json", "user-agent": "pytest"}
    if idempotency_key is not None:
        all_headers["idempotency-key"] = idempotency_key
    all_headers.update(headers or {})
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    encoded = isinstance(raw_body, bytes)
    request_context: dict = {
        "accountId": "123456789012",
        "apiId": "wallet",
        "domainName": "wallet.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "wallet",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "pytest",
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": f"{method} {route}",
        "stage": "$default",
        "time": "25/Nov/2026:13:00:00 +0000",
        "timeEpoch": 1795611600000,
    }
    if sub is not None:
        request_context["authorizer"] = {
            "jwt": {
                "claims": {"sub": sub, "iss": "https://auth.example.com/", "scope": " ".join(scopes)},
                "scopes": list(scopes),
            }
        }
        all_headers.setdefault("authorization", "Bearer test-token")
    return {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{key}={value}" for key, value in (query or {}).items()),
        "headers": all_headers,
        "queryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "requestContext": request_context,
        "body": base64.b64encode(raw_body).decode() if encoded else raw_body,
        "isBase64Encoded": encoded,
    }


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: dict | list | None

    @property
    def problem_code(self) -> str | None:
        assert self.headers.get("Content-Type") == "application/problem+json", self.headers
        assert isinstance(self.body, dict)
        for member in ("type", "title", "status", "detail", "code"):
            assert member in self.body, self.body
        assert self.body["status"] == self.status
        return self.body["code"]


def invoke(function: str, event: dict, context: LambdaContext | None = None) -> HttpAnswer:
    response = function_module(function).lambda_handler(event, context or LambdaContext())
    headers = {**response.get("headers", {})}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(name, ",".join(values))
    raw = response.get("body")
    body = json.loads(raw) if raw else None
    return HttpAnswer(response["statusCode"], headers, body)
