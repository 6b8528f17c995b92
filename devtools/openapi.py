"""The OpenAPI document of the whole HTTP API, generated from the handlers' routers.

    python -m devtools.openapi            # print the document
    python -m devtools.openapi --write    # (re)write openapi.json at the repository root (`make openapi`)
    python -m devtools.openapi --check    # exit 1 when the committed openapi.json differs from the code

Every `functions/<name>/app.py` that defines a `router` is included into one resolver made by
`wallet_lambda.http.create_app()`, and Powertools generates paths, parameters, bodies and response
models from the routes. This module then adds what the routes cannot say, derived from the same
code rather than written per route:

- the `Problem` schema that `wallet_lambda.http.responses()` refers to (`wallet_lambda.problems`), and
  `GatewayMessage`, the body of API Gateway's own 401;
- the `Idempotency-Key` header on every operation whose row in the table of operations
  (`wallet_lambda.operations`) says it needs one;
- the `Idempotent-Replayed` header on every answer that is a movement, `Location` on every 201 that creates a resource,
  `Retry-After` on 503 (and on a 409 `conflict`);
- `security: []` on routes declared without security (`/health`), and the handler's operation
  name (e.g. `Deposit`) as the operationId.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from devtools.functions import load_handler_module
from devtools.paths import FUNCTIONS, OPENAPI, ROOT
from wallet_lambda.operations import HTTP_OPERATIONS, TAGS, Operation
from wallet_service import Movement
from wallet_service.ledger.limits import IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_LENGTH

FUNCTIONS = FUNCTIONS
OUTPUT = OPENAPI

TITLE = "Wallet API"
DESCRIPTION = (
    "Wallets per owner and currency, deposits, withdrawals, transfers, holds with a time to live "
    "that follow a ride (raised as it goes, captured in one part or several, released or expired), "
    "refunds, platform accounts, and each wallet's journal. JSON in camelCase; amounts are integers in "
    "minor units. Every request but `GET /health` needs a JWT bearer token (its `sub` is the owner; "
    "a GET needs the `wallet:read` scope, a change `wallet:write`, and `wallet:admin` may act on any "
    "wallet). Money-moving requests need an `Idempotency-Key` "
    "header: a repeat with the same key and body answers the original response with "
    "`Idempotent-Replayed: true`. Errors are `application/problem+json` (RFC 9457) with a stable `code`."
)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
REF_PREFIX = "#/components/schemas/"


def function_names() -> list[str]:
    """Every folder under functions/ that holds an app.py, sorted (the order of the document)."""
    return sorted(path.parent.name for path in FUNCTIONS.glob("*/app.py"))


def load_function(name: str) -> ModuleType:
    """functions/<name>/app.py as a new module object named like tests/lambda_harness.py names it.

    Not cached and not put in sys.modules on purpose: including a router into a resolver rebinds
    the router to it, so the document's resolver must never share a router with a handler that
    serves requests (such as the one the test harness imported).
    """
    return load_handler_module(FUNCTIONS / name, f"functions_{name}_app")


@dataclass(frozen=True)
class HttpFunction:
    """One HTTP function: its module and its row of the table of operations."""

    name: str
    module: ModuleType
    operation: Operation


def http_functions() -> list[HttpFunction]:
    """Every function the table of operations routes over HTTP (the scheduled expiry function has no route)."""
    return [
        HttpFunction(operation.function, load_function(operation.function), operation)
        for operation in sorted(HTTP_OPERATIONS, key=lambda operation: operation.function)
    ]


def problem_schema() -> dict[str, Any]:
    """The body of every error (`wallet_lambda.problems.Problem.response`)."""
    return {
        "title": "Problem",
        "description": (
            "RFC 9457 problem details, sent as application/problem+json. Branch on `code`; "
            "`title` and `detail` are for people. Members beyond the five standard ones appear "
            "only with the codes named in their descriptions."
        ),
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "description": "`urn:wallet:problem:<code>`",
                "examples": ["urn:wallet:problem:insufficient_funds"],
            },
            "title": {"type": "string", "description": "a short summary of the kind of problem"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "the HTTP status"},
            "detail": {"type": "string", "description": "what went wrong with this request"},
            "code": {
                "type": "string",
                "pattern": "^[a-z][a-z_]*$",
                "description": "the stable machine-readable reason",
                "examples": ["validation_error", "insufficient_funds", "missing_idempotency_key"],
            },
            "errors": {
                "type": "array",
                "description": "`validation_error`: every invalid field",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string", "description": "dotted camelCase path, or `body`"},
                        "message": {"type": "string"},
                    },
                },
            },
            "existingWalletId": {
                "type": "string",
                "description": "`wallet_exists`: the owner's wallet in that currency",
            },
            "available": {
                "type": "integer",
                "description": "`insufficient_funds`: the wallet's available money, in minor units",
            },
            "requested": {
                "type": "integer",
                "description": "`insufficient_funds`: the amount asked for, in minor units",
            },
        },
    }


def gateway_message_schema() -> dict[str, Any]:
    """API Gateway's own error body: its JWT authorizer's 401 (`wallet_lambda.http.GATEWAY_MESSAGE_SCHEMA`)."""
    return {
        "title": "GatewayMessage",
        "description": (
            "API Gateway's own answer, sent as application/json before any function runs: its JWT "
            'authorizer refuses a missing, expired or otherwise invalid token with 401 `{"message": "Unauthorized"}`.'
        ),
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string", "examples": ["Unauthorized"]}},
    }


def shared_components() -> dict[str, dict[str, Any]]:
    """The header parameter and response headers, referenced from the operations that use them."""

    key_pattern = f"^{IDEMPOTENCY_KEY_PATTERN}$"
    key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": True,
        "description": (
            "Makes the request safe to retry: a repeat with the same key and body answers the "
            "original status and body (with `Idempotent-Replayed: true`); the same key with "
            "another body is a 422 `idempotency_key_mismatch`. Missing or malformed: 400."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH, "pattern": key_pattern},
    }
    optional_key = key | {
        "required": False,
        "description": (
            "Optional here: an owner has one wallet per currency, so a retry without a key is a 409 "
            "`wallet_exists` naming the wallet. With a key, a repeat with the same body answers the original "
            "status and body (with `Idempotent-Replayed: true`); another body is a 422 "
            "`idempotency_key_mismatch`. Malformed: 400."
        ),
    }
    return {
        "parameters": {"IdempotencyKey": key, "OptionalIdempotencyKey": optional_key},
        "headers": {
            "IdempotentReplayed": {
                "description": "`true` when this answer repeats the one given to an earlier request with the key",
                "required": True,
                "schema": {"type": "string", "enum": ["true", "false"]},
            },
            "Location": {
                "description": "where the created resource can be read",
                "required": True,
                "schema": {"type": "string", "format": "uri-reference"},
            },
            "RetryAfter": {
                "description": (
                    "503 `database_unavailable` and 409 `conflict`: seconds to wait before retrying "
                    "(with the same Idempotency-Key)"
                ),
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
        },
    }


def _success_models(route: Any) -> dict[int, type]:
    """A route's documented success statuses and their models (from `http.responses`)."""
    found = {}
    for status, response in (route.responses or {}).items():
        if int(status) < 400:
            for media in (response.get("content") or {}).values():
                if isinstance(media, dict) and isinstance(media.get("model"), type):
                    found[int(status)] = media["model"]
    return found


FLOAT_EXACT = 2**53  # every integer up to this is a float exactly; past it, floats round


def _normalise_numbers(value: Any, key: str | None = None) -> Any:
    """Pydantic writes integral bounds as floats (`maximum: 200.0`); the document says 200.

    Powertools' OpenAPI models hold every bound as a float, so a bound past 2**53 may arrive
    rounded (2**63 - 1 became 2**63, a bound one past what the code checks). Such a bound must be
    written as an exclusive power of two, which a float holds exactly; anything else is refused.
    """
    if isinstance(value, float) and value.is_integer():
        exclusive = key in ("exclusiveMinimum", "exclusiveMaximum")
        if abs(value) > FLOAT_EXACT and not (exclusive and math.log2(abs(value)).is_integer()):
            raise ValueError(f"{key}: {value!r} may be a rounded integer; write it as an exclusive power of two")
        return int(value)
    if isinstance(value, dict):
        return {name: _normalise_numbers(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(item) for item in value]
    return value


def iter_refs(node: Any) -> Iterator[str]:
    """Every `$ref` value in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_refs(item)


def _prune_unused_schemas(document: dict[str, Any]) -> None:
    """Drop schemas nothing refers to (Powertools' own HTTPValidationError, ValidationError and
    ResponseValidationError: this API answers every validation error with a Problem)."""
    schemas = document["components"]["schemas"]
    outside = {key: value for key, value in document.items() if key != "components"}
    outside["components"] = {key: value for key, value in document["components"].items() if key != "schemas"}
    pending = [ref.removeprefix(REF_PREFIX) for ref in iter_refs(outside) if ref.startswith(REF_PREFIX)]
    used: set[str] = set()
    while pending:
        name = pending.pop()
        if name in used or name not in schemas:
            continue
        used.add(name)
        pending.extend(ref.removeprefix(REF_PREFIX) for ref in iter_refs(schemas[name]) if ref.startswith(REF_PREFIX))
    document["components"]["schemas"] = {name: schemas[name] for name in sorted(used)}


# The operations that create a resource, the path parameter naming it elsewhere, and where its id
# is in their answer: each gets an OpenAPI link to every operation that takes that parameter.
CREATES = {
    ("post", "/v1/wallets"): ("walletId", "$response.body#/wallet/id"),
    ("post", "/v1/wallets/{walletId}/reservations"): ("reservationId", "$response.body#/reservation/id"),
}
# The operations whose answer is a resource still open to more, and the operations it leads to: a
# raised hold may be read, raised again, captured or released (a refund needs a capture first).
FOLLOWS = {
    ("post", "/v1/reservations/{reservationId}/increments"): (
        "reservationId",
        "$response.body#/reservation/id",
        ("CaptureReservation", "GetReservation", "IncrementReservation", "ReleaseReservation"),
    ),
}


def _add_links(document: dict[str, Any]) -> None:
    """Links from each creating operation's 201 to the operations that use what it created, and from
    each of FOLLOWS to the operations named there (Swagger UI shows them; Schemathesis' stateful phase
    follows them)."""
    takes: dict[str, list[str]] = {}
    for item in document["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path":
                    takes.setdefault(parameter["name"], []).append(operation["operationId"])
    targets = {key: (parameter, expression, takes[parameter]) for key, (parameter, expression) in CREATES.items()}
    targets |= FOLLOWS
    for (method, path), (parameter, expression, operation_ids) in targets.items():
        answer = _success_response(document["paths"][path][method])
        unknown = set(operation_ids) - set(takes[parameter])
        if unknown:
            raise ValueError(f"{method.upper()} {path}: links to {sorted(unknown)}, which take no {parameter}")
        answer["links"] = {
            target: {"operationId": target, "parameters": {parameter: expression}} for target in sorted(operation_ids)
        }


def _success_response(operation: dict[str, Any]) -> dict[str, Any]:
    """An operation's one success response."""
    (status,) = (status for status in operation["responses"] if status.startswith("2"))
    return operation["responses"][status]


def _add_tags(document: dict[str, Any]) -> None:
    """The groups of `wallet_lambda.operations.TAGS`, described and in their order; every route names one."""

    for path, item in document["paths"].items():
        for method, operation in item.items():
            unknown = set(operation.get("tags") or ["(none)"]) - set(TAGS)
            if unknown:
                raise ValueError(
                    f"{method.upper()} {path}: tags {sorted(unknown)} are not in wallet_lambda.operations.TAGS"
                )
    document["tags"] = [{"name": name, "description": text} for name, text in TAGS.items()]


def build_document() -> dict[str, Any]:
    """The OpenAPI document, as a JSON-ready dict."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server, ServerVariable

    from wallet_lambda import http

    functions = http_functions()
    app = http.create_app()
    for function in functions:
        app.include_router(function.module.router)

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    document = json.loads(
        app.get_openapi_json_schema(
            title=TITLE,
            version=version,
            description=DESCRIPTION,
            servers=[
                Server(
                    url="https://{apiId}.execute-api.{region}.amazonaws.com",
                    description="the deployed HTTP API ($default stage)",
                    variables={
                        "apiId": ServerVariable(default="example", description="the HTTP API's id"),
                        "region": ServerVariable(default="us-east-1", description="its AWS region"),
                    },
                )
            ],
            security_schemes={
                "jwt": HTTPBearer(
                    bearerFormat="JWT",
                    description=(
                        "A JWT from the configured issuer, checked by API Gateway's JWT authorizer "
                        "(issuer and audience). `sub` is the owner. Scopes: `wallet:read` for a GET, "
                        "`wallet:write` for a change, `wallet:admin` for every wallet, opening wallets for "
                        "others, freezing and refunds (it grants the other two). The stack's own Cognito "
                        "pool names them `wallet-api/wallet:...`; its platform client gets a token by the "
                        "client-credentials grant."
                    ),
                )
            },
        )
    )

    by_module = {id(function.module.__dict__): function for function in functions}
    components = document.setdefault("components", {})
    for section, entries in shared_components().items():
        components.setdefault(section, {}).update(entries)
    components.setdefault("schemas", {})["Problem"] = problem_schema()
    components["schemas"]["GatewayMessage"] = gateway_message_schema()

    for route in app._static_routes + app._dynamic_routes:  # Powertools' route table, as its generator reads it
        function = by_module.get(id(route.func.__globals__))
        operation = document["paths"][route.openapi_path][route.method.lower()]
        if not route.security:
            operation["security"] = []  # declared without security (/health): say it needs no token
        if function is None:
            continue
        operation["operationId"] = function.operation.name
        if not route.description and function.module.__doc__:
            # The module docstring, less its "POST /v1/...: " prefix (the operation says that already).
            text = function.module.__doc__.strip()
            text = text.removeprefix(f"{route.method} {route.openapi_path}: ")
            operation["description"] = text[:1].upper() + text[1:]
        if function.operation.needs_idempotency_key:
            operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/IdempotencyKey"})
        elif function.operation.optional_idempotency_key:
            operation.setdefault("parameters", []).append({"$ref": "#/components/parameters/OptionalIdempotencyKey"})
        for status, model in _success_models(route).items():
            headers = {}
            if issubclass(model, Movement):  # answered by http.movement_response
                headers["Idempotent-Replayed"] = {"$ref": "#/components/headers/IdempotentReplayed"}
            if status == 201 and function.operation.located:
                headers["Location"] = {"$ref": "#/components/headers/Location"}
            if headers:
                operation["responses"][str(status)]["headers"] = headers
        # Powertools documents its own 422 on routes that declare none; this API answers every
        # validation error with a Problem, and a route without parameters has none to answer.
        for status, response in list(operation["responses"].items()):
            if "HTTPValidationError" in json.dumps(response):
                del operation["responses"][status]
        for status in ("409", "503"):
            if status in operation["responses"]:
                operation["responses"][status]["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}

    _add_tags(document)
    _add_links(document)
    _prune_unused_schemas(document)
    components["schemas"] = dict(sorted(components["schemas"].items()))
    document["paths"] = {
        path: {method: _sorted_responses(item[method]) for method in METHODS if method in item}
        for path, item in sorted(document["paths"].items())
    }
    return _normalise_numbers(document)


def _sorted_responses(operation: dict[str, Any]) -> dict[str, Any]:
    operation["responses"] = dict(sorted(operation["responses"].items()))
    return operation


def render(document: dict[str, Any]) -> str:
    """The committed form: two-space indentation, key order as built (deterministic), final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.openapi", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="write the document to --file")
    action.add_argument("--check", action="store_true", help="exit 1 when --file differs from the generated document")
    parser.add_argument("--file", type=Path, default=OUTPUT, help="default: openapi.json at the repository root")
    args = parser.parse_args(argv)

    generated = render(build_document())
    if args.write:
        args.file.write_text(generated)
        print(f"wrote {args.file}")
        return 0
    if args.check:
        committed = args.file.read_text() if args.file.exists() else ""
        if committed == generated:
            print(f"{args.file} is up to date")
            return 0
        diff = list(
            difflib.unified_diff(
                committed.splitlines(), generated.splitlines(), f"{args.file} (committed)", "generated", lineterm=""
            )
        )
        shown = "\n".join(diff[:60]) + ("\n..." if len(diff) > 60 else "")
        print(
            f"{args.file} is stale: it differs from what the handlers generate "
            f"(run `make openapi` and commit it):\n{shown}",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
