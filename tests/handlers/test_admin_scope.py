"""The administrator's scope as the issuer names it: the template's own Cognito pool grants
`wallet-api/wallet:admin` (a resource server's scopes carry its identifier) and sets ADMIN_SCOPE to
it; an issuer of one's own grants `wallet:admin` (no ADMIN_SCOPE)."""

from __future__ import annotations

import pytest

from tests.lambda_harness import http_event, invoke

POOL_ADMIN = "wallet-api/wallet:admin"
# What a client-credentials token of the pool's platform client carries: its id as sub, every scope.
PLATFORM = {"sub": "5q1platformclientid", "scopes": ("wallet-api/wallet:read", "wallet-api/wallet:write", POOL_ADMIN)}


def open_wallet(owner: str, opening: int, *, sub: str, scopes: tuple[str, ...]):
    body = {"currency": "USD", "ownerId": owner, "openingBalance": opening}
    return invoke("create_wallet", http_event("POST", "/v1/wallets", body=body, sub=sub, scopes=scopes))


@pytest.fixture
def pool_issued(lambda_env, monkeypatch):
    monkeypatch.setenv("ADMIN_SCOPE", POOL_ADMIN)
    return lambda_env


def test_the_platform_client_acts_for_any_owner_with_the_pools_admin_scope(pool_issued):
    opened = open_wallet("rider-7", 1_000, **PLATFORM)
    assert opened.status == 201, opened
    wallet_id = opened.body["wallet"]["id"]
    assert opened.body["wallet"]["ownerId"] == "rider-7"
    frozen = invoke(
        "freeze_wallet", http_event("POST", "/v1/wallets/{walletId}/freeze", {"walletId": wallet_id}, **PLATFORM)
    )
    assert frozen.status == 200, frozen
    assert frozen.body["status"] == "FROZEN"


def test_the_bare_scope_is_not_an_administrator_when_the_pool_names_it_otherwise(pool_issued):
    refused = open_wallet("rider-7", 1_000, sub="someone", scopes=("wallet:admin",))
    assert refused.status == 403
    assert refused.problem_code == "forbidden"
    assert POOL_ADMIN in refused.body["detail"]
    answer = invoke(
        "open_account",
        http_event(
            "POST", "/v1/accounts", body={"name": "@fees", "currency": "USD"}, sub="someone", scopes=("wallet:admin",)
        ),
    )
    assert answer.status == 403
    assert POOL_ADMIN in answer.body["detail"]


def test_without_a_pool_the_bare_scope_is_the_administrators(lambda_env):
    assert open_wallet("rider-7", 1_000, sub="ops", scopes=("wallet:admin",)).status == 201
    refused = open_wallet("rider-8", 1_000, sub="ops", scopes=(POOL_ADMIN,))
    assert refused.status == 403
    assert "wallet:admin" in refused.body["detail"]
