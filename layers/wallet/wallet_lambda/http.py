"""What every HTTP handler shares: the resolver, the caller (identity.py) and what it says about a
movement (`request`), responses, and the Lambda entry point with logging, tracing and metrics; what
every route refuses before routing is in early_refusals.py.

A handler module takes its row of the table of operations (operations.py), declares its one route
with `@http.route(router, OPERATION)` and ends with `lambda_handler = http.lambda_handler_for(router,
OPERATION)`: the row says the route, the success status, the answers it documents, whether an
Idempotency-Key is required and whether the caller must be an administrator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_service import Movement, Request, WalletError, committed_events

from . import after_answer, delivery, early_refusals, problems, runtime
from .identity import Caller, caller_of
from .observability import count_amount_moved, logger, metrics, tracer
from .operations import Operation
from .problems import Problem

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


def caller(route_owner: Router | APIGatewayHttpResolver) -> Caller:
    """The verified caller: the JWT's `sub` (API Gateway's authorizer checked the token)."""
    return caller_of(route_owner.current_event.raw_event)


def request(route_owner: Router | APIGatewayHttpResolver, body: Any) -> Request:
    """What the caller says about a movement, as the service takes it: the Idempotency-Key header
    (checked before routing: early_refusals.py), the body's reference and metadata
    (`body.details()`), and the owner the call is confined to (none for an administrator)."""
    return Request(
        idempotency_key=route_owner.current_event.headers.get("idempotency-key"),
        owner_id=caller(route_owner).owner_filter,
        **body.details(),
    )


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
# What early_refusals.py answers on every route, before routing: a body over 16 KiB, a body that
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
            problem = early_refusals.refusal(event, operation)
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
