"""The HTTP contract, line by line, through the real Lambda handlers invoked in-process."""

from __future__ import annotations

import json
import time

import pytest

from tests.lambda_harness import LambdaContext, http_event, invoke
from tests.ledger_checks import assert_ledger_consistent, snapshot
from wallet_lambda import runtime
from wallet_lambda.schemas import METADATA_VALUE_RULE

ADMIN = ("wallet:admin",)
MISSING = "0123456789abcdef01234567"


def create_wallet(owner="rider-42", currency="USD", opening=0):
    answer = invoke(
        "create_wallet",
        http_event(
            "POST",
            "/v1/wallets",
            body={"currency": currency, "ownerId": owner, "openingBalance": opening},
            sub="ops",
            scopes=ADMIN,
        ),
    )
    assert answer.status == 201, answer
    return answer.body["wallet"]["id"]


def deposit(wallet_id, amount, key, **options):
    return invoke(
        "deposit",
        http_event(
            "POST",
            "/v1/wallets/{walletId}/deposits",
            {"walletId": wallet_id},
            body={"amount": amount},
            idempotency_key=key,
            **options,
        ),
    )


def hold(wallet_id, amount, key, **options):
    return invoke(
        "create_reservation",
        http_event(
            "POST",
            "/v1/wallets/{walletId}/reservations",
            {"walletId": wallet_id},
            body={"amount": amount},
            idempotency_key=key,
            **options,
        ),
    )


@pytest.fixture
def wallet_id(lambda_env):
    return create_wallet(opening=10_000)


@pytest.fixture
def database(lambda_env, mongo_client):
    return mongo_client[lambda_env]


# ---------------------------------------------------------------- success shapes


def test_money_response_is_camel_case_with_entries_and_wallet(wallet_id):
    answer = deposit(wallet_id, 2_500, "d-1")
    assert answer.status == 201
    assert "Location" not in answer.headers  # a deposit creates entries, no resource of its own
    assert answer.headers["Idempotent-Replayed"] == "false"
    (entry,) = answer.body["entries"]
    assert {"id", "walletId", "type", "amount", "balanceAfter", "heldAfter", "operationId", "createdAt"} <= set(entry)
    assert entry["amount"] == 2_500
    assert isinstance(entry["amount"], int)
    assert answer.body["wallet"]["balance"] == 12_500
    assert answer.body["wallet"]["available"] == 12_500
    assert "replayed" not in answer.body


def test_created_resources_have_locations(lambda_env, wallet_id):
    other = create_wallet(owner="driver-7")
    created = invoke("create_wallet", http_event("POST", "/v1/wallets", body={"currency": "EUR"}))
    assert created.status == 201
    assert created.headers["Location"] == f"/v1/wallets/{created.body['wallet']['id']}"
    assert created.body["wallet"]["ownerId"] == "rider-42"
    withdrawal = invoke(
        "withdraw",
        http_event(
            "POST",
            "/v1/wallets/{walletId}/withdrawals",
            {"walletId": wallet_id},
            body={"amount": 100},
            idempotency_key="w",
        ),
    )
    assert (withdrawal.status, "Location" in withdrawal.headers) == (201, False)
    transfer = invoke(
        "transfer",
        http_event(
            "POST",
            "/v1/transfers",
            body={"fromWalletId": wallet_id, "toWalletId": other, "amount": 100},
            idempotency_key="t",
        ),
    )
    assert (transfer.status, "Location" in transfer.headers) == (201, False)
    assert transfer.body["counterpartyWallet"] is None  # the driver's balance is not the rider's business
    reservation = hold(wallet_id, 300, "h")
    reservation_id = reservation.body["reservation"]["id"]
    assert (reservation.status, reservation.headers["Location"]) == (201, f"/v1/reservations/{reservation_id}")


def test_capture_release_and_reads_are_200(wallet_id, database):
    first = hold(wallet_id, 1_000, "h1").body["reservation"]["id"]
    second = hold(wallet_id, 500, "h2").body["reservation"]["id"]
    captured = invoke(
        "capture_reservation",
        http_event(
            "POST",
            "/v1/reservations/{reservationId}/capture",
            {"reservationId": first},
            body={"amount": 600},
            idempotency_key="c1",
        ),
    )
    assert captured.status == 200
    assert [entry["type"] for entry in captured.body["entries"]] == ["CAPTURE", "RELEASE"]
    released = invoke(
        "release_reservation",
        http_event("POST", "/v1/reservations/{reservationId}/release", {"reservationId": second}, idempotency_key="r1"),
    )
    assert (released.status, released.body["reservation"]["status"]) == (200, "RELEASED")
    read = invoke("get_reservation", http_event("GET", "/v1/reservations/{reservationId}", {"reservationId": first}))
    assert (read.status, read.body["capturedAmount"], read.body["releasedAmount"]) == (200, 600, 400)
    wallet = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": wallet_id}))
    assert (wallet.status, wallet.body["balance"], wallet.body["held"]) == (200, 9_400, 0)
    assert_ledger_consistent(database)


def test_lists_use_keyset_pagination(wallet_id):
    for index in range(5):
        deposit(wallet_id, index + 1, f"k{index}")
    seen, cursor = [], None
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = invoke(
            "list_transactions",
            http_event("GET", "/v1/wallets/{walletId}/transactions", {"walletId": wallet_id}, query=query),
        )
        assert page.status == 200
        assert set(page.body) == {"items", "nextCursor"}
        seen += [entry["sequence"] for entry in page.body["items"]]
        cursor = page.body["nextCursor"]
        if cursor is None:
            break
    assert seen == [6, 5, 4, 3, 2, 1]
    deposits = invoke(
        "list_transactions",
        http_event(
            "GET",
            "/v1/wallets/{walletId}/transactions",
            {"walletId": wallet_id},
            query={"type": "DEPOSIT", "limit": "200"},
        ),
    )
    assert len(deposits.body["items"]) == 6
    hold(wallet_id, 10, "h")
    held = invoke(
        "list_reservations",
        http_event("GET", "/v1/wallets/{walletId}/reservations", {"walletId": wallet_id}, query={"status": "HELD"}),
    )
    assert (held.status, len(held.body["items"]), held.body["nextCursor"]) == (200, 1, None)


@pytest.mark.parametrize("cursor", ["garbage", "dHJhbnNhY3Rpb25zOng6fDM"])
def test_invalid_cursor_is_400(wallet_id, cursor):
    answer = invoke(
        "list_transactions",
        http_event("GET", "/v1/wallets/{walletId}/transactions", {"walletId": wallet_id}, query={"cursor": cursor}),
    )
    assert (answer.status, answer.problem_code) == (400, "invalid_cursor")


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "201"}, {"limit": "x"}, {"type": "REFUND"}])
def test_bad_query_parameters_are_422(wallet_id, query):
    answer = invoke(
        "list_transactions",
        http_event("GET", "/v1/wallets/{walletId}/transactions", {"walletId": wallet_id}, query=query),
    )
    assert (answer.status, answer.problem_code) == (422, "validation_error")


# ---------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    "raw_amount",
    [
        "1.5",
        "1e3",
        "NaN",
        "Infinity",
        '"100"',
        "true",
        "null",
        "0",
        "-1",
        "-0",
        "-0.0",
        "1000000000000001",
        '{"$gt": 0}',
    ],
)
def test_non_integer_or_out_of_range_amounts_are_422(wallet_id, database, raw_amount):
    before = snapshot(database)
    event = http_event(
        "POST",
        "/v1/wallets/{walletId}/deposits",
        {"walletId": wallet_id},
        raw_body=f'{{"amount": {raw_amount}}}',
        idempotency_key="k",
    )
    answer = invoke("deposit", event)
    assert (answer.status, answer.problem_code) == (422, "validation_error")
    assert [error["field"] for error in answer.body["errors"]] == ["amount"]
    assert snapshot(database) == before


def test_unknown_fields_and_operator_objects_are_422(wallet_id, database):
    before = snapshot(database)
    for body in (
        {"amount": 5, "ammount": 5},
        {"amount": 5, "referenceId": {"$gt": ""}},
        {"amount": 5, "metadata": {"a": {"$ne": 1}}},
    ):
        event = http_event(
            "POST", "/v1/wallets/{walletId}/deposits", {"walletId": wallet_id}, body=body, idempotency_key="k"
        )
        answer = invoke("deposit", event)
        assert (answer.status, answer.problem_code) == (422, "validation_error"), body
    assert snapshot(database) == before


def test_a_bad_metadata_value_is_one_error_in_our_words(wallet_id, database):
    before = snapshot(database)
    for value in ("x" * 513, {"a": 1}, [1], 1.5, 2**63):
        body = {"amount": 5, "metadata": {"note": value}}
        event = http_event(
            "POST", "/v1/wallets/{walletId}/deposits", {"walletId": wallet_id}, body=body, idempotency_key="k"
        )
        answer = invoke("deposit", event)
        assert (answer.status, answer.problem_code) == (422, "validation_error"), value
        assert answer.body["errors"] == [{"field": "metadata.note", "message": METADATA_VALUE_RULE}], value
    assert snapshot(database) == before


# ---------------------------------------------------------------- identity


def test_another_owners_resources_are_404(wallet_id, database):
    reservation_id = hold(wallet_id, 100, "h").body["reservation"]["id"]
    before = snapshot(database)
    calls = [
        ("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": wallet_id}, sub="mallory")),
        (
            "deposit",
            http_event(
                "POST",
                "/v1/wallets/{walletId}/deposits",
                {"walletId": wallet_id},
                body={"amount": 1},
                idempotency_key="m",
                sub="mallory",
            ),
        ),
        (
            "withdraw",
            http_event(
                "POST",
                "/v1/wallets/{walletId}/withdrawals",
                {"walletId": wallet_id},
                body={"amount": 1},
                idempotency_key="m",
                sub="mallory",
            ),
        ),
        (
            "list_transactions",
            http_event("GET", "/v1/wallets/{walletId}/transactions", {"walletId": wallet_id}, sub="mallory"),
        ),
        (
            "get_reservation",
            http_event("GET", "/v1/reservations/{reservationId}", {"reservationId": reservation_id}, sub="mallory"),
        ),
        (
            "capture_reservation",
            http_event(
                "POST",
                "/v1/reservations/{reservationId}/capture",
                {"reservationId": reservation_id},
                idempotency_key="m",
                sub="mallory",
            ),
        ),
    ]
    for function, event in calls:
        answer = invoke(function, event)
        assert (answer.status, answer.problem_code) == (404, "not_found"), function
    unknown = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": MISSING}))
    assert unknown.body["detail"].replace(MISSING, "ID") == invoke(*calls[0]).body["detail"].replace(wallet_id, "ID")
    assert snapshot(database) == before


def test_a_split_capture_over_http(wallet_id, database):
    """The rider's hold pays the driver's wallet and @revenue; bad splits are 422 and move nothing."""
    driver = invoke("create_wallet", http_event("POST", "/v1/wallets", body={"currency": "USD"}, sub="driver-7"))
    driver_id = driver.body["wallet"]["id"]
    held = hold(wallet_id, 1_000, "split-h").body["reservation"]["id"]
    route = "/v1/reservations/{reservationId}/capture"

    def capture(body: dict, key: str):
        return invoke(
            "capture_reservation", http_event("POST", route, {"reservationId": held}, body=body, idempotency_key=key)
        )

    before = snapshot(database)
    for splits in (
        [{"walletId": driver_id, "amount": 600}],  # adds up to 600, not 800
        [{"walletId": driver_id, "account": "@revenue", "amount": 800}],
        [{"account": "@nowhere", "amount": 800}],
        [{"walletId": "0123456789abcdef01234567", "amount": 800}],
    ):
        refused = capture({"amount": 800, "splits": splits}, "split-bad")
        assert (refused.status, refused.problem_code) == (422, "validation_error"), splits
    assert snapshot(database) == before
    splits = [{"walletId": driver_id, "amount": 700}, {"account": "@revenue", "amount": 100}]
    captured = capture({"amount": 800, "splits": splits}, "split-ok")
    assert captured.status == 200
    assert [entry["walletId"] for entry in captured.body["entries"]] == [
        wallet_id,
        wallet_id,
    ]  # the driver's is not shown
    assert captured.body["accountEntries"][0]["account"] == "@revenue"
    assert captured.body["reservation"]["captures"][0]["splits"] == [
        {"walletId": driver_id, "account": None, "amount": 700},
        {"walletId": None, "account": "@revenue", "amount": 100},
    ]
    read = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": driver_id}, sub="driver-7"))
    assert read.body["balance"] == 700
    assert_ledger_consistent(database)


def test_refunds_are_for_admins_and_come_back_from_the_capture(wallet_id, database):
    held = hold(wallet_id, 1_000, "refund-h").body["reservation"]["id"]
    route = "/v1/reservations/{reservationId}/capture"
    invoke("capture_reservation", http_event("POST", route, {"reservationId": held}, body={}, idempotency_key="rc"))
    refunds = "/v1/reservations/{reservationId}/refunds"
    body = {"amount": 250, "reason": "detour"}
    before = snapshot(database)
    mine = invoke(
        "refund_reservation", http_event("POST", refunds, {"reservationId": held}, body=body, idempotency_key="r1")
    )
    assert (mine.status, mine.problem_code) == (403, "forbidden")  # a payer never pulls money back by itself
    assert snapshot(database) == before

    def refund(body: dict, key: str):
        event = http_event(
            "POST", refunds, {"reservationId": held}, body=body, idempotency_key=key, sub="ops", scopes=ADMIN
        )
        return invoke("refund_reservation", event)

    done = refund(body, "r1")
    assert (done.status, done.headers["Idempotent-Replayed"]) == (201, "false")
    assert (done.body["wallet"]["balance"], done.body["reservation"]["refundedAmount"]) == (9_250, 250)
    replayed = refund(body, "r1")
    assert (replayed.status, replayed.headers["Idempotent-Replayed"], replayed.body) == (201, "true", done.body)
    too_much = refund({"amount": 751}, "r2")
    assert (too_much.status, too_much.problem_code) == (409, "invalid_state")
    unknown_source = refund({"amount": 5, "from": [{"account": "@tips", "amount": 5}]}, "r3")
    assert (unknown_source.status, unknown_source.problem_code) == (422, "validation_error")
    assert_ledger_consistent(database)


def test_platform_accounts_are_for_admins(wallet_id, database):
    for function, event in (
        ("open_account", http_event("POST", "/v1/accounts", body={"name": "@tips", "currency": "USD"})),
        ("get_account", http_event("GET", "/v1/accounts/{name}", {"name": "@revenue"}, query={"currency": "USD"})),
        (
            "list_account_transactions",
            http_event("GET", "/v1/accounts/{name}/transactions", {"name": "@funding"}, query={"currency": "USD"}),
        ),
    ):
        assert invoke(function, event).status == 403, function
    admin = {"sub": "ops", "scopes": ADMIN}
    read = http_event("GET", "/v1/accounts/{name}", {"name": "@funding"}, query={"currency": "USD"}, **admin)
    assert invoke("get_account", read).body == {
        "name": "@funding",
        "currency": "USD",
        "balance": -10_000,
        "builtIn": True,
    }
    for name, currency in (("funding", "USD"), ("@funding", "usd"), ("@Funding", "USD")):
        bad = http_event("GET", "/v1/accounts/{name}", {"name": name}, query={"currency": currency}, **admin)
        assert invoke("get_account", bad).status == 422, (name, currency)
    unknown = http_event("GET", "/v1/accounts/{name}", {"name": "@tips"}, query={"currency": "USD"}, **admin)
    assert invoke("get_account", unknown).status == 404
    opened = invoke(
        "open_account", http_event("POST", "/v1/accounts", body={"name": "@tips", "currency": "USD"}, **admin)
    )
    assert (opened.status, opened.headers["Location"]) == (201, "/v1/accounts/@tips")
    assert invoke("get_account", unknown).body["balance"] == 0


def test_admin_may_act_on_any_wallet(wallet_id):
    answer = deposit(wallet_id, 5, "admin-1", sub="ops", scopes=ADMIN)
    assert (answer.status, answer.body["wallet"]["ownerId"]) == (201, "rider-42")


def test_only_admins_freeze_create_for_others_or_open_with_money(wallet_id, database):
    before = snapshot(database)
    for function in ("freeze_wallet", "unfreeze_wallet"):
        answer = invoke(
            function, http_event("POST", f"/v1/wallets/{{walletId}}/{function.split('_')[0]}", {"walletId": wallet_id})
        )
        assert (answer.status, answer.problem_code) == (403, "forbidden")
    for body in ({"currency": "EUR", "ownerId": "someone-else"}, {"currency": "EUR", "openingBalance": 100}):
        answer = invoke("create_wallet", http_event("POST", "/v1/wallets", body=body))
        assert (answer.status, answer.problem_code) == (403, "forbidden")
    assert snapshot(database) == before
    frozen = invoke(
        "freeze_wallet",
        http_event("POST", "/v1/wallets/{walletId}/freeze", {"walletId": wallet_id}, sub="ops", scopes=ADMIN),
    )
    assert (frozen.status, frozen.body["status"]) == (200, "FROZEN")
    refused = invoke(
        "withdraw",
        http_event(
            "POST",
            "/v1/wallets/{walletId}/withdrawals",
            {"walletId": wallet_id},
            body={"amount": 1},
            idempotency_key="w",
        ),
    )
    assert (refused.status, refused.problem_code) == (409, "wallet_frozen")
    thawed = invoke(
        "unfreeze_wallet",
        http_event("POST", "/v1/wallets/{walletId}/unfreeze", {"walletId": wallet_id}, sub="ops", scopes=ADMIN),
    )
    assert (thawed.status, thawed.body["status"]) == (200, "ACTIVE")


def test_missing_token_is_401(wallet_id):
    answer = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": wallet_id}, sub=None))
    assert (answer.status, answer.problem_code) == (401, "unauthorized")


# ---------------------------------------------------------------- idempotency


@pytest.mark.parametrize("key", [None, "", "k" * 256, "has space", "ünï"])
def test_money_posts_need_a_well_formed_idempotency_key(wallet_id, database, key):
    before = snapshot(database)
    event = http_event(
        "POST", "/v1/wallets/{walletId}/deposits", {"walletId": wallet_id}, body={"amount": 5}, idempotency_key=key
    )
    answer = invoke("deposit", event)
    assert answer.status == 400
    assert answer.problem_code == ("missing_idempotency_key" if key is None else "invalid_idempotency_key")
    assert snapshot(database) == before


def test_replay_returns_the_original_status_and_body(wallet_id):
    first = deposit(wallet_id, 700, "same-key")
    deposit(wallet_id, 1, "another-key")
    again = deposit(wallet_id, 700, "same-key")
    assert (again.status, again.body) == (first.status, first.body)
    assert again.headers["Idempotent-Replayed"] == "true"
    reservation_id = hold(wallet_id, 100, "h").body["reservation"]["id"]
    event = http_event(
        "POST", "/v1/reservations/{reservationId}/capture", {"reservationId": reservation_id}, idempotency_key="cap"
    )
    captured, recaptured = invoke("capture_reservation", event), invoke("capture_reservation", event)
    assert (recaptured.status, recaptured.body, recaptured.headers["Idempotent-Replayed"]) == (
        200,
        captured.body,
        "true",
    )


def test_a_malformed_key_is_400_even_where_keys_are_optional(lambda_env, database):
    event = http_event("POST", "/v1/wallets", body={"currency": "USD"}, idempotency_key="has space")
    answer = invoke("create_wallet", event)
    assert (answer.status, answer.problem_code) == (400, "invalid_idempotency_key")
    assert database["wallets"].count_documents({}) == 0


def test_same_key_different_body_is_422(wallet_id, database):
    deposit(wallet_id, 700, "same-key")
    before = snapshot(database)
    answer = deposit(wallet_id, 701, "same-key")
    assert (answer.status, answer.problem_code) == (422, "idempotency_key_mismatch")
    assert snapshot(database) == before


# ---------------------------------------------------------------- errors


def test_conflict_codes(wallet_id, database):
    answer = invoke(
        "withdraw",
        http_event(
            "POST",
            "/v1/wallets/{walletId}/withdrawals",
            {"walletId": wallet_id},
            body={"amount": 10_001},
            idempotency_key="w",
        ),
    )
    assert (answer.status, answer.problem_code, answer.body["available"]) == (409, "insufficient_funds", 10_000)
    duplicate = invoke("create_wallet", http_event("POST", "/v1/wallets", body={"currency": "USD"}))
    assert (duplicate.status, duplicate.problem_code, duplicate.body["existingWalletId"]) == (
        409,
        "wallet_exists",
        wallet_id,
    )
    reservation_id = hold(wallet_id, 100, "h").body["reservation"]["id"]
    invoke(
        "release_reservation",
        http_event(
            "POST", "/v1/reservations/{reservationId}/release", {"reservationId": reservation_id}, idempotency_key="r"
        ),
    )
    again = invoke(
        "capture_reservation",
        http_event(
            "POST", "/v1/reservations/{reservationId}/capture", {"reservationId": reservation_id}, idempotency_key="c"
        ),
    )
    assert (again.status, again.problem_code) == (409, "invalid_state")


@pytest.mark.parametrize(
    ("raw_body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "malformed_json"),
        ('{"amount": 1, "amount": 2}', "application/json", 400, "malformed_json"),
        ('{"amount": 1}', "text/plain", 415, "unsupported_media_type"),
        ("amount=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ('{"amount": 1, "metadata": {"pad": "' + "x" * 16_400 + '"}}', "application/json", 413, "payload_too_large"),
        ("[1, 2]", "application/json", 422, "validation_error"),
    ],
)
def test_bad_bodies(wallet_id, database, raw_body, content_type, status, code):
    before = snapshot(database)
    event = http_event(
        "POST",
        "/v1/wallets/{walletId}/deposits",
        {"walletId": wallet_id},
        raw_body=raw_body,
        headers={"content-type": content_type},
        idempotency_key="k",
    )
    answer = invoke("deposit", event)
    assert (answer.status, answer.problem_code) == (status, code)
    assert "Traceback" not in json.dumps(answer.body)
    assert snapshot(database) == before


def test_database_unavailable_is_503_with_retry_after(lambda_env, monkeypatch):
    from wallet_lambda import runtime

    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=300")
    runtime.reset()
    short = LambdaContext(timeout_seconds=1)  # every database call is bounded by the time left
    answer = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": MISSING}), short)
    assert (answer.status, answer.problem_code, answer.headers["Retry-After"]) == (503, "database_unavailable", "1")
    health = invoke("health", http_event("GET", "/health", sub=None), short)
    assert (health.status, health.problem_code) == (503, "database_unavailable")
    assert "127.0.0.1:9" not in json.dumps(answer.body)


def test_unexpected_errors_are_a_bare_500(wallet_id, monkeypatch):
    from wallet_service import WalletService

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals mongodb://user:password@host")

    monkeypatch.setattr(WalletService, "get_wallet", broken)
    answer = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": wallet_id}))
    assert (answer.status, answer.problem_code) == (500, "internal_error")
    assert "secret" not in json.dumps(answer.body)


def test_health_needs_no_token(lambda_env):
    answer = invoke("health", http_event("GET", "/health", sub=None))
    assert (answer.status, answer.body) == (200, {"status": "ok"})


# ---------------------------------------------------------------- logs and metrics


def test_logs_carry_the_request_id_and_no_token_and_metrics_count_outcomes(wallet_id, capsys):
    capsys.readouterr()
    event = http_event(
        "POST", "/v1/wallets/{walletId}/deposits", {"walletId": wallet_id}, body={"amount": 5}, idempotency_key="k"
    )
    event["headers"]["authorization"] = "Bearer eyJhbGciOiJSUzI1NiJ9.secret-token-value"
    assert invoke("deposit", event).status == 201
    refused = http_event(
        "POST",
        "/v1/wallets/{walletId}/withdrawals",
        {"walletId": wallet_id},
        body={"amount": 10**9},
        idempotency_key="w",
    )
    assert invoke("withdraw", refused).status == 409
    output = capsys.readouterr().out
    assert "secret-token-value" not in output
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    emf = [document for document in documents if "_aws" in document]
    assert any(document.get("Succeeded") == [1.0] or document.get("Succeeded") == 1.0 for document in emf), emf
    assert any(document.get("operation") == "Withdraw" and "Rejected" in document for document in emf), emf


def test_a_kept_refusal_says_whether_it_is_a_replay(wallet_id):
    """A keyed refusal kept under its key carries Idempotent-Replayed as a movement's answer does:
    false the first time, true when the key's retry gets it again; an unkeyed one has none."""
    route = "/v1/wallets/{walletId}/withdrawals"
    too_much = {"amount": 10**9}
    first, again = (
        invoke("withdraw", http_event("POST", route, {"walletId": wallet_id}, body=too_much, idempotency_key="big"))
        for _ in range(2)
    )
    assert (first.status, first.body["code"]) == (409, "insufficient_funds")
    assert first.headers["Idempotent-Replayed"] == "false"
    assert (again.status, again.body, again.headers["Idempotent-Replayed"]) == (409, first.body, "true")
    unkeyed = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": "0" * 24}))
    assert (unkeyed.status, "Idempotent-Replayed" in unkeyed.headers) == (404, False)


def test_the_balance_at_a_time_over_http(wallet_id):
    route = "/v1/wallets/{walletId}/balance"
    now = invoke("get_balance", http_event("GET", route, {"walletId": wallet_id}, query={"at": "2099-01-01T00:00:00Z"}))
    assert (now.status, now.body["balance"], now.body["sequence"]) == (200, 10_000, 1)  # to come: the balance now
    for bad in (
        "yesterday",
        "2026-11-30T12:00:00",
        "",
        "0.5",
        "2026-02-30T12:00:00Z",
        "0001-01-01T00:00:25+12:56",
        "9999-12-31T23:59:59-01:00",
    ):  # no time, no offset, no such day, before year 1 or after 9999 once in UTC
        answer = invoke("get_balance", http_event("GET", route, {"walletId": wallet_id}, query={"at": bad}))
        assert (answer.status, answer.body["code"]) == (422, "validation_error"), (bad, answer.body)
        assert answer.body["errors"][0]["field"] == "at", answer.body
    # A + offset not URL-encoded arrives as a space: the message says so.
    spaced = {"at": "2026-11-30T12:00:00 01:00"}
    unencoded = invoke("get_balance", http_event("GET", route, {"walletId": wallet_id}, query=spaced))
    assert unencoded.status == 422
    assert "%2B" in unencoded.body["errors"][0]["message"], unencoded.body
    # No `at`: the balance now.
    current = invoke("get_balance", http_event("GET", route, {"walletId": wallet_id}))
    assert (current.status, current.body["balance"], current.body["sequence"]) == (200, 10_000, 1)
    past = invoke(
        "get_balance", http_event("GET", route, {"walletId": wallet_id}, query={"at": "2000-01-01T00:00:00+02:00"})
    )
    assert (past.status, past.body["balance"], past.body["sequence"]) == (200, 0, 0)
    other = http_event("GET", route, {"walletId": wallet_id}, query={"at": "2000-01-01T00:00:00Z"}, sub="mallory")
    assert invoke("get_balance", other).status == 404


# ---------------------------------------------------------------- holds that follow a ride

INCREMENTS = "/v1/reservations/{reservationId}/increments"
CAPTURE = "/v1/reservations/{reservationId}/capture"


def increment(reservation_id, body, key, **options):
    return invoke(
        "increment_reservation",
        http_event("POST", INCREMENTS, {"reservationId": reservation_id}, body=body, idempotency_key=key, **options),
    )


def capture(reservation_id, body, key, **options):
    return invoke(
        "capture_reservation",
        http_event("POST", CAPTURE, {"reservationId": reservation_id}, body=body, idempotency_key=key, **options),
    )


def hold_with(wallet_id, body, key, **options):
    return invoke(
        "create_reservation",
        http_event(
            "POST",
            "/v1/wallets/{walletId}/reservations",
            {"walletId": wallet_id},
            body=body,
            idempotency_key=key,
            **options,
        ),
    )


def test_an_increment_raises_an_open_hold_and_a_replay_answers_the_original(wallet_id, database):
    placed = hold(wallet_id, 1_000, "ride-h").body["reservation"]
    body = {"amount": 400, "ttlSeconds": 3_600, "referenceType": "detour", "referenceId": "ride_42"}
    raised = increment(placed["id"], body, "ride-detour")
    assert raised.status == 201, raised
    assert raised.headers["Location"] == f"/v1/reservations/{placed['id']}"
    assert raised.headers["Idempotent-Replayed"] == "false"
    (entry,) = raised.body["entries"]
    assert (entry["type"], entry["amount"], entry["reservationId"]) == ("HOLD", 400, placed["id"])
    assert (entry["referenceType"], entry["referenceId"]) == ("detour", "ride_42")
    assert raised.body["accountEntries"] == []
    reservation = raised.body["reservation"]
    assert (reservation["status"], reservation["amount"], reservation["heldAmount"]) == ("HELD", 1_400, 1_400)
    (step,) = reservation["increments"]
    assert (step["amount"], step["expiresAt"]) == (400, reservation["expiresAt"])
    assert reservation["expiresAt"] > placed["expiresAt"]  # 1 h from now, past the 30 min default
    wallet = raised.body["wallet"]
    assert (wallet["balance"], wallet["held"], wallet["available"]) == (10_000, 1_400, 8_600)

    again = increment(placed["id"], body, "ride-detour")
    assert (again.status, again.headers["Idempotent-Replayed"], again.body) == (201, "true", raised.body)
    assert (again.headers["Location"]) == raised.headers["Location"]
    other_body = increment(placed["id"], {**body, "amount": 401}, "ride-detour")
    assert (other_body.status, other_body.problem_code) == (422, "idempotency_key_mismatch")

    # Without ttlSeconds the expiry stays; the hold is raised again.
    kept = increment(placed["id"], {"amount": 100}, "ride-wait")
    assert kept.status == 201, kept
    assert (kept.body["reservation"]["expiresAt"], kept.body["reservation"]["amount"]) == (
        reservation["expiresAt"],
        1_500,
    )
    read = invoke(
        "get_reservation", http_event("GET", "/v1/reservations/{reservationId}", {"reservationId": placed["id"]})
    )
    assert [step["amount"] for step in read.body["increments"]] == [400, 100]
    assert_ledger_consistent(database)


@pytest.mark.parametrize("key", [None, "", "has space"])
def test_an_increment_needs_a_well_formed_idempotency_key(wallet_id, database, key):
    placed = hold(wallet_id, 100, "h").body["reservation"]["id"]
    before = snapshot(database)
    answer = increment(placed, {"amount": 5}, key)
    assert answer.status == 400
    assert answer.problem_code == ("missing_idempotency_key" if key is None else "invalid_idempotency_key")
    assert snapshot(database) == before


@pytest.mark.parametrize(
    ("raw_body", "field"),
    [
        ('{"amount": 0}', "amount"),
        ('{"amount": 1.5}', "amount"),
        ('{"amount": "100"}', "amount"),
        ("{}", "amount"),
        ('{"amount": 5, "ttlSeconds": 0}', "ttlSeconds"),
        ('{"amount": 5, "ttlSeconds": 604801}', "ttlSeconds"),
        ('{"amount": 5, "ttlSeconds": 60.0}', "ttlSeconds"),
        ('{"amount": 5, "ttlSeconds": true}', "ttlSeconds"),
        ('{"amount": 5, "referenceId": {"$gt": ""}}', "referenceId"),
        ('{"amount": 5, "expiresAt": "2026-12-01T00:00:00Z"}', "expiresAt"),
    ],
)
def test_bad_increments_are_422(wallet_id, database, raw_body, field):
    placed = hold(wallet_id, 100, "h").body["reservation"]["id"]
    before = snapshot(database)
    event = http_event("POST", INCREMENTS, {"reservationId": placed}, raw_body=raw_body, idempotency_key="bad")
    answer = invoke("increment_reservation", event)
    assert (answer.status, answer.problem_code) == (422, "validation_error")
    assert [error["field"] for error in answer.body["errors"]] == [field]
    assert snapshot(database) == before


def test_an_increment_may_not_take_a_hold_past_seven_days_after_it_was_placed(wallet_id, database):
    placed = hold(wallet_id, 100, "h").body["reservation"]["id"]
    time.sleep(0.01)  # the hold was placed at least a millisecond ago
    before = snapshot(database)
    answer = increment(placed, {"amount": 5, "ttlSeconds": 7 * 24 * 3600}, "too-long")
    assert (answer.status, answer.problem_code) == (422, "validation_error")
    assert [error["field"] for error in answer.body["errors"]] == ["ttlSeconds"]
    assert snapshot(database) == before
    assert increment(placed, {"amount": 5, "ttlSeconds": 6 * 24 * 3600}, "long-enough").status == 201


def test_increment_refusals(wallet_id, database):
    placed = hold(wallet_id, 1_000, "h").body["reservation"]["id"]
    poor = increment(placed, {"amount": 9_001}, "too-much")
    assert (poor.status, poor.problem_code) == (409, "insufficient_funds")
    assert (poor.body["available"], poor.body["requested"]) == (9_000, 9_001)
    assert deposit(wallet_id, 1, "top-up").status == 201
    later = increment(placed, {"amount": 9_001}, "too-much")  # a keyed refusal stays refused, even once it could pay
    assert (later.status, later.problem_code, later.body["available"]) == (409, "insufficient_funds", 9_000)
    assert increment(placed, {"amount": 9_001}, "try-again").status == 201  # the first raise
    assert deposit(wallet_id, 100, "more").status == 201

    mallory = increment(placed, {"amount": 1}, "m", sub="mallory")
    assert (mallory.status, mallory.problem_code) == (404, "not_found")
    unknown = increment(MISSING, {"amount": 1}, "u")
    assert (unknown.status, unknown.problem_code) == (404, "not_found")

    admin = {"sub": "ops", "scopes": ADMIN}
    for action in ("freeze", "unfreeze"):
        route = f"/v1/wallets/{{walletId}}/{action}"
        assert invoke(f"{action}_wallet", http_event("POST", route, {"walletId": wallet_id}, **admin)).status == 200
        if action == "freeze":
            frozen = increment(placed, {"amount": 1}, "frozen")
            assert (frozen.status, frozen.problem_code) == (409, "wallet_frozen")

    for number in range(2, 11):
        assert increment(placed, {"amount": 1}, f"step-{number}").status == 201
    eleventh = increment(placed, {"amount": 1}, "step-11")
    assert (eleventh.status, eleventh.problem_code) == (409, "invalid_state")

    assert capture(placed, {}, "fare").status == 200
    closed = increment(placed, {"amount": 1}, "after-fare")
    assert (closed.status, closed.problem_code) == (409, "invalid_state")
    assert "Traceback" not in json.dumps(closed.body)
    assert_ledger_consistent(database)


def test_a_capture_in_parts(wallet_id, database):
    placed = hold(wallet_id, 1_000, "h").body["reservation"]["id"]
    first = capture(placed, {"amount": 300, "final": False, "referenceId": "leg-1"}, "leg-1")
    assert first.status == 200, first
    assert [entry["type"] for entry in first.body["entries"]] == ["CAPTURE"]  # nothing released
    reservation = first.body["reservation"]
    assert (reservation["status"], reservation["capturedAmount"], reservation["releasedAmount"]) == (
        "PARTIALLY_CAPTURED",
        300,
        0,
    )
    assert reservation["heldAmount"] == 700
    assert [(part["amount"], part["final"]) for part in reservation["captures"]] == [(300, False)]
    assert (first.body["wallet"]["balance"], first.body["wallet"]["held"]) == (9_700, 700)
    partial = invoke(
        "list_reservations",
        http_event(
            "GET",
            "/v1/wallets/{walletId}/reservations",
            {"walletId": wallet_id},
            query={"status": "PARTIALLY_CAPTURED"},
        ),
    )
    assert [item["id"] for item in partial.body["items"]] == [placed]

    # A partly captured hold is still open: it may be raised, and captured again.
    assert increment(placed, {"amount": 200}, "detour").body["reservation"]["heldAmount"] == 900
    last = capture(placed, {"amount": 500}, "leg-2")  # final: the other 400 is released
    assert last.status == 200, last
    assert [entry["type"] for entry in last.body["entries"]] == ["CAPTURE", "RELEASE"]
    reservation = last.body["reservation"]
    assert (reservation["status"], reservation["amount"], reservation["heldAmount"]) == ("CAPTURED", 1_200, 0)
    assert (reservation["capturedAmount"], reservation["releasedAmount"]) == (800, 400)
    assert [(part["amount"], part["final"]) for part in reservation["captures"]] == [(300, False), (500, True)]
    assert (last.body["wallet"]["balance"], last.body["wallet"]["held"]) == (9_200, 0)
    again = capture(placed, {"amount": 500}, "leg-2")
    assert (again.status, again.headers["Idempotent-Replayed"], again.body) == (200, "true", last.body)
    assert_ledger_consistent(database)


def test_a_capture_that_is_not_final_of_all_the_hold_holds_ends_it(wallet_id, database):
    placed = hold(wallet_id, 600, "h").body["reservation"]["id"]
    answer = capture(placed, {"amount": 600, "final": False}, "all")
    assert answer.status == 200, answer
    assert (answer.body["reservation"]["status"], answer.body["reservation"]["heldAmount"]) == ("CAPTURED", 0)
    assert answer.body["reservation"]["captures"][0]["final"] is True
    assert_ledger_consistent(database)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"final": False}, "amount"),  # a capture in parts names each part
        ({"amount": None, "final": False}, "amount"),
        ({"amount": 100, "final": "no"}, "final"),
        ({"amount": 100, "final": 0}, "final"),
        ({"amount": 100, "final": None}, "final"),
        ({"amount": 1_001, "final": False}, "amount"),  # more than the hold holds
    ],
)
def test_bad_captures_in_parts_are_422(wallet_id, database, body, field):
    placed = hold(wallet_id, 1_000, "h").body["reservation"]["id"]
    before = snapshot(database)
    answer = capture(placed, body, "bad")
    assert (answer.status, answer.problem_code) == (422, "validation_error")
    assert [error["field"] for error in answer.body["errors"]] == [field]
    assert snapshot(database) == before


def test_a_hold_that_captures_at_expiry(wallet_id, database):
    driver = invoke("create_wallet", http_event("POST", "/v1/wallets", body={"currency": "USD"}, sub="driver-7"))
    driver_id = driver.body["wallet"]["id"]
    body = {"amount": 500, "ttlSeconds": 1, "onExpiry": "capture", "captureTo": {"walletId": driver_id}}
    placed = hold_with(wallet_id, body, "no-show")
    assert placed.status == 201, placed
    reservation = placed.body["reservation"]
    assert (reservation["onExpiry"], reservation["captureTo"]) == ("capture", {"walletId": driver_id, "account": None})
    replayed = hold_with(wallet_id, body, "no-show")
    assert (replayed.headers["Idempotent-Replayed"], replayed.body) == ("true", placed.body)

    fee = hold_with(wallet_id, {"amount": 200, "ttlSeconds": 1, "onExpiry": "capture"}, "fee")
    assert fee.body["reservation"]["captureTo"] == {"walletId": None, "account": "@revenue"}  # the default
    plain = hold_with(wallet_id, {"amount": 100, "ttlSeconds": 1, "captureTo": None}, "plain")  # null: none
    assert (plain.body["reservation"]["onExpiry"], plain.body["reservation"]["captureTo"]) == ("release", None)

    time.sleep(1.1)
    assert runtime.wallet_service().expire_reservations().expired == 3
    read = invoke(
        "get_reservation", http_event("GET", "/v1/reservations/{reservationId}", {"reservationId": reservation["id"]})
    )
    assert (read.body["status"], read.body["capturedAmount"], read.body["heldAmount"]) == ("EXPIRED", 500, 0)
    paid = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": driver_id}, sub="driver-7"))
    assert paid.body["balance"] == 500
    mine = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": wallet_id}))
    assert (mine.body["balance"], mine.body["held"]) == (10_000 - 500 - 200, 0)
    assert_ledger_consistent(database)


def test_bad_expiry_instructions_are_422(wallet_id, database):
    euro = create_wallet(owner="driver-9", currency="EUR")
    before = snapshot(database)
    for body, fields in (
        ({"amount": 5, "captureTo": {"account": "@revenue"}}, ["captureTo"]),  # release is the default
        ({"amount": 5, "onExpiry": "release", "captureTo": {"account": "@revenue"}}, ["captureTo"]),
        ({"amount": 5, "onExpiry": "later"}, ["onExpiry"]),
        ({"amount": 5, "onExpiry": "CAPTURE"}, ["onExpiry"]),
        ({"amount": 5, "onExpiry": "capture", "captureTo": {"walletId": wallet_id}}, ["captureTo.walletId"]),
        ({"amount": 5, "onExpiry": "capture", "captureTo": {"walletId": euro}}, ["captureTo.walletId"]),
        ({"amount": 5, "onExpiry": "capture", "captureTo": {"walletId": MISSING}}, ["captureTo.walletId"]),
        ({"amount": 5, "onExpiry": "capture", "captureTo": {"account": "@tips"}}, ["captureTo.account"]),
    ):
        answer = hold_with(wallet_id, body, "bad")
        assert (answer.status, answer.problem_code) == (422, "validation_error"), body
        assert [error["field"] for error in answer.body["errors"]] == fields, (body, answer.body)
    for place in ({"walletId": wallet_id, "account": "@revenue"}, {}, {"account": "revenue"}, {"walletId": "x"}):
        body = {"amount": 5, "onExpiry": "capture", "captureTo": place}
        answer = hold_with(wallet_id, body, "bad")
        assert (answer.status, answer.problem_code) == (422, "validation_error"), place
        assert {error["field"].split(".")[0] for error in answer.body["errors"]} == {"captureTo"}, answer.body
    assert snapshot(database) == before


# ---------------------------------------------------------------- balance alerts

ALERTS = "/v1/wallets/{walletId}/alerts"


def set_alerts(wallet_id, body=None, *, raw_body=None, **options):
    event = http_event("PUT", ALERTS, {"walletId": wallet_id}, body=body, raw_body=raw_body, **options)
    return invoke("set_wallet_alerts", event)


def test_a_balance_alert_is_put_read_and_removed(wallet_id, database):
    """A PUT of the alert: the wallet answered, the same body again the same; null removes it. No
    Idempotency-Key needed, no money moved."""
    journal = snapshot(database)["ledger"]
    answer = set_alerts(wallet_id, {"availableBelow": 2_500})
    assert (answer.status, answer.headers["Content-Type"]) == (200, "application/json")
    assert (answer.body["id"], answer.body["balance"], answer.body["alerts"]) == (
        wallet_id,
        10_000,
        {"availableBelow": 2_500},
    )
    assert "Idempotent-Replayed" not in answer.headers  # not a movement
    assert set_alerts(wallet_id, {"availableBelow": 2_500}).body["alerts"] == {"availableBelow": 2_500}
    read = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": wallet_id}))
    assert read.body["alerts"] == {"availableBelow": 2_500}
    changed = set_alerts(wallet_id, {"availableBelow": 9_000}, sub="ops", scopes=ADMIN)  # an admin, on anyone's
    assert (changed.status, changed.body["alerts"]) == (200, {"availableBelow": 9_000})
    removed = set_alerts(wallet_id, {"availableBelow": None})
    assert (removed.status, removed.body["alerts"]) == (200, None)
    assert set_alerts(wallet_id, {"availableBelow": None}).body["alerts"] is None
    assert snapshot(database)["ledger"] == journal  # no entry, no event: the ledger did not move
    assert_ledger_consistent(database)


@pytest.mark.parametrize(
    ("raw_body", "field"),
    [
        ("{}", "availableBelow"),
        ('{"availableBelow": 0}', "availableBelow"),
        ('{"availableBelow": -5}', "availableBelow"),
        ('{"availableBelow": 1.5}', "availableBelow"),
        ('{"availableBelow": 1e3}', "availableBelow"),
        ('{"availableBelow": "100"}', "availableBelow"),
        ('{"availableBelow": true}', "availableBelow"),
        ('{"availableBelow": 1000000000000001}', "availableBelow"),
        ('{"availableBelow": {"$gt": 0}}', "availableBelow"),
        ('{"availableBelow": 5, "below": 5}', "below"),
    ],
)
def test_bad_alerts_are_422(wallet_id, database, raw_body, field):
    before = snapshot(database)
    answer = set_alerts(wallet_id, raw_body=raw_body)
    assert (answer.status, answer.problem_code) == (422, "validation_error")
    assert [error["field"] for error in answer.body["errors"]] == [field]
    assert snapshot(database) == before


def test_alerts_of_another_owners_or_an_unknown_wallet_are_404(wallet_id, database):
    before = snapshot(database)
    for target, sub in ((wallet_id, "mallory"), (MISSING, "rider-42")):
        answer = set_alerts(target, {"availableBelow": 5}, sub=sub)
        assert (answer.status, answer.problem_code) == (404, "not_found")
    assert set_alerts(wallet_id, {"availableBelow": 5}, sub=None).status == 401
    assert set_alerts(wallet_id, raw_body="{", headers={}).problem_code == "malformed_json"
    malformed_key = set_alerts(wallet_id, {"availableBelow": 5}, idempotency_key="has space")
    assert (malformed_key.status, malformed_key.problem_code) == (400, "invalid_idempotency_key")
    assert snapshot(database) == before


def test_a_wallet_opened_with_an_alert(lambda_env, database):
    answer = invoke(
        "create_wallet",
        http_event("POST", "/v1/wallets", body={"currency": "EUR", "alerts": {"availableBelow": 500}}),
    )
    assert (answer.status, answer.body["wallet"]["alerts"]) == (201, {"availableBelow": 500})
    plain = invoke("create_wallet", http_event("POST", "/v1/wallets", body={"currency": "GBP", "alerts": None}))
    assert (plain.status, plain.body["wallet"]["alerts"]) == (201, None)
    for alerts, fields in (
        ({}, ["alerts.availableBelow"]),
        ({"availableBelow": 0}, ["alerts.availableBelow"]),
        ({"availableBelow": 5, "extra": 1}, ["alerts.extra"]),
        ({"below": 5}, ["alerts.availableBelow", "alerts.below"]),
        (500, ["alerts"]),
    ):
        refused = invoke("create_wallet", http_event("POST", "/v1/wallets", body={"currency": "USD", "alerts": alerts}))
        assert (refused.status, refused.problem_code) == (422, "validation_error"), alerts
        assert [error["field"] for error in refused.body["errors"]] == fields
