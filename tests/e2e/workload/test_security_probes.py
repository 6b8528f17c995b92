"""Bad input and hostile requests, by hand, over real HTTP against `make run`'s server.

Each probe asserts the documented answer (status and problem `code`, or API Gateway's own 401)
and that nothing changed in the database: every wallet, entry, hold and operation record is read
before and after (tests/ledger_checks.snapshot). tests/handlers/test_http_contract.py pins some of these on
the handlers in-process; here they go through the local gateway, its token check and the wire.
The ids in templates ({mine}, {wallet}, ...) are filled in from the world the module seeds.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import jwt
import pytest

from devtools.local_auth import ALGORITHM, AUDIENCE, ISSUER, issue_token, signing_key
from tests.ledger_checks import snapshot

ADMIN = ("wallet:admin",)
PROBLEM_JSON = "application/problem+json"
GATEWAY_401 = {"message": "Unauthorized"}


@dataclass(frozen=True)
class World:
    owner: str
    stranger: str
    ids: dict[str, str]  # template name -> id
    cursors: dict[str, str]  # real cursors the listings issued

    def token(self, who: str = "owner") -> str:
        return issue_token("probe-ops", ADMIN) if who == "admin" else issue_token(getattr(self, who))

    def fill(self, value: object) -> object:
        """A template with {mine}, {wallet}, ... replaced by the seeded ids."""
        if isinstance(value, str):
            return value.format(**self.ids)
        if isinstance(value, dict):
            return {self.fill(key): self.fill(item) for key, item in value.items()}
        return value


def ok(answer: tuple[int, dict, object], status: int = 201) -> dict:
    assert answer[0] == status, answer
    return answer[2]


@pytest.fixture(scope="module")
def world(deployment) -> World:
    """An owner (a USD wallet with a hold and three entries, a EUR wallet) and a stranger (a USD wallet and a hold)."""
    server = deployment.server
    admin = issue_token("probe-ops", ADMIN)
    owner, stranger = f"probe-owner-{uuid.uuid4().hex[:8]}", f"probe-stranger-{uuid.uuid4().hex[:8]}"

    def open_wallet(who: str, currency: str) -> str:
        body = {"currency": currency, "ownerId": who, "openingBalance": 10_000}
        return ok(server.json("POST", "/v1/wallets", body, token=admin))["wallet"]["id"]

    def hold(who: str, wallet: str) -> str:
        body = {"amount": 500, "ttlSeconds": 3_600}
        answer = server.json(
            "POST", f"/v1/wallets/{wallet}/reservations", body, token=issue_token(who), key=f"h-{wallet}"
        )
        return ok(answer)["reservation"]["id"]

    mine, euros, theirs = open_wallet(owner, "USD"), open_wallet(owner, "EUR"), open_wallet(stranger, "USD")
    ids = {
        "mine": mine,
        "euros": euros,
        "wallet": theirs,
        "hold": hold(owner, mine),
        "reservation": hold(stranger, theirs),
    }
    ids |= {"missing_wallet": uuid.uuid4().hex[:24], "missing_reservation": uuid.uuid4().hex[:24], "stranger": stranger}
    ok(server.json("POST", f"/v1/wallets/{mine}/deposits", {"amount": 7}, token=issue_token(owner), key="d-1"))

    def cursor(who: str, path: str) -> str:
        return ok(server.json("GET", f"{path}limit=1", token=issue_token(who)), 200)["nextCursor"]

    cursors = {
        "transactions": cursor(owner, f"/v1/wallets/{mine}/transactions?"),
        "deposits": cursor(owner, f"/v1/wallets/{mine}/transactions?type=DEPOSIT&"),
        "theirs": cursor(stranger, f"/v1/wallets/{theirs}/transactions?"),
    }
    ok(server.json("POST", f"/v1/wallets/{mine}/reservations", {"amount": 1}, token=issue_token(owner), key="h-2"))
    cursors["reservations"] = cursor(owner, f"/v1/wallets/{mine}/reservations?")
    return World(owner, stranger, ids, cursors)


@contextmanager
def unchanged(deployment) -> Iterator[None]:
    """Nothing in the wallet collections changes inside the block (once the earlier requests' events
    are published: that happens after their answers)."""
    deployment.settled()
    before = snapshot(deployment.database)
    yield
    assert snapshot(deployment.database) == before, "a refused request changed the database"


def assert_problem(answer: tuple[int, dict, object], status: int, code: str) -> dict:
    got, headers, body = answer
    assert (got, isinstance(body, dict) and body.get("code")) == (status, code), body
    assert headers["Content-Type"] == PROBLEM_JSON, headers
    assert (body["status"], body["type"]) == (status, f"urn:wallet:problem:{code}"), body
    assert "Traceback" not in json.dumps(body)
    return body


def send(deployment, world: World, method: str, path: str, body: object = None, *, who: str = "owner", **options):
    """One request as `who` (owner, stranger or admin; None for no token), with a fresh Idempotency-Key
    unless one is given."""
    options.setdefault("key", f"probe-{uuid.uuid4().hex}")
    token = world.token(who) if who else None
    return deployment.server.json(method, world.fill(path), world.fill(body), token=token, **options)


# ---------------------------------------------------------------- tokens


def forged(key: str | bytes | None = None, algorithm: str = ALGORITHM, **changes) -> str:
    """A token for the owner of {mine} with the admin scope, with `changes` to what make run would issue."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, "scope": "wallet:admin"} | changes
    return jwt.encode(claims, signing_key() if key is None else key, algorithm=algorithm)


BAD_TOKENS = {
    "missing": lambda sub: None,
    "garbage": lambda sub: "not-a-jwt",
    "expired": lambda sub: forged(sub=sub, exp=int(time.time()) - 10),
    "wrongly-signed": lambda sub: forged(b"another-key-" * 4, sub=sub),
    "alg-none": lambda sub: forged("", "none", sub=sub),
    "wrong-audience": lambda sub: forged(sub=sub, aud="someone-else"),
    "wrong-issuer": lambda sub: forged(sub=sub, iss="https://evil.example/"),
    "no-subject": lambda sub: forged(),
}
TOKEN_ROUTES = [
    ("GET", "/v1/wallets/{mine}", None),
    ("GET", "/v1/wallets/{mine}/transactions", None),
    ("POST", "/v1/wallets/{mine}/withdrawals", {"amount": 1}),
    ("POST", "/v1/transfers", {"fromWalletId": "{mine}", "toWalletId": "{wallet}", "amount": 1}),
    ("POST", "/v1/reservations/{hold}/capture", {}),
    ("POST", "/v1/wallets", {"currency": "GBP", "openingBalance": 1_000_000}),
    ("POST", "/v1/wallets/{mine}/freeze", None),
]


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_tokens_are_the_gateways_401_on_every_route(deployment, world, kind):
    token = BAD_TOKENS[kind](world.owner)
    headers = {"authorization": "Basic b3duZXI6cGFzcw=="} if kind == "missing" else {}
    with unchanged(deployment):
        for method, path, body in TOKEN_ROUTES:
            status, answer_headers, answer = deployment.server.json(
                method, world.fill(path), world.fill(body), token=token, key="k", headers=headers
            )
            assert (status, answer) == (401, GATEWAY_401), (method, path, answer)
            assert answer_headers["Content-Type"] == "application/json"


# ---------------------------------------------------------------- another owner's ids

ID_ROUTES = [
    ("GET", "/v1/wallets/{%s}", None),
    ("GET", "/v1/wallets/{%s}/transactions", None),
    ("GET", "/v1/wallets/{%s}/reservations", None),
    ("POST", "/v1/wallets/{%s}/deposits", {"amount": 1}),
    ("POST", "/v1/wallets/{%s}/withdrawals", {"amount": 1}),
    ("POST", "/v1/wallets/{%s}/reservations", {"amount": 1}),
    ("POST", "/v1/transfers", {"fromWalletId": "{%s}", "toWalletId": "{mine}", "amount": 1}),
    ("GET", "/v1/reservations/{%s}", None),
    ("POST", "/v1/reservations/{%s}/capture", {"amount": 1}),
    ("POST", "/v1/reservations/{%s}/release", {}),
]


def templated(value: object, name: str) -> object:
    if isinstance(value, str):
        return value.replace("{%s}", "{" + name + "}")
    if isinstance(value, dict):
        return {key: templated(item, name) for key, item in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body"), ID_ROUTES, ids=[f"{m} {p}" for m, p, _ in ID_ROUTES])
def test_another_owners_ids_are_404_like_missing_ones(deployment, world, method, path, body):
    kind = "reservation" if "/reservations/{%s}" in path else "wallet"
    with unchanged(deployment):
        answers = {
            name: send(deployment, world, method, templated(path, name), templated(body, name))
            for name in (kind, f"missing_{kind}")
        }
    foreign, missing = (assert_problem(answer, 404, "not_found") for answer in answers.values())
    # Worded alike: nothing tells an existing id from a made-up one.
    assert foreign["detail"].replace(world.ids[kind], "ID") == missing["detail"].replace(
        world.ids[f"missing_{kind}"], "ID"
    )


# ---------------------------------------------------------------- admin-only


ADMIN_ONLY = [
    ("POST", "/v1/wallets/{mine}/freeze", None),
    ("POST", "/v1/wallets/{mine}/unfreeze", None),
    ("POST", "/v1/wallets/{wallet}/freeze", None),
    ("POST", "/v1/wallets/{missing_wallet}/freeze", None),  # 403 too: no existence leaks here either
    ("POST", "/v1/wallets", {"currency": "EUR", "ownerId": "{stranger}"}),
    ("POST", "/v1/wallets", {"currency": "SEK", "openingBalance": 100}),
    ("POST", "/v1/wallets", {"currency": "SEK", "ownerId": "{stranger}", "openingBalance": 1}),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY, ids=[f"{m} {p} {b}" for m, p, b in ADMIN_ONLY])
def test_admin_only_requests_without_the_scope_are_403(deployment, world, method, path, body):
    with unchanged(deployment):
        assert_problem(send(deployment, world, method, path, body), 403, "forbidden")


# ---------------------------------------------------------------- amounts

BAD_NUMBERS = [
    "1.5", "1.0", "1e3", '"100"', "10000000000000000", str(2**63), "1e309", "-1e309", "NaN", "Infinity",
    "-0", "-0.0", "0", "-1", "true", "false", "null", "[1]", '{"$gt": 0}',
]  # fmt: skip
NUMBER_FIELDS = {
    "deposit": ("POST", "/v1/wallets/{mine}/deposits", {"amount": "@"}, "owner"),
    "withdrawal": ("POST", "/v1/wallets/{mine}/withdrawals", {"amount": "@"}, "owner"),
    "hold": ("POST", "/v1/wallets/{mine}/reservations", {"amount": "@"}, "owner"),
    "hold-ttl": ("POST", "/v1/wallets/{mine}/reservations", {"amount": 1, "ttlSeconds": "@"}, "owner"),
    "transfer": ("POST", "/v1/transfers", {"fromWalletId": "{mine}", "toWalletId": "{wallet}", "amount": "@"}, "owner"),
    "capture": ("POST", "/v1/reservations/{hold}/capture", {"amount": "@"}, "owner"),
    "opening": ("POST", "/v1/wallets", {"currency": "NOK", "ownerId": "{stranger}", "openingBalance": "@"}, "admin"),
}
# Valid there: capture's amount may be null (the whole hold); a wallet may open with 0 (and -0 is 0).
VALID = {("capture", "null"), ("opening", "0"), ("opening", "-0")}
NUMBER_CASES = [(field, literal) for field in NUMBER_FIELDS for literal in BAD_NUMBERS if (field, literal) not in VALID]


@pytest.mark.parametrize(("field", "literal"), NUMBER_CASES)
def test_amounts_that_are_not_integers_in_range_are_422(deployment, world, field, literal):
    method, path, body, who = NUMBER_FIELDS[field]
    name = next(key for key, value in body.items() if value == "@")
    raw = json.dumps(world.fill(body)).replace('"@"', literal).encode()
    with unchanged(deployment):
        problem = assert_problem(send(deployment, world, method, path, who=who, data=raw), 422, "validation_error")
    assert [error["field"].split(".")[0] for error in problem["errors"]] == [name] * len(problem["errors"]), problem


# ---------------------------------------------------------------- MongoDB operators

OPERATORS = {"gt": {"$gt": ""}, "ne": {"$ne": None}}
DETAILS = ("referenceType", "referenceId", "metadata.note")
BODIES_WITH_STRINGS = {  # every body, a valid one, and each of its string fields (dotted: inside metadata)
    "/v1/wallets": ({"currency": "DKK"}, ("currency", "ownerId", "metadata.note")),
    "/v1/wallets/{mine}/deposits": ({"amount": 1}, DETAILS),
    "/v1/wallets/{mine}/withdrawals": ({"amount": 1}, DETAILS),
    "/v1/wallets/{mine}/reservations": (
        {"amount": 1, "onExpiry": "capture", "captureTo": {"account": "@revenue"}},
        ("onExpiry", "captureTo.account", *DETAILS),
    ),
    "/v1/transfers": (
        {"fromWalletId": "{mine}", "toWalletId": "{wallet}", "amount": 1},
        ("fromWalletId", "toWalletId", *DETAILS),
    ),
    "/v1/reservations/{hold}/capture": ({}, DETAILS),
    "/v1/reservations/{hold}/release": ({}, DETAILS),
    "/v1/reservations/{hold}/increments": ({"amount": 1}, DETAILS),
}
STRING_FIELDS = [(path, field) for path, (_, fields) in BODIES_WITH_STRINGS.items() for field in fields]


def with_value(body: dict, dotted: str, value: object) -> dict:
    """`body` with `value` at a dotted field (metadata.note is a key of the metadata object)."""
    head, _, rest = dotted.partition(".")
    return body | {head: with_value(body.get(head) or {}, rest, value) if rest else value}


@pytest.mark.parametrize("operator", list(OPERATORS))
@pytest.mark.parametrize(("path", "field"), STRING_FIELDS)
def test_operator_objects_in_string_fields_are_422(deployment, world, path, field, operator):
    body = with_value(BODIES_WITH_STRINGS[path][0], field, OPERATORS[operator])
    with unchanged(deployment):
        problem = assert_problem(send(deployment, world, "POST", path, body), 422, "validation_error")
    assert {error["field"].split(".")[0] for error in problem["errors"]} == {field.split(".")[0]}, problem


@pytest.mark.parametrize("path", list(BODIES_WITH_STRINGS))
def test_operators_as_metadata_keys_are_422(deployment, world, path):
    body = with_value(BODIES_WITH_STRINGS[path][0], "metadata", {"$where": "sleep(1000)", "a.b": 1})
    with unchanged(deployment):
        problem = assert_problem(send(deployment, world, "POST", path, body), 422, "validation_error")
    assert {error["field"].split(".")[0] for error in problem["errors"]} == {"metadata"}, problem


OPERATOR_TEXT = quote(json.dumps({"$gt": ""}))
QUERY_PROBES = [  # (path with query, status, code); an operator in a query string is only ever text
    (f"/v1/wallets/{{mine}}/transactions?cursor={OPERATOR_TEXT}", 400, "invalid_cursor"),
    (f"/v1/wallets/{{mine}}/transactions?limit={OPERATOR_TEXT}", 422, "validation_error"),
    (f"/v1/wallets/{{mine}}/transactions?type={OPERATOR_TEXT}", 422, "validation_error"),
    (f"/v1/wallets/{{mine}}/reservations?status={quote(json.dumps({'$ne': None}))}", 422, "validation_error"),
    (f"/v1/wallets/{{mine}}/reservations?cursor={quote(json.dumps({'$ne': None}))}", 400, "invalid_cursor"),
    ("/v1/wallets/{mine}/reservations?limit=%7B%22%24gt%22%3A0%7D", 422, "validation_error"),
    (f"/v1/wallets/{OPERATOR_TEXT}", 404, "not_found"),  # the quote is no route's character
    (f"/v1/wallets/{OPERATOR_TEXT}/transactions", 404, "not_found"),
    (f"/v1/reservations/{quote(json.dumps({'$ne': None}))}", 404, "not_found"),
    ("/v1/wallets/%5B%24ne%5D", 422, "validation_error"),  # [$ne]: a route's characters, not an id
    ("/v1/reservations/%5B%24gt%5D=", 422, "validation_error"),
]


@pytest.mark.parametrize(("path", "status", "code"), QUERY_PROBES)
def test_operators_in_query_strings_and_path_ids_are_refused(deployment, world, path, status, code):
    with unchanged(deployment):
        assert_problem(send(deployment, world, "GET", path), status, code)


@pytest.mark.parametrize("query", ["status[$ne]=HELD", "limit[$gt]=0", "cursor[$gt]=", "type[$in]=DEPOSIT"])
def test_bracketed_operators_are_unknown_parameters_and_change_nothing(deployment, world, query):
    listing = "reservations" if query.startswith("status") else "transactions"
    plain = ok(send(deployment, world, "GET", f"/v1/wallets/{{mine}}/{listing}"), 200)
    with unchanged(deployment):
        assert ok(send(deployment, world, "GET", f"/v1/wallets/{{mine}}/{listing}?{query}"), 200) == plain


# ---------------------------------------------------------------- bodies

OVERSIZED = json.dumps({"amount": 1, "metadata": {"pad": "x" * (16 * 1024)}}).encode()
BODIES = [  # (route, raw body, content type, who, status, code)
    ("/v1/wallets/{mine}/deposits", OVERSIZED, "application/json", "owner", 413, "payload_too_large"),
    ("/v1/wallets", OVERSIZED, "application/json", "owner", 413, "payload_too_large"),
    ("/v1/wallets/{mine}/freeze", OVERSIZED, "application/json", "admin", 413, "payload_too_large"),
    ("/v1/wallets/{mine}/deposits", b"{not json", "application/json", "owner", 400, "malformed_json"),
    ("/v1/wallets/{mine}/deposits", b'{"amount": 1', "application/json", "owner", 400, "malformed_json"),
    ("/v1/wallets/{mine}/freeze", b"{not json", "application/json", "admin", 400, "malformed_json"),
    ("/v1/wallets/{mine}/deposits", b'{"amount": 1, "amount": 2}', "application/json", "owner", 400, "malformed_json"),
    ("/v1/wallets/{mine}/deposits", b'{"amount": 1, "metadata": {"a": 1, "a": 1}}', "application/json", "owner",
     400, "malformed_json"),
    ("/v1/wallets", b'{"currency": "USD", "currency": "EUR"}', "application/json", "owner", 400, "malformed_json"),
    ("/v1/wallets/{mine}/deposits", b'{"amount": 1, "referenceId": "\xff\xfe"}', "application/json", "owner",
     400, "malformed_json"),  # not UTF-8: reaches the function base64-encoded, as from API Gateway
    ("/v1/wallets/{mine}/deposits", b'{"amount": 1}', "text/plain", "owner", 415, "unsupported_media_type"),
    ("/v1/wallets/{mine}/deposits", b"amount=1", "application/x-www-form-urlencoded", "owner",
     415, "unsupported_media_type"),
    ("/v1/wallets/{mine}/deposits", b'<amount>1</amount>', "application/xml", "owner", 415, "unsupported_media_type"),
    ("/v1/wallets/{mine}/deposits", b'{"amount": 1}', "", "owner", 415, "unsupported_media_type"),
    ("/v1/wallets/{mine}/deposits", b"[1, 2]", "application/json", "owner", 422, "validation_error"),
    ("/v1/wallets/{mine}/deposits", b'"amount"', "application/json", "owner", 422, "validation_error"),
    ("/v1/wallets/{mine}/deposits", b'{"amount": 1, "ammount": 1}', "application/json", "owner",
     422, "validation_error"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "raw", "content_type", "who", "status", "code"), BODIES)
def test_bad_bodies_are_refused_before_anything_moves(deployment, world, path, raw, content_type, who, status, code):
    headers = {"content-type": content_type}
    with unchanged(deployment):
        assert_problem(send(deployment, world, "POST", path, who=who, data=raw, headers=headers), status, code)


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/nowhere"), ("DELETE", "/v1/wallets/{mine}")])
def test_no_route_is_the_gateways_404(deployment, world, method, path):
    with unchanged(deployment):
        status, _, body = send(deployment, world, method, path)
    assert (status, body) == (404, {"message": "Not Found"})


# ---------------------------------------------------------------- cursors


def reencoded(cursor: str, change) -> str:
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    return base64.urlsafe_b64encode(change(text).encode()).decode().rstrip("=")


def position(value: str):
    return lambda text: text.rpartition("|")[0] + "|" + value


CURSORS = {  # name -> (listing, cursor from the world's real ones)
    "garbage": ("transactions", lambda world: "garbage"),
    "not-base64": ("transactions", lambda world: "%%%%"),
    "another-owners": ("transactions", lambda world: world.cursors["theirs"]),
    "another-listing": ("reservations", lambda world: world.cursors["transactions"]),
    "another-filter": ("transactions", lambda world: world.cursors["deposits"]),
    "another-wallet": (
        "transactions",
        lambda world: reencoded(
            world.cursors["transactions"], lambda t: t.replace(world.ids["mine"], world.ids["wallet"])
        ),
    ),
    "position-not-a-number": ("transactions", lambda world: reencoded(world.cursors["transactions"], position("x"))),
    "position-negative": ("transactions", lambda world: reencoded(world.cursors["transactions"], position("-1"))),
    "position-empty": ("transactions", lambda world: reencoded(world.cursors["transactions"], position(""))),
    "position-superscript-digit": (
        "transactions",
        lambda world: reencoded(world.cursors["transactions"], position("²")),
    ),
    "position-past-64-bits": (
        "transactions",
        lambda world: reencoded(world.cursors["transactions"], position("9" * 40)),
    ),
    "position-not-an-id": ("reservations", lambda world: reencoded(world.cursors["reservations"], position("f" * 23))),
    "position-operator": (
        "reservations",
        lambda world: reencoded(world.cursors["reservations"], position(json.dumps({"$gt": ""}))),
    ),
}


@pytest.mark.parametrize("name", CURSORS)
def test_invalid_and_tampered_cursors_are_400(deployment, world, name):
    listing, make = CURSORS[name]
    cursor = quote(make(world))
    with unchanged(deployment):
        assert_problem(
            send(deployment, world, "GET", f"/v1/wallets/{{mine}}/{listing}?cursor={cursor}"), 400, "invalid_cursor"
        )


def test_a_cursor_past_its_documented_length_is_422(deployment, world):
    with unchanged(deployment):
        answer = send(deployment, world, "GET", f"/v1/wallets/{{mine}}/transactions?cursor={'A' * 201}")
        assert_problem(answer, 422, "validation_error")


# ---------------------------------------------------------------- Idempotency-Key

BAD_KEYS = {  # name -> (header value or None for no header, expected code)
    "missing": (None, "missing_idempotency_key"),
    "too-long": ("k" * 256, "invalid_idempotency_key"),
    "space": ("has space", "invalid_idempotency_key"),
    "non-ascii": ("clé", "invalid_idempotency_key"),
    "tab": ("a\tb", "invalid_idempotency_key"),
    "delete": ("a\x7fb", "invalid_idempotency_key"),
    "operator": ('{"$gt": ""}', "invalid_idempotency_key"),
}
KEY_ROUTES = [  # every money move needs one; anywhere else a malformed one is still refused
    ("POST", "/v1/wallets/{mine}/deposits", {"amount": 1}, "owner", True),
    ("POST", "/v1/transfers", {"fromWalletId": "{mine}", "toWalletId": "{wallet}", "amount": 1}, "owner", True),
    ("POST", "/v1/reservations/{hold}/release", None, "owner", True),
    ("POST", "/v1/wallets", {"currency": "CZK"}, "owner", False),
    ("GET", "/v1/wallets/{mine}", None, "owner", False),
    ("POST", "/v1/wallets/{mine}/freeze", None, "admin", False),
]


@pytest.mark.parametrize("name", list(BAD_KEYS))
def test_bad_idempotency_keys_are_400(deployment, world, name):
    value, code = BAD_KEYS[name]
    with unchanged(deployment):
        for method, path, body, who, needs_key in KEY_ROUTES:
            if value is None and not needs_key:
                continue  # optional there
            headers = {} if value is None else {"idempotency-key": value}
            answer = send(deployment, world, method, path, body, who=who, key=None, headers=headers)
            assert_problem(answer, 400, code)


def test_a_key_reused_with_another_body_is_422_and_moves_nothing(deployment, world):
    path = "/v1/wallets/{mine}/deposits"
    ok(send(deployment, world, "POST", path, {"amount": 3}, key="probe-reused"))
    with unchanged(deployment):
        replay = send(deployment, world, "POST", path, {"amount": 3}, key="probe-reused")
        assert (replay[0], replay[1]["Idempotent-Replayed"]) == (201, "true")
        for other in ({"amount": 4}, {"amount": 3, "referenceId": "x"}):
            assert_problem(
                send(deployment, world, "POST", path, other, key="probe-reused"), 422, "idempotency_key_mismatch"
            )
        other_route = send(
            deployment, world, "POST", "/v1/wallets/{mine}/withdrawals", {"amount": 3}, key="probe-reused"
        )
        assert_problem(other_route, 422, "idempotency_key_mismatch")


# ---------------------------------------------------------------- refusals that depend on state

STATE_REFUSALS = [  # (route, body, field): what no schema can say, and tests/e2e/workload/fuzz_hooks.py relies on
    ("/v1/transfers", {"fromWalletId": "{mine}", "toWalletId": "{mine}", "amount": 1}, "toWalletId"),
    ("/v1/transfers", {"fromWalletId": "{mine}", "toWalletId": "{euros}", "amount": 1}, "toWalletId"),
    ("/v1/reservations/{hold}/capture", {"amount": 501}, "amount"),
]


@pytest.mark.parametrize(("path", "body", "field"), STATE_REFUSALS)
def test_state_dependent_refusals_are_422_on_the_field(deployment, world, path, body, field):
    with unchanged(deployment):
        problem = assert_problem(send(deployment, world, "POST", path, body), 422, "validation_error")
    assert [error["field"] for error in problem["errors"]] == [field]
