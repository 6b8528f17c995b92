"""What every HTTP handler shares: the resolver, caller identity, idempotency keys, responses,
and the Lambda entry point with logging, tracing and metrics.

A handler module takes its row of the table of operations (operations.py), declares its one route
with `@http.route(router, OPERATION)` and ends with `lambda_handler = http.lambda_handler_for(router,
OPERATION)`: the row says the route, the success status, the answers it documents, whether an
Idempotency-Key is required and whether the caller must be an administrator.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_service import Movement, WalletError, committed_events
from wallet_service.limits import (
    IDEMPOTENCY_KEY_PATTERN,
    MAX_IDEMPOTENCY_KEY_LENGTH,
)

from . import after_answer, delivery, problems, runtime
from .observability import count_amount_moved, logger, metrics, tracer
from .operations import Operation
from .problems import Problem

MAX_BODY_BYTES = 16 * 1024
IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
JSON_CONTENT_TYPE = re.compile(r"application/([a-z0-9.+-]+\+)?json\s*(;.*)?", re.IGNORECASE)
SECURITY = [{"jwt": []}]


def router() -> Router:
    return Router()


def route(router: Router, operation: Operation) -> Callable:
    """The Powertools route of `operation`: method, path, summary, tag, documented answers, security."""
    register = getattr(router, operation.method.lower())
    return register(
        operation.route,
        summary=operation.summary,
        tags=[operation.tag],
        responses=responses(operation),
        **({} if operation.public else {"security": SECURITY}),
    )


@dataclass(frozen=True, slots=True)
class Caller:
    owner_id: str
    scopes: frozenset[str]

    @property
    def admin(self) -> bool:
        return scope("admin") in self.scopes

    def may(self, needed: str) -> bool:
        """Whether the token grants `needed` (read, write, admin); wallet:admin grants every one."""
        return not needed or self.admin or scope(needed) in self.scopes

    @property
    def owner_filter(self) -> str | None:
        """The owner to confine the service's calls to (its `owner_id` argument); None for an
        administrator, who may act on any wallet."""
        return None if self.admin else self.owner_id


def caller(route_owner: Router | APIGatewayHttpResolver) -> Caller:
    """The verified caller: the JWT's `sub` (API Gateway's authorizer checked the token)."""
    return _caller_of(route_owner.current_event.raw_event)


def _caller_of(event: dict) -> Caller:
    context = event.get("requestContext") or {}
    jwt = (context.get("authorizer") or {}).get("jwt")
    claims = (jwt or {}).get("claims") or {}
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise problems.unauthorized("a valid bearer token is required")
    scopes = set((jwt or {}).get("scopes") or [])
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(str(item) for item in value)
    return Caller(owner_id=subject, scopes=frozenset(scopes))


def scope(name: str) -> str:
    """A scope as the issuer names it: wallet:read, wallet:write or wallet:admin, after SCOPE_PREFIX
    (the template's own Cognito pool sets wallet-api/: a resource server's scopes carry its id)."""
    return f"{os.environ.get('SCOPE_PREFIX', '')}wallet:{name}"


def idempotency_key(route_owner: Router | APIGatewayHttpResolver) -> str:
    """The request's Idempotency-Key header (checked before routing, see `_refuse_early`)."""
    return route_owner.current_event.headers["idempotency-key"]


def json_response(status: int, model: Any, *, headers: dict[str, str] | None = None) -> Response:
    body = model.model_dump_json(by_alias=True)
    return Response(status_code=status, content_type="application/json", body=body, headers=headers or {})


def movement_response(operation: Operation, movement: Movement, *, location: str | None = None) -> Response:
    """A money response; a replay carries the original status and body, marked by a header. The money
    the call moved is counted (AmountMoved); a replay moved none."""
    if not movement.replayed:
        _count_amount_moved(operation, movement)
    headers = {"Idempotent-Replayed": "true" if movement.replayed else "false"}
    if location:
        headers["Location"] = location
    return json_response(operation.status, movement, headers=headers)


def _count_amount_moved(operation: Operation, movement: Movement) -> None:
    """The money a movement moved, as its operation's row defines it (operations.Operation.moved)."""
    if operation.moved is None:
        return
    amount = sum(entry.amount for entry in movement.entries if entry.type == operation.moved)
    if amount:
        count_amount_moved(operation.name, movement.wallet.currency, amount)


PROBLEM_DESCRIPTIONS = {
    400: "malformed JSON body, Idempotency-Key header or cursor",
    401: "missing or invalid token: API Gateway's own answer, or a problem when the token names no owner",
    403: "missing scope",
    404: "unknown, or not the caller's",
    409: "insufficient funds, invalid state, wallet exists or frozen, or too much contention",
    413: "body over 16 KiB",
    415: "body is not JSON",
    422: "invalid fields, or idempotency key reused with another body",
    500: "unexpected error (logged; no details are returned)",
    503: "database unavailable; retry after Retry-After seconds",
}
# What `_refuse_early` answers on every route, before routing: a body over 16 KiB, a body that
# is not JSON, or a malformed Idempotency-Key (checked wherever it is sent).
EARLY_PROBLEMS = (400, 413, 415)
# API Gateway's JWT authorizer refuses a request itself, before any function runs:
# 401 with an `application/json` body `{"message": "Unauthorized"}` (devtools/local_api.unauthorized).
GATEWAY_MESSAGE_SCHEMA = {"$ref": "#/components/schemas/GatewayMessage"}


def responses(operation: Operation) -> dict[int, dict]:
    """OpenAPI responses of a route: its success and each problem it may answer."""
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    documented: dict[int, dict] = {
        operation.status: {
            "description": operation.answer_description,
            "content": {"application/json": {"model": operation.answer}},
        }
    }
    for code in sorted({*EARLY_PROBLEMS, *operation.problems}):
        content = dict(problem)
        if code == 401:
            content["application/json"] = {"schema": GATEWAY_MESSAGE_SCHEMA}
        documented[code] = {"description": PROBLEM_DESCRIPTIONS[code], "content": content}
    return documented


def create_app() -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)

    @app.not_found
    def _no_route(error: NotFoundError) -> Response:
        # A path id with characters no route matches (a control character, say) is an id that
        # cannot exist. Without this, Powertools hands NotFoundError to `_unexpected` (a 500).
        return problems.not_found("no such resource").response()

    @app.exception_handler(Problem)
    def _problem(problem: Problem) -> Response:
        return problem.response()

    @app.exception_handler(WalletError)
    def _wallet_error(error: WalletError) -> Response:
        return problems.from_wallet_error(error).response()

    @app.exception_handler(RequestValidationError)
    def _invalid_request(error: RequestValidationError) -> Response:
        errors = [
            {
                "field": ".".join(str(part) for part in item["loc"] if part not in ("body", "query", "path")) or "body",
                "message": item["msg"],
            }
            for item in error.errors()
        ]
        return problems.validation(errors).response()

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        # Powertools calls this outside the `except` block, so the error is passed explicitly:
        # logger.exception() here would log no traceback at all.
        logger.error("unexpected error", exc_info=error)
        return problems.internal_error().response()

    return app


def lambda_handler_for(router: Router, operation: Operation) -> Callable[[dict, LambdaContext], dict]:
    """The Lambda entry point of one HTTP function. The events its transactions commit are sent
    once its answer has left (wallet_lambda.after_answer, .delivery); a replay, a refusal or a read
    commits none and sends nothing."""
    app = create_app()
    app.include_router(router)
    if operation.publishes:
        after_answer.register()

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def lambda_handler(event: dict, context: LambdaContext) -> dict:
        metrics.add_dimension("operation", operation.name)
        publish = None
        try:
            problem = _refuse_early(event, operation)
            if problem is not None:
                response = _proxy_response(problem.response())
            else:
                with committed_events() as committed, runtime.database_deadline(context.get_remaining_time_in_millis()):
                    response = app.resolve(event, context)
                if committed:
                    publish = functools.partial(delivery.publish_committed, committed, context)
            _count(response)
            return response
        finally:
            after_answer.hand_over(context.aws_request_id, publish)

    return lambda_handler


def _refuse_early(event: dict, operation: Operation) -> Problem | None:
    """Checks API Gateway does not do, before the body is parsed: size, media type, JSON, keys, and
    the scope the operation needs (before anything of the request is looked at)."""
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    body = event.get("body")
    if body:
        raw = body.encode() if isinstance(body, str) else body
        if event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                return problems.bad_request("malformed_body", "the body is not valid base64")
        if len(raw) > MAX_BODY_BYTES:
            return Problem(413, "payload_too_large", "Payload too large", f"the body exceeds {MAX_BODY_BYTES} bytes")
        if not JSON_CONTENT_TYPE.fullmatch(headers.get("content-type", "")):
            return Problem(415, "unsupported_media_type", "Unsupported media type", "send the body as application/json")
        try:
            json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
        except _DuplicateKey as duplicate:
            return problems.bad_request("malformed_json", f"the key {duplicate.args[0]!r} appears twice in one object")
        except (ValueError, UnicodeDecodeError) as error:
            return problems.bad_request("malformed_json", f"the body is not valid JSON: {error}")
    if operation.scope:
        try:
            if not _caller_of(event).may(operation.scope):
                return problems.forbidden(f"this operation needs the {scope(operation.scope)} scope")
        except Problem as refusal:
            return refusal
    key = headers.get("idempotency-key")
    if key is None and operation.needs_idempotency_key:
        return problems.bad_request("missing_idempotency_key", "money-moving requests need an Idempotency-Key header")
    # Optional elsewhere (opening a wallet), but always well formed.
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        return problems.bad_request(
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters",
        )
    return None


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _proxy_response(response: Response) -> dict:
    return {
        "statusCode": response.status_code,
        "headers": {"Content-Type": response.content_type, **response.headers},
        "body": response.body,
        "isBase64Encoded": False,
    }


def _count(response: dict) -> None:
    status = int(response.get("statusCode", 500))
    outcome = "Succeeded" if status < 400 else "Rejected" if status < 500 else "Failed"
    metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)
