"""Work after the answer: the internal extension against an Extensions API (the one make run's
containers serve, devtools/extensions_api.py), and what the HTTP handlers hand it: the publishing of
the events their transactions committed, nothing for a replay, a refusal or a read."""

from __future__ import annotations

import json
import threading
import time

import pytest

from devtools.extensions_api import LocalExtensionsApi
from tests.lambda_harness import LambdaContext, http_event, invoke
from wallet_lambda import after_answer, runtime

ADMIN = ("wallet:admin",)


@pytest.fixture
def api() -> LocalExtensionsApi:
    served = LocalExtensionsApi("Deposit")
    yield served
    served.stop()


def deadline_ms(seconds: float) -> int:
    return int((time.time() + seconds) * 1000)


def registered(api: LocalExtensionsApi) -> after_answer._Extension:
    extension = after_answer._Extension(api.address)
    extension.register()
    assert api.registered == [after_answer.EXTENSION_NAME]
    assert api.idle(5)  # it asked for its first event
    return extension


def test_the_job_runs_only_once_the_invocation_is_delivered_and_the_environment_waits_for_it(api):
    extension = registered(api)
    ran = threading.Event()
    release = threading.Event()

    def job():
        ran.set()
        release.wait(5)

    extension.hand_over("request-1", job)
    time.sleep(0.2)
    assert not ran.is_set()  # handed over, but the answer has not left
    api.invoked("request-1", deadline_ms(10))
    assert ran.wait(5)
    assert not api.idle(0.2)  # the extension holds the environment while its job runs
    release.set()
    assert api.idle(5)


def test_nothing_to_do_ends_at_once_and_a_stale_job_is_skipped(api):
    extension = registered(api)
    extension.hand_over("request-1", None)
    api.invoked("request-1", deadline_ms(10))
    assert api.idle(5)
    done = []
    extension.hand_over("gone", lambda: done.append("gone"))  # an invocation Lambda ended before the extension saw it
    extension.hand_over("request-2", lambda: done.append("request-2"))
    api.invoked("request-2", deadline_ms(10))
    assert api.idle(5)
    assert done == ["request-2"]


def test_a_handler_that_hands_nothing_over_holds_the_environment_only_until_the_deadline(api, caplog):
    registered(api)
    started = time.monotonic()
    api.invoked("request-1", deadline_ms(0.5))
    assert api.idle(5)
    assert 0.3 < time.monotonic() - started < 3
    assert "the handler handed nothing over before its deadline" in caplog.messages


def test_a_failing_job_is_logged_and_the_next_invocation_is_served(api, caplog):
    extension = registered(api)

    def failing():
        raise RuntimeError("the sink exploded")

    extension.hand_over("request-1", failing)
    api.invoked("request-1", deadline_ms(10))
    assert api.idle(5)
    assert "work after the answer failed" in caplog.messages
    done = []
    extension.hand_over("request-2", lambda: done.append(True))
    api.invoked("request-2", deadline_ms(10))
    assert api.idle(5)
    assert done == [True]


def test_without_an_extensions_api_the_work_is_done_before_returning(monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_RUNTIME_API", raising=False)
    monkeypatch.setattr(after_answer, "_extension", None)
    after_answer.register()
    assert after_answer._extension is None
    done = []
    after_answer.hand_over("request-1", lambda: done.append(True))
    assert done == [True]


def test_register_is_once_per_process_and_hand_over_goes_to_the_extension(api, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", api.address)
    monkeypatch.setattr(after_answer, "_extension", None)
    after_answer.register()
    after_answer.register()
    assert api.registered == [after_answer.EXTENSION_NAME]
    done = []
    after_answer.hand_over("request-1", lambda: done.append(True))
    assert done == []
    api.invoked("request-1", deadline_ms(10))
    assert api.idle(5)
    assert done == [True]


def test_an_unreachable_extensions_api_leaves_the_work_to_the_handler(monkeypatch, caplog):
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(after_answer, "_extension", None)
    after_answer.register()
    assert after_answer._extension is None
    assert "the after-answer extension could not register: work is done before answering" in caplog.messages


# ---------------------------------------------------------------- what the HTTP handlers hand over


@pytest.fixture
def handed(lambda_env, monkeypatch) -> list:
    """What each invocation hands over, kept instead of run."""
    kept: list = []
    monkeypatch.setattr(after_answer, "hand_over", lambda request_id, job: kept.append((request_id, job)))
    return kept


def test_a_movement_hands_over_its_publishing_and_a_replay_a_refusal_or_a_read_nothing(handed, tmp_path, monkeypatch):
    monkeypatch.setenv("EVENTS_FILE", str(tmp_path / "events.jsonl"))
    runtime.reset()
    body = {"currency": "USD", "ownerId": "rider-1", "openingBalance": 100}
    opened = invoke("create_wallet", http_event("POST", "/v1/wallets", body=body, sub="ops", scopes=ADMIN))
    wallet = opened.body["wallet"]["id"]
    route, ids = "/v1/wallets/{walletId}/deposits", {"walletId": wallet}
    context = LambdaContext("Deposit")
    first = invoke(
        "deposit", http_event("POST", route, ids, body={"amount": 5}, idempotency_key="d", sub="rider-1"), context
    )
    assert first.status == 201
    again = invoke("deposit", http_event("POST", route, ids, body={"amount": 5}, idempotency_key="d", sub="rider-1"))
    assert again.headers["Idempotent-Replayed"] == "true"
    refused = invoke(
        "withdraw",
        http_event(
            "POST",
            "/v1/wallets/{walletId}/withdrawals",
            ids,
            body={"amount": 10_000},
            idempotency_key="w",
            sub="rider-1",
        ),
    )
    assert refused.status == 409
    read = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", ids, sub="rider-1"))
    assert read.status == 200
    malformed = invoke(
        "deposit", http_event("POST", route, ids, body={"amount": -1}, idempotency_key="x", sub="rider-1")
    )
    assert malformed.status == 422
    assert [job is not None for _, job in handed] == [True, True, False, False, False, False]
    assert handed[1][0] == context.aws_request_id
    assert not (tmp_path / "events.jsonl").exists()  # nothing sent before the work after the answer
    for _, job in handed[:2]:
        job()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["detail-type"] for line in lines] == ["wallet.opened", "wallet.deposit.created"]
