"""Scopes: each operation needs its own (wallet:read for a GET, wallet:write for a change,
wallet:admin for an administrator's; wallet:admin grants every one), named as the issuer names them:
the template's own Cognito pool grants `wallet-api/wallet:...` (a resource server's scopes carry its
identifier) and sets SCOPE_PREFIX; an issuer of one's own grants them as they are."""

from __future__ import annotations

import pytest

from tests.lambda_harness import http_event, invoke
from wallet_lambda import operations

POOL_PREFIX = "wallet-api/"
# What a client-credentials token of the pool's platform client carries: its id as sub, every scope.
PLATFORM = {
    "sub": "5q1platformclientid",
    "scopes": tuple(f"{POOL_PREFIX}wallet:{name}" for name in ("read", "write", "admin")),
}


def open_wallet(owner: str, opening: int, *, sub: str, scopes: tuple[str, ...]):
    body = {"currency": "USD", "ownerId": owner, "openingBalance": opening}
    return invoke("create_wallet", http_event("POST", "/v1/wallets", body=body, sub=sub, scopes=scopes))


def deposit(wallet_id: str, *, sub: str, scopes: tuple[str, ...], key: str = "d-1"):
    event = http_event(
        "POST",
        "/v1/wallets/{walletId}/deposits",
        {"walletId": wallet_id},
        body={"amount": 100},
        idempotency_key=key,
        sub=sub,
        scopes=scopes,
    )
    return invoke("deposit", event)


def read_wallet(wallet_id: str, *, sub: str, scopes: tuple[str, ...]):
    return invoke(
        "get_wallet", http_event("GET", "/v1/wallets/{walletId}", {"walletId": wallet_id}, sub=sub, scopes=scopes)
    )


def assert_needs(answer, scope: str) -> None:
    """Refused before anything of the request is looked at: 403, naming the scope it lacks."""
    assert (answer.status, answer.problem_code) == (403, "forbidden")
    assert f"needs the {scope} scope" in answer.body["detail"]


@pytest.fixture
def pool_issued(lambda_env, monkeypatch):
    monkeypatch.setenv("SCOPE_PREFIX", POOL_PREFIX)
    return lambda_env


def test_each_operation_needs_the_scope_its_row_implies():
    scopes = {operation.name: operation.scope for operation in operations.OPERATIONS if operation.method}
    assert scopes["Health"] == ""
    assert scopes["GetWallet"] == scopes["ListTransactions"] == "read"
    assert scopes["Deposit"] == scopes["CreateWallet"] == scopes["SetWalletAlerts"] == "write"
    assert scopes["FreezeWallet"] == scopes["RefundReservation"] == scopes["GetAccount"] == "admin"
    assert set(scopes.values()) == {"", "read", "write", "admin"}


def test_a_read_only_token_reads_its_wallet_and_moves_no_money(lambda_env):
    wallet_id = open_wallet("rider-7", 1_000, sub="ops", scopes=("wallet:admin",)).body["wallet"]["id"]
    assert read_wallet(wallet_id, sub="rider-7", scopes=("wallet:read",)).status == 200
    assert_needs(deposit(wallet_id, sub="rider-7", scopes=("wallet:read",)), "wallet:write")
    assert read_wallet(wallet_id, sub="rider-7", scopes=("wallet:read",)).body["balance"] == 1_000


def test_a_write_only_token_moves_money_but_reads_nothing(lambda_env):
    wallet_id = open_wallet("rider-7", 0, sub="rider-7", scopes=("wallet:write",)).body["wallet"]["id"]
    assert deposit(wallet_id, sub="rider-7", scopes=("wallet:write",)).status == 201
    assert_needs(read_wallet(wallet_id, sub="rider-7", scopes=("wallet:write",)), "wallet:read")


def test_a_token_without_the_wallets_scopes_gets_nothing_but_health(lambda_env):
    assert_needs(open_wallet("rider-7", 0, sub="rider-7", scopes=("profile",)), "wallet:write")
    assert invoke("health", http_event("GET", "/health", sub=None)).status == 200


def test_the_platform_client_acts_for_any_owner_with_the_pools_scopes(pool_issued):
    opened = open_wallet("rider-7", 1_000, **PLATFORM)
    assert opened.status == 201, opened
    wallet_id = opened.body["wallet"]["id"]
    assert opened.body["wallet"]["ownerId"] == "rider-7"
    assert read_wallet(wallet_id, **PLATFORM).status == 200
    frozen = invoke(
        "freeze_wallet", http_event("POST", "/v1/wallets/{walletId}/freeze", {"walletId": wallet_id}, **PLATFORM)
    )
    assert (frozen.status, frozen.body["status"]) == (200, "FROZEN")


def test_the_bare_names_are_no_scopes_when_the_pool_prefixes_them(pool_issued):
    refused = open_wallet("rider-7", 0, sub="rider-7", scopes=("wallet:read", "wallet:write", "wallet:admin"))
    assert_needs(refused, f"{POOL_PREFIX}wallet:write")
    answer = invoke(
        "open_account",
        http_event(
            "POST", "/v1/accounts", body={"name": "@fees", "currency": "USD"}, sub="someone", scopes=("wallet:admin",)
        ),
    )
    assert_needs(answer, f"{POOL_PREFIX}wallet:admin")
    user = (f"{POOL_PREFIX}wallet:read", f"{POOL_PREFIX}wallet:write")
    assert open_wallet("rider-8", 0, sub="rider-8", scopes=user).status == 201


def test_without_a_pool_the_prefixed_names_are_no_scopes(lambda_env):
    assert open_wallet("rider-7", 1_000, sub="ops", scopes=("wallet:admin",)).status == 201
    assert_needs(open_wallet("rider-8", 1_000, sub="ops", scopes=(f"{POOL_PREFIX}wallet:admin",)), "wallet:write")
