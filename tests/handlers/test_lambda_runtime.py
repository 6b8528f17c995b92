"""The Lambda runtime: where the database URI comes from, and the scheduled expiry function."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from devtools.lambda_inputs import scheduled_event
from tests.lambda_harness import LambdaContext, function_module, http_event, invoke
from tests.ledger_checks import assert_ledger_consistent
from wallet_lambda import runtime


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def test_uri_from_an_ssm_secure_string(lambda_env, monkeypatch, mongo_uri, aws):
    boto3.client("ssm").put_parameter(Name="/wallet/test/mongodb-uri", Value=mongo_uri, Type="SecureString")
    monkeypatch.delenv("MONGODB_URI")
    monkeypatch.setenv("MONGODB_URI_PARAMETER", "/wallet/test/mongodb-uri")
    runtime.reset()
    assert runtime.database_uri() == mongo_uri
    assert invoke("health", http_event("GET", "/health", sub=None)).status == 200


def test_uri_from_secrets_manager(lambda_env, monkeypatch, mongo_uri, aws):
    boto3.client("secretsmanager").create_secret(Name="wallet/test/mongodb-uri", SecretString=mongo_uri)
    monkeypatch.delenv("MONGODB_URI")
    monkeypatch.setenv("MONGODB_URI_SECRET", "wallet/test/mongodb-uri")
    runtime.reset()
    assert runtime.database_uri() == mongo_uri
    assert invoke("health", http_event("GET", "/health", sub=None)).status == 200


def test_environment_overrides_the_stored_uri(lambda_env, monkeypatch, mongo_uri, aws):
    monkeypatch.setenv("MONGODB_URI_PARAMETER", "/does/not/exist")  # never read: MONGODB_URI wins
    assert runtime.database_uri() == mongo_uri


def test_no_uri_configured_is_a_clear_error(lambda_env, monkeypatch):
    monkeypatch.delenv("MONGODB_URI")
    with pytest.raises(RuntimeError, match="MONGODB_URI"):
        runtime.database_uri()


def test_one_client_per_container(lambda_env):
    assert runtime.wallet_service() is runtime.wallet_service()


def test_scheduled_expiry_releases_due_holds(lambda_env, mongo_client, capsys):
    service = runtime.wallet_service()
    wallet = service.create_wallet("rider", "USD", opening_balance=1_000).wallet.id
    due = service.create_reservation(wallet, 300, ttl_seconds=1).reservation.id
    later = service.create_reservation(wallet, 200, ttl_seconds=3_600).reservation.id
    time.sleep(1.1)
    report = function_module("expire_reservations").lambda_handler(
        scheduled_event("wallet-ExpireReservations"), LambdaContext()
    )
    assert (report["expired"], report["skipped"], report["failed"]) == (1, 0, 0)
    assert service.get_reservation(due).status == "EXPIRED"
    assert service.get_reservation(later).status == "HELD"
    assert service.get_wallet(wallet).held == 200
    assert_ledger_consistent(mongo_client[lambda_env])
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(document.get("HoldsExpired") in (1, 1.0, [1.0]) for document in metrics), metrics


def test_scheduled_expiry_fails_loudly_when_batches_fail(lambda_env, monkeypatch):
    from wallet_service import ExpiryReport, WalletService

    def failing(self, *args, **kwargs):
        return ExpiryReport(expired=3, skipped=0, failed=2, failed_reservation_ids=("a", "b"))

    monkeypatch.setattr(WalletService, "expire_reservations", failing)
    module = function_module("expire_reservations")
    with pytest.raises(module.ExpiryIncomplete):  # Lambda's asynchronous retries then run it again
        module.lambda_handler(scheduled_event("wallet-ExpireReservations"), LambdaContext())


@pytest.mark.parametrize(
    ("remaining_millis", "at_most", "seconds"),
    [
        (10_000, runtime.REQUEST_DATABASE_SECONDS, 5.0),  # an HTTP request: the retry budget, not the Lambda's 9.5 s
        (3_000, runtime.REQUEST_DATABASE_SECONDS, 2.5),  # less time left than the budget: leave the response margin
        (60_000, None, 59.5),  # the expiry job: all but the margin
        (100, None, 0.2),  # never below the minimum
    ],
)
def test_database_deadline(remaining_millis, at_most, seconds):
    from pymongo import _csot

    assert _csot.get_timeout() is None
    with runtime.database_deadline(remaining_millis, at_most=at_most):
        assert _csot.get_timeout() == pytest.approx(seconds)
    assert _csot.get_timeout() is None
