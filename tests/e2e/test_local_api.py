"""`make run`'s server, end to end over real HTTP, and the events it hands the handlers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from devtools import local_api, local_server
from devtools.container_aids import ANSWER_LEFT_LINE
from devtools.local_auth import ALGORITHM, AUDIENCE, ISSUER, issue_token, signing_key
from devtools.local_server import Server, free_port
from devtools.paths import EVENTS, ROOT


def start_server(port: int, log: Path):
    # The events go to a file of the test's own, beside the log, not into the repository's .local.
    environment = {
        "EXPIRY_INTERVAL_SECONDS": "1",
        "EVENTS_FILE": str(log.with_name("events.jsonl")),
        "DATABASE_COMMANDS_LOG": str(log.with_name("commands.jsonl")),
    }
    return local_server.start_server(port, log, environment)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("local_api") / "server.log"
    running = Server(f"http://127.0.0.1:{port}", start_server(port, log), log)
    try:
        running.wait_until_healthy()
    except RuntimeError as error:
        pytest.fail(str(error))
    yield running
    if running.process.poll() is None:
        running.process.kill()


def test_the_story(server):
    rider = f"rider-{uuid.uuid4().hex[:8]}"
    admin = issue_token("ops", ("wallet:admin",))
    token = issue_token(rider)
    status, headers, opened = server.json(
        "POST", "/v1/wallets", {"currency": "USD", "ownerId": rider, "openingBalance": 5_000}, token=admin
    )
    assert status == 201
    wallet = opened["wallet"]["id"]
    assert headers["Location"] == f"/v1/wallets/{wallet}"
    status, _, deposited = server.json(
        "POST", f"/v1/wallets/{wallet}/deposits", {"amount": 2_000}, token=token, key="top-up-1"
    )
    assert (status, deposited["wallet"]["balance"]) == (201, 7_000)
    status, _, held = server.json(
        "POST",
        f"/v1/wallets/{wallet}/reservations",
        {"amount": 1_500, "referenceType": "ride", "referenceId": "r-1"},
        token=token,
        key="hold-1",
    )
    assert (status, held["wallet"]["available"]) == (201, 5_500)
    reservation = held["reservation"]["id"]
    status, headers, captured = server.json(
        "POST", f"/v1/reservations/{reservation}/capture", {"amount": 1_200}, token=token, key="fare-1"
    )
    assert (status, headers["Idempotent-Replayed"]) == (200, "false")
    assert [entry["type"] for entry in captured["entries"]] == ["CAPTURE", "RELEASE"]
    status, headers, again = server.json(
        "POST", f"/v1/reservations/{reservation}/capture", {"amount": 1_200}, token=token, key="fare-1"
    )
    assert (status, headers["Idempotent-Replayed"], again) == (200, "true", captured)
    status, _, history = server.json("GET", f"/v1/wallets/{wallet}/transactions?limit=10", token=token)
    assert [entry["type"] for entry in history["items"]] == ["RELEASE", "CAPTURE", "HOLD", "DEPOSIT", "DEPOSIT"]
    status, _, mine = server.json("GET", f"/v1/wallets/{wallet}", token=token)
    assert (mine["balance"], mine["held"], mine["available"]) == (5_800, 0, 5_800)
    status, _, problem = server.json("GET", f"/v1/wallets/{wallet}", token=issue_token("mallory"))
    assert (status, problem["code"]) == (404, "not_found")


def test_a_ride_raised_and_captured_in_two_parts(server):
    """A ride's hold is raised for a detour, then captured in two parts: the first leg to the driver and
    @revenue (not final), the rest final, which releases what is left."""
    rider, driver = f"rider-{uuid.uuid4().hex[:8]}", f"driver-{uuid.uuid4().hex[:8]}"
    admin, token = issue_token("ops", ("wallet:admin",)), issue_token(rider)
    opened = {"currency": "USD", "ownerId": rider, "openingBalance": 5_000}
    wallet = server.json("POST", "/v1/wallets", opened, token=admin)[2]["wallet"]["id"]
    payee = server.json("POST", "/v1/wallets", {"currency": "USD"}, token=issue_token(driver))[2]["wallet"]["id"]
    ride = {"amount": 1_500, "ttlSeconds": 900, "referenceType": "ride", "referenceId": "r-2"}
    status, _, held = server.json("POST", f"/v1/wallets/{wallet}/reservations", ride, token=token, key="r-2-hold")
    assert status == 201, held
    hold = held["reservation"]["id"]

    detour = {"amount": 500, "ttlSeconds": 1_800, "referenceType": "detour", "referenceId": "r-2"}
    status, headers, raised = server.json(
        "POST", f"/v1/reservations/{hold}/increments", detour, token=token, key="r-2-detour"
    )
    assert (status, headers["Idempotent-Replayed"], headers["Location"]) == (201, "false", f"/v1/reservations/{hold}")
    assert (raised["reservation"]["amount"], raised["reservation"]["heldAmount"]) == (2_000, 2_000)
    assert raised["reservation"]["expiresAt"] > held["reservation"]["expiresAt"]
    assert [entry["type"] for entry in raised["entries"]] == ["HOLD"]
    assert raised["wallet"]["available"] == 3_000
    status, headers, again = server.json(
        "POST", f"/v1/reservations/{hold}/increments", detour, token=token, key="r-2-detour"
    )
    assert (status, headers["Idempotent-Replayed"], again) == (201, "true", raised)

    first_leg = {
        "amount": 1_200,
        "final": False,
        "splits": [{"walletId": payee, "amount": 1_000}, {"account": "@revenue", "amount": 200}],
    }
    status, _, first = server.json("POST", f"/v1/reservations/{hold}/capture", first_leg, token=token, key="r-2-leg-1")
    assert status == 200, first
    assert [entry["type"] for entry in first["entries"]] == ["CAPTURE"]
    assert (first["reservation"]["status"], first["reservation"]["heldAmount"]) == ("PARTIALLY_CAPTURED", 800)
    status, _, last = server.json(
        "POST", f"/v1/reservations/{hold}/capture", {"amount": 500}, token=token, key="r-2-leg-2"
    )
    assert status == 200, last
    assert [entry["type"] for entry in last["entries"]] == ["CAPTURE", "RELEASE"]
    reservation = last["reservation"]
    assert (reservation["status"], reservation["capturedAmount"], reservation["releasedAmount"]) == (
        "CAPTURED",
        1_700,
        300,
    )
    assert [(part["amount"], part["final"]) for part in reservation["captures"]] == [(1_200, False), (500, True)]
    status, _, problem = server.json(
        "POST", f"/v1/reservations/{hold}/increments", {"amount": 1}, token=token, key="r-2-late"
    )
    assert (status, problem["code"]) == (409, "invalid_state")
    mine = server.json("GET", f"/v1/wallets/{wallet}", token=token)[2]
    assert (mine["balance"], mine["held"], mine["available"]) == (3_300, 0, 3_300)
    assert server.json("GET", f"/v1/wallets/{payee}", token=issue_token(driver))[2]["balance"] == 1_000


def delivered(server: Server, wallet: str, count: int, seconds: float = 10) -> list[dict]:
    """The local bus's events of `wallet` (server.log's sibling events.jsonl), each once, as a consumer
    deduplicating by `detail.id` sees them, once there are `count`. A copy is possible (delivery is at
    least once: here the expiry run, every second, publishes whatever is unsent, and may meet a
    function publishing the same event), and it is the same event."""
    path = server.log.with_name("events.jsonl")
    deadline = time.monotonic() + seconds
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        first: dict[str, dict] = {}
        for line in lines:
            if line["detail"]["walletId"] == wallet:
                assert first.setdefault(line["detail"]["id"], line)["detail"] == line["detail"]
        if len(first) >= count or time.monotonic() > deadline:
            return list(first.values())
        time.sleep(0.2)


def test_a_deposit_reaches_the_local_bus(server):
    """The function that commits publishes once it has answered: the deposit's event is in the events
    file within a second, shaped as EventBridge hands an event to a target, and logged as one line."""
    from wallet_lambda.event_sinks import TARGET_EVENT_KEYS

    rider = f"rider-{uuid.uuid4().hex[:8]}"
    admin, token = issue_token("ops", ("wallet:admin",)), issue_token(rider)
    status, _, opened = server.json(
        "POST",
        "/v1/wallets",
        {"currency": "USD", "ownerId": rider, "openingBalance": 1_000, "alerts": {"availableBelow": 500}},
        token=admin,
    )
    assert status == 201, opened
    wallet = opened["wallet"]["id"]
    status, _, deposited = server.json(
        "POST", f"/v1/wallets/{wallet}/deposits", {"amount": 250, "referenceId": "pay-1"}, token=token, key="pay-1"
    )
    assert status == 201, deposited
    opening, deposit = delivered(server, wallet, 2, seconds=1)
    assert (opening["detail-type"], deposit["detail-type"]) == ("wallet.opened", "wallet.deposit.created")
    assert set(deposit) == TARGET_EVENT_KEYS
    assert (deposit["source"], deposit["version"], deposit["resources"]) == ("wallet-service", "0", [])
    detail = deposit["detail"]
    assert set(detail) == {
        *("id", "type", "walletId", "ownerId", "currency", "version", "index", "sequence"),
        *("operationId", "occurredAt", "data"),
    }
    assert detail["id"].startswith("evt_")
    assert (detail["type"], detail["walletId"], detail["ownerId"], detail["currency"]) == (
        "wallet.deposit.created",
        wallet,
        rider,
        "USD",
    )
    assert (detail["operationId"], detail["index"], detail["sequence"]) == (deposited["operationId"], 0, 2)
    assert detail["version"] > opening["detail"]["version"]
    assert detail["data"]["wallet"] == deposited["wallet"]
    assert detail["data"]["entries"] == deposited["entries"]
    assert deposit["time"] == detail["occurredAt"][:19] + "Z"
    # A replay publishes nothing new; a withdrawal across the alert adds its warning after it.
    again = server.json(
        "POST", f"/v1/wallets/{wallet}/deposits", {"amount": 250, "referenceId": "pay-1"}, token=token, key="pay-1"
    )
    assert again[1]["Idempotent-Replayed"] == "true"
    status, _, withdrawn = server.json(
        "POST", f"/v1/wallets/{wallet}/withdrawals", {"amount": 900}, token=token, key="w"
    )
    assert status == 201, withdrawn
    events = delivered(server, wallet, 4, seconds=1)
    assert [event["detail-type"] for event in events] == [
        "wallet.opened",
        "wallet.deposit.created",
        "wallet.withdrawal.created",
        "wallet.balance.low",
    ]
    assert events[3]["detail"]["data"]["available"] == 350
    time.sleep(0.3)
    logged = server.log.read_text()
    assert f"event wallet.deposit.created wallet {wallet} {detail['id']}" in logged


def test_the_answer_leaves_before_its_events_are_published(server):
    """From the containers' command log (DATABASE_COMMANDS_LOG: every command each sends, with the
    time, and the moment the container heard its answer had left, which the gateway says once it
    has written the response): the deposit commits, its answer leaves, and only then does the
    function send its publishing commands, which are two (a read of the wallet's unsent events, an
    update marking them sent); the event is in the events file within a second of the answer. (The
    client's own clock cannot order them: it reads the time after the response has arrived, and the
    function may already be publishing then.)"""
    rider = f"rider-{uuid.uuid4().hex[:8]}"
    admin, token = issue_token("ops", ("wallet:admin",)), issue_token(rider)
    status, _, opened = server.json("POST", "/v1/wallets", {"currency": "USD", "ownerId": rider}, token=admin)
    assert status == 201, opened
    wallet = opened["wallet"]["id"]
    assert len(delivered(server, wallet, 1, seconds=1)) == 1
    commands = server.log.with_name("commands.jsonl")
    for attempt in range(3):  # the first deposit may start the Deposit container (a cold start)
        started = time.time()
        status, _, deposited = server.json(
            "POST", f"/v1/wallets/{wallet}/deposits", {"amount": 5}, token=token, key=f"answer-first-{attempt}"
        )
        answered = time.time()
        assert status == 201, deposited
        while len(delivered(server, wallet, 2 + attempt, seconds=0)) < 2 + attempt:
            assert time.time() - answered < 1.0, "the deposit's event did not reach the events file within a second"
            time.sleep(0.01)
        time.sleep(0.2)  # the update marking it sent, logged after the sink took it
        sent = [
            line
            for line in map(json.loads, commands.read_text().splitlines())
            if line["function"] == "Deposit" and line["at"] >= started
        ]
        names = [line["command"] for line in sent]
        assert "commitTransaction" in names, names
        after_commit = names[len(names) - names[::-1].index("commitTransaction") :]
        assert after_commit == [ANSWER_LEFT_LINE, "find", "update"], names
        if attempt > 0:  # warm: the wallet update, the insert, the commit, then the answer
            assert names.index(ANSWER_LEFT_LINE) == 3, names


def test_the_schedule_expires_a_short_hold(server):
    rider = f"rider-{uuid.uuid4().hex[:8]}"
    admin = issue_token("ops", ("wallet:admin",))
    wallet = server.json(
        "POST", "/v1/wallets", {"currency": "EUR", "ownerId": rider, "openingBalance": 100}, token=admin
    )[2]["wallet"]["id"]
    token = issue_token(rider)
    reservation = server.json(
        "POST", f"/v1/wallets/{wallet}/reservations", {"amount": 60, "ttlSeconds": 1}, token=token, key="h"
    )[2]
    hold = reservation["reservation"]["id"]
    deadline = time.monotonic() + 60
    status = "HELD"
    while status == "HELD" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = server.json("GET", f"/v1/reservations/{hold}", token=token)[2]["status"]
    assert status == "EXPIRED"
    assert server.json("GET", f"/v1/wallets/{wallet}", token=token)[2]["available"] == 100


def test_a_scheduled_run_logs_a_short_line_only_when_it_did_something(server):
    """The schedule runs every second here; only a run that expired something has a line, and a
    short one: its counts, not its report's lists of ids."""
    owner = f"rider-{uuid.uuid4().hex[:8]}"
    admin = issue_token("ops", ("wallet:admin",))
    opening = {"currency": "EUR", "ownerId": owner, "openingBalance": 100}
    wallet = server.json("POST", "/v1/wallets", opening, token=admin)[2]["wallet"]["id"]
    token = issue_token(owner)
    body = {"amount": 10, "ttlSeconds": 1}
    hold = server.json("POST", f"/v1/wallets/{wallet}/reservations", body, token=token, key="short")[2]
    deadline = time.monotonic() + 60
    while server.json("GET", f"/v1/reservations/{hold['reservation']['id']}", token=token)[2]["status"] == "HELD":
        assert time.monotonic() < deadline, "the hold did not expire"
        time.sleep(0.2)
    time.sleep(0.2)  # the run's line, logged after its answer
    lines = [line for line in server.log.read_text().splitlines() if "schedule ExpireReservations" in line]
    assert lines, "no line for the run that expired the hold"
    for line in lines:
        counts = line.split("schedule ExpireReservations: ", 1)[1]
        assert re.fullmatch(r"[a-z]+ [1-9]\d*(, [a-z]+ [1-9]\d*)*", counts), line


def forged(**changes) -> str:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "scope": "wallet:read",
    } | changes
    return jwt.encode(claims, signing_key(), algorithm=ALGORITHM)


@pytest.mark.parametrize(
    "token",
    [
        None,
        "not-a-jwt",
        forged(exp=int(time.time()) - 10),
        forged(aud="someone-else"),
        forged(iss="https://evil.example/"),
        jwt.encode(
            {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600},
            "wrong-key" * 4,
            algorithm="HS256",
        ),
        jwt.encode(
            {"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 600}, None, algorithm="none"
        ),
    ],
    ids=["missing", "garbage", "expired", "wrong-audience", "wrong-issuer", "wrong-key", "alg-none"],
)
def test_bad_tokens_are_401_before_any_handler_runs(server, token):
    status, _, body = server.json("POST", "/v1/wallets", {"currency": "CHF"}, token=token)
    assert (status, body) == (401, {"message": "Unauthorized"})


def test_admin_routes_need_the_scope(server):
    status, _, body = server.json("POST", "/v1/wallets/0123456789abcdef01234567/freeze", token=issue_token("alice"))
    assert (status, body["code"]) == (403, "forbidden")


def test_swagger_ui_and_the_spec_are_served_locally(server):
    status, _headers, page = server.call("GET", "/docs")
    assert status == 200
    assert '<meta name="version" content="5.' in page.decode()  # Swagger UI 5 reads OpenAPI 3.1
    assert "/docs/swagger-ui-bundle.js" in page.decode()
    assert "//" not in page.decode().replace("http://", "").split("<script>")[0].split("href=")[-1][:3]  # no CDN
    assert server.call("GET", "/docs/swagger-ui-bundle.js")[0] == 200
    status, _, spec = server.json("GET", "/openapi.json")
    assert spec["servers"] == [{"url": server.base, "description": "make run"}]
    assert "/v1/wallets/{walletId}/deposits" in spec["paths"]


def test_one_log_line_per_request(server):
    server.call("GET", "/health")
    time.sleep(0.3)
    assert any(line.endswith("Health") and " GET /health 200 " in line for line in server.log.read_text().splitlines())


def test_a_busy_port_is_a_clear_error(server, tmp_path):
    port = int(server.base.rsplit(":", 1)[1])
    process = start_server(port, tmp_path / "second.log")
    assert process.wait(timeout=60) != 0
    assert f"port {port} on 127.0.0.1 is busy" in (tmp_path / "second.log").read_text()


def test_an_unreachable_database_is_a_clear_error(tmp_path):
    environment = {
        **os.environ,
        "MONGODB_URI": "mongodb://127.0.0.1:9/?directConnection=true",
        "PORT": str(free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "devtools.local_api", "run"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MONGODB_URI is not reachable" in result.stderr


def test_concurrent_requests_to_different_functions_keep_their_own_events(server):
    """Each function runs in a container process of its own: a request never sees another's event
    (Powertools keeps the current event in a process-wide attribute, so threads would mix them)."""
    admin = issue_token("ops", ("wallet:admin",))
    owners = [f"rider-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    wallets = {
        owner: server.json("POST", "/v1/wallets", {"currency": "GBP", "ownerId": owner}, token=admin)[2]["wallet"]["id"]
        for owner in owners
    }

    def call(owner: str, operation: str) -> bool:
        """Whether the answer is the one this request asked for."""
        token, wallet = issue_token(owner), wallets[owner]
        if operation == "deposit":
            status, _, body = server.json(
                "POST", f"/v1/wallets/{wallet}/deposits", {"amount": 1}, token=token, key=uuid.uuid4().hex
            )
            return status == 201 and body["wallet"]["id"] == wallet
        if operation == "transactions":
            status, _, body = server.json("GET", f"/v1/wallets/{wallet}/transactions?limit=1", token=token)
            return status == 200 and all(entry["walletId"] == wallet for entry in body["items"])
        status, _, body = server.json("GET", f"/v1/wallets/{wallet}", token=token)
        return status == 200 and body["id"] == wallet

    operations = ("deposit", "transactions", "get")
    calls = [(owner, operation) for _ in range(8) for owner in owners for operation in operations]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda arguments: call(*arguments), calls))
    assert [arguments for arguments, right in zip(calls, answers, strict=True) if not right] == []


def test_each_function_runs_in_a_container_process_of_its_own(lambda_env):
    functions = local_api.load_functions()
    try:
        for name in ("Health", "GetWallet"):
            event = json.loads((EVENTS / f"{functions[name].code_dir.name}.json").read_text())
            assert functions[name].invoke(event)["statusCode"] in (200, 404)
        pids = functions["Health"].containers.pids | functions["GetWallet"].containers.pids
        assert len(pids) == 2
        assert os.getpid() not in pids
        assert functions["Deposit"].containers.pids == set()  # started on its first invocation only
    finally:
        for function in functions.values():
            function.containers.stop()


def test_a_function_that_overruns_its_timeout_is_stopped_and_replaced(tmp_path):
    """As Lambda does: API Gateway answers 500 and the next invocation gets a fresh container."""
    from devtools.lambda_container import FunctionError, LambdaContainer

    (tmp_path / "app.py").write_text(
        "import os, time\n"
        "def lambda_handler(event, context):\n"
        "    time.sleep(event['sleep'])\n"
        "    return {'pid': os.getpid()}\n"
    )
    container = LambdaContainer("Sleepy", tmp_path, timeout_seconds=1)
    try:
        first = container.invoke({"sleep": 0})["pid"]
        with pytest.raises(FunctionError, match="timed out after 1 s"):
            container.invoke({"sleep": 5})
        assert container.invoke({"sleep": 0})["pid"] != first
    finally:
        container.stop()


def test_concurrent_invocations_of_one_function_run_in_containers_of_their_own(tmp_path):
    """As Lambda scales a function out: each invocation waits until both are running at once, which
    one container serving them in turn would never see."""
    from devtools.container_pool import ContainerPool

    arrivals = tmp_path / "arrivals"
    arrivals.mkdir()
    (tmp_path / "app.py").write_text(
        "import os, pathlib, time\n"
        "def lambda_handler(event, context):\n"
        "    folder = pathlib.Path(event['arrivals'])\n"
        "    (folder / str(os.getpid())).touch()\n"
        "    deadline = time.monotonic() + 20\n"
        "    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:\n"
        "        time.sleep(0.01)\n"
        "    return {'pid': os.getpid(), 'together': len(list(folder.iterdir()))}\n"
    )
    pool = ContainerPool("Meeting", tmp_path, timeout_seconds=30, max_containers=2)
    answers: list[dict] = []
    try:
        callers = [
            threading.Thread(target=lambda: answers.append(pool.invoke({"arrivals": str(arrivals)}))) for _ in range(2)
        ]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=90)
        assert [answer["together"] for answer in answers] == [2, 2]
        assert len({answer["pid"] for answer in answers}) == 2
        assert pool.pids == {answer["pid"] for answer in answers}
    finally:
        pool.stop()


def test_the_banner_prints_a_token_to_paste_as_it_is_and_says_whose(server):
    """/docs' Authorize wants the token alone; the banner says whose it is and what it may do."""
    lines = server.log.read_text().splitlines()
    said = next(index for index, line in enumerate(lines) if "alice's token (wallet:read wallet:write; 12 h)" in line)
    token = lines[said + 1].strip()
    claims = jwt.decode(token, signing_key(), algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER)
    assert (claims["sub"], claims["scope"]) == ("alice", "wallet:read wallet:write")
    assert server.json("GET", "/v1/wallets/" + "0" * 24, token=token)[0] == 404  # a token the API takes


def test_ctrl_c_stops_cleanly(server):
    """Last in this module: it stops the shared server."""
    server.process.send_signal(signal.SIGINT)
    try:
        code = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make run did not stop within 30 s of Ctrl-C; its log ends:\n{server.log.read_text()[-3000:]}")
    assert code == 0
    assert server.log.read_text().rstrip().endswith("stopped")


SAMPLE_WALLET = "65f0c0ffee0000000000a001"  # the wallet the money samples in events/ name


def make_invoke(function: str, event: Path) -> tuple[int, dict]:
    result = subprocess.run(
        [sys.executable, "-m", "devtools.local_api", "invoke", function, str(event)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout.strip().splitlines()[-1])
    return response["statusCode"], json.loads(response["body"])


def test_make_invoke_prints_the_response():
    assert make_invoke("Health", Path("events/health.json")) == (200, {"status": "ok"})


def test_the_readmes_make_invoke_examples_work_as_written(tmp_path):
    """README: `make invoke FN=CreateWallet EVENT=events/create_wallet.json` opens the sample rider's
    wallet (or, run again, says it exists and names it); docs/local-development.md: the money samples
    name SAMPLE_WALLET, so put that wallet's id in their place, and the deposit goes through."""
    status, body = make_invoke("CreateWallet", EVENTS / "create_wallet.json")
    assert status in (201, 409), body
    wallet = body["wallet"]["id"] if status == 201 else body["existingWalletId"]
    deposit = tmp_path / "deposit.json"
    deposit.write_text((EVENTS / "deposit.json").read_text().replace(SAMPLE_WALLET, wallet))
    status, body = make_invoke("Deposit", deposit)
    assert (status, body["wallet"]["id"]) == (201, wallet), body


def test_events_match_sam_local_generate_event(lambda_env):
    """The events SAM CLI's local API machinery builds have the shape `sam local generate-event` shows."""
    from samcli.lib.providers.api_provider import ApiProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
    from samcli.local.apigw.local_apigw_service import LocalApigwService

    events: list[dict] = []

    class Recorder(local_api.ContainerRunner):
        def invoke(self, function_name, event, stdout=None, stderr=None, **ignored):
            events.append(json.loads(event))
            super().invoke(function_name, event, stdout=stdout, stderr=stderr)

    stacks, _ = SamLocalStackProvider.get_stacks(str(local_api.TEMPLATE))
    service = LocalApigwService(
        api=ApiProvider(stacks).api, lambda_runner=Recorder(local_api.load_functions()), port=1, host="127.0.0.1"
    )
    service.create()
    client = service._app.test_client()
    answer = client.get(
        "/v1/wallets/0123456789abcdef01234567/transactions?limit=5",
        headers={"Authorization": f"Bearer {issue_token('alice')}"},
    )
    assert answer.status_code == 404  # not 401: the token was verified and its claims handed over
    (event,) = events
    generated = json.loads(
        subprocess.run(
            [str(Path(sys.executable).parent / "sam"), "local", "generate-event", "apigateway", "http-api-proxy"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        ).stdout
    )
    assert set(generated) - {"cookies", "stageVariables"} <= set(event)
    assert set(generated["requestContext"]["http"]) <= set(event["requestContext"]["http"])
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /v1/wallets/{walletId}/transactions"
    assert event["pathParameters"] == {"walletId": "0123456789abcdef01234567"}
    assert event["queryStringParameters"] == {"limit": "5"}
    assert event["headers"]["Authorization"].startswith("Bearer ")


def test_the_local_bus_file_sits_beside_the_database(monkeypatch, tmp_path):
    """EVENTS_FILE when set; else beside the embedded database's folder (.local/events.jsonl, or next to
    DB_PATH's); else, with MONGODB_URI or DB_PATH=:memory:, in .local."""
    from devtools.paths import LOCAL

    for name in ("EVENTS_FILE", "DB_PATH", "MONGODB_URI"):
        monkeypatch.delenv(name, raising=False)
    assert local_api.events_file() == LOCAL / "events.jsonl"
    monkeypatch.setenv("DB_PATH", str(tmp_path / "run" / "db"))
    assert local_api.events_file() == tmp_path / "run" / "events.jsonl"
    monkeypatch.setenv("DB_PATH", ":memory:")
    assert local_api.events_file() == LOCAL / "events.jsonl"
    monkeypatch.setenv("DB_PATH", str(tmp_path / "run" / "db"))
    monkeypatch.setenv("MONGODB_URI", "mongodb://localhost:27017/?replicaSet=rs0")
    assert local_api.events_file() == LOCAL / "events.jsonl"
    monkeypatch.setenv("EVENTS_FILE", str(tmp_path / "mine.jsonl"))
    assert local_api.events_file() == tmp_path / "mine.jsonl"
    assert set(local_api.INTERVAL_VARIABLES) == {
        name for name, function in local_api.load_functions().items() if function.schedule
    }
