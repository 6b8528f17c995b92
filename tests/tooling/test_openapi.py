"""openapi.json: current with the code, complete, and saying what the handlers do."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import pytest
from openapi_spec_validator import validate

from devtools import openapi
from tests.lambda_harness import http_event, invoke
from wallet_lambda.operations import BY_FUNCTION, HTTP_OPERATIONS

# The money-moving POSTs, named here independently of the table's `needs_idempotency_key`, which the generator reads.
MONEY_MOVING = {
    ("post", "/v1/wallets/{walletId}/deposits"),
    ("post", "/v1/wallets/{walletId}/withdrawals"),
    ("post", "/v1/transfers"),
    ("post", "/v1/wallets/{walletId}/reservations"),
    ("post", "/v1/reservations/{reservationId}/increments"),
    ("post", "/v1/reservations/{reservationId}/capture"),
    ("post", "/v1/reservations/{reservationId}/release"),
    ("post", "/v1/reservations/{reservationId}/refunds"),
}
OPEN_ROUTES = {("get", "/health")}
CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")


@pytest.fixture(scope="module", autouse=True)
def _function_environment():
    """The Powertools settings conftest's `lambda_env` gives a function. wallet_lambda.http reads them
    once, when first imported, and generating the document may be that first import."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POWERTOOLS_SERVICE_NAME", "wallet")
        patch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Wallet")
        patch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
        yield


@cache
def generated() -> dict[str, Any]:
    return openapi.build_document()


@cache
def committed() -> dict[str, Any]:
    return json.loads(openapi.OUTPUT.read_text())


@cache
def function_by_operation() -> dict[str, str]:
    """operationId (the handler's operation name) -> functions/<name>."""
    return {function.operation.name: function.name for function in openapi.http_functions()}


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in openapi.METHODS
    }


def resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow `$ref`s (local JSON pointers) until a node that is not a reference."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        node = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict), f"{ref}: {part!r} is inside a non-object"
            assert part in node, f"{ref} does not resolve: no {part!r}"
            node = node[part]
    return node


def test_the_committed_document_is_what_the_code_generates():
    assert committed() == generated(), (
        "openapi.json is stale: run `make openapi` (python -m devtools.openapi --write) and commit it"
    )


def test_check_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path, capsys):
    target = tmp_path / "openapi.json"
    stale = json.loads(openapi.render(generated()))
    stale["info"]["version"] = "0.0.0-stale"
    target.write_text(openapi.render(stale))
    assert openapi.main(["--check", "--file", str(target)]) == 1
    assert "is stale" in capsys.readouterr().err

    assert openapi.main(["--write", "--file", str(target)]) == 0
    assert openapi.main(["--check", "--file", str(target)]) == 0


def test_the_document_is_valid_openapi():
    validate(generated())


def test_every_row_of_the_table_is_a_handler_of_its_own_and_the_document_has_its_routes():
    folders = {path.parent.name for path in openapi.FUNCTIONS.glob("*/app.py")}
    assert folders == set(BY_FUNCTION), "a function without a row in the table of operations, or a row without one"
    for function in openapi.http_functions():
        assert function.module.OPERATION is function.operation, function.name  # the handler serves its own row
    documented = set(operations(generated()))
    assert documented == {(operation.method.lower(), operation.path) for operation in HTTP_OPERATIONS}


def test_every_operation_but_health_requires_the_jwt_scheme():
    document = generated()
    scheme = document["components"]["securitySchemes"]["jwt"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert "security" not in document, "no global requirement: each operation says its own"
    for key, operation in operations(document).items():
        expected = [] if key in OPEN_ROUTES else [{"jwt": []}]
        assert operation.get("security") == expected, key


def test_money_moving_posts_and_only_those_require_an_idempotency_key():
    """Opening a wallet takes one without needing it (an owner has one wallet per currency)."""
    document = generated()
    requiring, taking = set(), set()
    for key, operation in operations(document).items():
        for parameter in operation.get("parameters", []):
            parameter = resolve(document, parameter)
            if parameter["in"] == "header" and parameter["name"].lower() == "idempotency-key":
                (requiring if parameter["required"] else taking).add(key)
                schema = parameter["schema"]
                assert (schema["type"], schema["minLength"], schema["maxLength"]) == ("string", 1, 255), key
                pattern = re.compile(schema["pattern"])
                assert pattern.search("ride-9:capture")
                assert pattern.search("k" * 255)
                for bad in ("", "has space", "ünï", "k" * 256):
                    assert not pattern.search(bad), (key, bad)
    assert requiring == MONEY_MOVING
    assert taking == {("post", "/v1/wallets")}


@pytest.mark.parametrize(("method", "path"), sorted(MONEY_MOVING))
def test_a_documented_idempotency_key_is_one_the_handler_demands(method, path):
    """The document and the handler agree: without the header, the handler refuses before any database call."""
    function = function_by_operation()[operations(generated())[(method, path)]["operationId"]]
    parameters = dict.fromkeys(re.findall(r"{(\w+)}", path), "a" * 24)
    admin = ("wallet:read", "wallet:write", "wallet:admin")  # an admin-only route checks the scope first
    answer = invoke(function, http_event(method.upper(), path, parameters, body={"amount": 5}, scopes=admin))
    assert (answer.status, answer.problem_code) == (400, "missing_idempotency_key")


def test_every_ref_resolves():
    document = generated()
    refs = set(openapi.iter_refs(document))
    assert "#/components/schemas/Problem" in refs
    for ref in sorted(refs):
        resolve(document, {"$ref": ref})


def test_every_error_is_a_problem():
    document = generated()
    problem = resolve(document, {"$ref": "#/components/schemas/Problem"})
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert {"errors", "existingWalletId", "available", "requested"} <= set(problem["properties"])
    problem_json = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    # API Gateway's JWT authorizer answers a bad token itself, before any function runs.
    gateway = {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayMessage"}}}
    assert resolve(document, gateway["application/json"]["schema"])["required"] == ["message"]
    for key, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                expected = problem_json | gateway if status == "401" else problem_json
                assert response["content"] == expected, (key, status)
            if status == "401":
                assert key not in OPEN_ROUTES, key


def property_names(document: dict[str, Any], schema: Any, seen: set[int] | None = None) -> set[str]:
    """Every property name reachable from a schema (through $ref, items, anyOf, ...)."""
    seen = set() if seen is None else seen
    schema = resolve(document, schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return set()
    seen.add(id(schema))
    names = set(schema.get("properties", {}))
    children = list(schema.get("properties", {}).values())
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            children.append(schema[keyword])
    for keyword in ("anyOf", "oneOf", "allOf"):
        children.extend(schema.get(keyword, []))
    for child in children:
        names |= property_names(document, child, seen)
    return names


def success_schemas(document: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (method, path, status): response["content"]["application/json"]["schema"]
        for (method, path), operation in operations(document).items()
        for status, response in operation["responses"].items()
        if status.startswith("2")
    }


def test_success_bodies_and_request_bodies_are_camel_case():
    document = generated()
    schemas = success_schemas(document)
    assert {status for (_, _, status) in schemas} == {"200", "201"}
    for key, schema in schemas.items():
        names = property_names(document, schema)
        assert names, key
        assert all(CAMEL_CASE.fullmatch(name) for name in names), (key, sorted(names))
    for key, operation in operations(document).items():
        if "requestBody" in operation:
            names = property_names(document, operation["requestBody"]["content"]["application/json"]["schema"])
            assert all(CAMEL_CASE.fullmatch(name) for name in names), (key, sorted(names))


# Movements that create entries only: their 201 names no resource (no Location).
ENTRIES_ONLY = {
    ("post", "/v1/wallets/{walletId}/deposits"),
    ("post", "/v1/wallets/{walletId}/withdrawals"),
    ("post", "/v1/transfers"),
}


def test_movement_answers_are_documented_as_movements():
    document = generated()
    movements = {
        (method, path)
        for (method, path, _), schema in success_schemas(document).items()
        if "operationId" in resolve(document, schema).get("properties", {})
    }
    assert MONEY_MOVING | {("post", "/v1/wallets")} == movements
    for (method, path, status), schema in success_schemas(document).items():
        if (method, path) not in movements:
            continue
        movement = resolve(document, schema)
        assert {"operationId", "entries", "wallet"} <= set(movement["required"]), (method, path)
        assert "replayed" not in movement["properties"], "http.json_response drops `replayed` from every body"
        wallet = resolve(document, movement["properties"]["wallet"])
        assert "available" in wallet["properties"], "computed fields are serialised, so documented"
        headers = operations(document)[(method, path)]["responses"][status]["headers"]
        assert "Idempotent-Replayed" in headers, (method, path)
        located = status == "201" and (method, path) not in ENTRIES_ONLY
        assert ("Location" in headers) == located, (method, path)


def answer_property(document: dict[str, Any], schema: Any, name: str) -> Any:
    """A property of an object schema, through `$ref`s and a nullable `anyOf`."""
    schema = resolve(document, schema)
    if "anyOf" in schema:
        (schema,) = [branch for branch in schema["anyOf"] if resolve(document, branch).get("type") != "null"]
        schema = resolve(document, schema)
    return schema["properties"][name]


def test_links_lead_from_a_hold_to_its_raises_and_captures():
    document = generated()
    by_id = {operation["operationId"]: operation for operation in operations(document).values()}
    placed = operations(document)[("post", "/v1/wallets/{walletId}/reservations")]["responses"]["201"]["links"]
    assert {"GetReservation", "IncrementReservation", "CaptureReservation", "ReleaseReservation"} <= set(placed)
    raised = operations(document)[("post", "/v1/reservations/{reservationId}/increments")]["responses"]["201"]
    assert set(raised["links"]) == {
        "CaptureReservation",
        "GetReservation",
        "IncrementReservation",
        "ReleaseReservation",
    }
    linked = 0
    for (method, path), operation in operations(document).items():
        for status, response in operation["responses"].items():
            for name, link in response.get("links", {}).items():
                linked += 1
                assert status.startswith("2"), (method, path, status)
                target = by_id[link["operationId"]]
                assert name == link["operationId"]
                takes = {
                    parameter["name"]
                    for parameter in (resolve(document, item) for item in target.get("parameters", []))
                    if parameter["in"] == "path"
                }
                assert set(link["parameters"]) == takes, (path, name)
                for expression in link["parameters"].values():
                    # $response.body#/reservation/id: a property the answer documents, all the way down
                    schema = response["content"]["application/json"]["schema"]
                    for part in expression.removeprefix("$response.body#/").split("/"):
                        schema = answer_property(document, schema, part)
                    assert resolve(document, schema)["type"] == "string", expression
    assert linked >= 10


def test_the_hold_request_bodies_document_raises_captures_in_parts_and_expiry():
    document = generated()
    schemas = document["components"]["schemas"]

    def body(method: str, path: str) -> dict[str, Any]:
        """The request body's object schema (the non-null branch of an optional body)."""
        schema = resolve(
            document, operations(document)[(method, path)]["requestBody"]["content"]["application/json"]["schema"]
        )
        branches = [resolve(document, branch) for branch in schema.get("anyOf", [schema])]
        (found,) = [branch for branch in branches if branch.get("type") != "null"]
        return found

    increment = body("post", "/v1/reservations/{reservationId}/increments")
    assert increment["required"] == ["amount"]
    assert increment["additionalProperties"] is False
    (ttl, _) = increment["properties"]["ttlSeconds"]["anyOf"]
    placed = body("post", "/v1/wallets/{walletId}/reservations")
    assert (ttl["minimum"], ttl["maximum"]) == (placed["properties"]["ttlSeconds"]["minimum"], 7 * 24 * 3600)
    assert increment["examples"][0]["referenceType"] == "detour"
    on_expiry = resolve(document, placed["properties"]["onExpiry"])
    assert (on_expiry["enum"], placed["properties"]["onExpiry"]["default"]) == (["release", "capture"], "release")
    places = [resolve(document, branch) for branch in placed["properties"]["captureTo"]["anyOf"]]
    assert [place.get("required") for place in places] == [["walletId"], ["account"], None]  # or null
    assert placed["if"]["required"] == ["captureTo"]  # a captureTo goes with onExpiry capture only
    assert placed["then"]["properties"]["onExpiry"] == {"const": "capture"}
    assert any(example.get("onExpiry") == "capture" for example in placed["examples"])
    captured = body("post", "/v1/reservations/{reservationId}/capture")
    assert (captured["properties"]["final"]["type"], captured["properties"]["final"]["default"]) == ("boolean", True)
    assert captured["then"]["required"] == ["amount"]
    assert any(example.get("final") is False for example in captured["examples"])
    assert "PARTIALLY_CAPTURED" in schemas["ReservationStatus"]["enum"]
    reservation = schemas["Reservation"]["properties"]
    assert {"increments", "onExpiry", "captureTo", "heldAmount"} <= set(reservation)
