"""The real SAM CLI path: the built functions in Lambda containers, through `sam local`.

One module fixture makes sure of a Docker engine (starting Debian's dockerd here when none runs, and
stopping it afterwards), the python3.13 base image (devtools/lambda_image.py) and one `sam build`
(into a folder of the module's own), and serves the database on the Docker bridge's gateway address,
where the containers reach it. Then every sample event in events/ goes through `sam local invoke`
(ids swapped in as tests/handlers/test_events.py does), each answer and its effect on the database
checked, and the end-to-end HTTP suite of tests/e2e/test_local_api.py runs again, test for test,
against `sam local start-api --warm-containers EAGER` (devtools/sam_local.py api). SAM CLI does not
emulate JWT authorizers; devtools/sam_local.py puts API Gateway's check in front of SAM's runner, so
the bad-token cases run here too. SAM CLI builds the functions' image (base image, emulator, layer)
once, not again for every invoke and container while nothing in it changed (devtools/sam_local.py
reuse_unchanged_function_images). How long each part took is written to .local/sam-local-timings.json.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bson import ObjectId
from pymongo import MongoClient
from pymongo.database import Database

from devtools import sam_local
from devtools.lambda_image import ensure_image, image_name
from devtools.local_api import load_functions
from devtools.local_server import Server, free_port
from devtools.paths import EVENTS, LOCAL, ROOT, TEMPLATE
from tests.e2e import test_local_api as http_suite
from tests.handlers.test_events import load_event
from tests.ledger_checks import NOTHING_TO_MIGRATE, assert_ledger_consistent
from wallet_service import WalletService

EVENTS = EVENTS
TIMINGS = LOCAL / "sam-local-timings.json"
API_START_SECONDS = 600

# Setting up may install and start Docker and build the image: far longer than a unit test.
pytestmark = pytest.mark.timeout(1800)

MONEY_EVENTS = [
    "create_wallet",
    "freeze_wallet",
    "unfreeze_wallet",
    "get_wallet",
    "deposit",
    "withdraw",
    "transfer",
    "create_reservation",
    "list_reservations",
    "get_reservation",
    "increment_reservation",
    "capture_reservation",
    "release_reservation",
    "list_transactions",
    "set_wallet_alerts",
]


@dataclass
class SamLocal:
    uri: str
    arch: str
    scratch: Path
    client: MongoClient
    timings: dict[str, float] = field(default_factory=dict)
    logical_ids: dict[str, str] = field(default_factory=dict)

    def record(self, part: str, seconds: float) -> None:
        self.timings[part] = round(self.timings.get(part, 0.0) + seconds, 1)
        TIMINGS.parent.mkdir(exist_ok=True)
        TIMINGS.write_text(json.dumps(self.timings, indent=2) + "\n")


@dataclass
class Answer:
    status: int
    headers: dict
    body: object
    raw: dict
    log: str = ""  # sam local invoke's stderr: SAM CLI's, the emulator's and the function's lines


def _timed(timings: dict[str, float], part: str, step):
    started = time.monotonic()
    result = step()
    timings[part] = round(time.monotonic() - started, 1)
    return result


@pytest.fixture(scope="module")
def sam(tmp_path_factory) -> Iterator[SamLocal]:
    timings: dict[str, float] = {}
    engine = _timed(timings, "engine", sam_local.ensure_engine)
    cleanup: list = []
    # A build of this module's own (SAM_BUILD_DIR, inherited by every sam process below): a `sam
    # build` elsewhere in the checkout meanwhile (make sam-build, another make test) must not
    # replace the functions under start-api.
    environment = pytest.MonkeyPatch()
    build = tmp_path_factory.mktemp("sam_build")
    environment.setenv("SAM_BUILD_DIR", str(build))
    cleanup.extend([lambda: shutil.rmtree(build, ignore_errors=True), environment.undo])
    try:
        arch = sam_local.architecture()
        _timed(timings, "image", lambda: ensure_image(arch))
        _timed(timings, "sam build", lambda: sam_local.sam_build(arch))
        allow_slow_cold_starts(build / "template.yaml")
        uri = sam_local.container_database(sam_local.bridge_gateway(), cleanup)
        client = MongoClient(uri, serverSelectionTimeoutMS=5000)
        cleanup.append(client.close)
        functions = load_functions()
        state = SamLocal(
            uri=uri,
            arch=arch,
            scratch=tmp_path_factory.mktemp("sam_local"),
            client=client,
            logical_ids={function.code_dir.name: name for name, function in functions.items()},
        )
        timings[f"engine ({'started here' if engine.started_here else 'already running'})"] = timings.pop("engine")
        for part, seconds in timings.items():
            state.record(part, seconds)
        yield state
    finally:
        for step in reversed(cleanup):
            step()
        sam_local.stop_sam_containers()
        engine.stop()


# The HTTP functions' timeout in this module's build. Lambda's 10 s counts the cold start too (sam
# local's emulator times init and invoke together); here a container's first import of the layer
# shares two cores with make test's other group and took over 10 s once (GetReservation: "Init
# failed ... timed out after 10 seconds"). What is tested here is the build and the answers.
COLD_START_TIMEOUT = 30


def allow_slow_cold_starts(built_template: Path) -> None:
    """Give the HTTP functions COLD_START_TIMEOUT seconds in the built template (Globals' Timeout)."""
    text = built_template.read_text()
    globals_timeout = "\n    Timeout: 10\n"  # Globals.Function's: the only Timeout at this indent
    assert text.count(globals_timeout) == 1, "the built template's Globals Timeout moved"
    built_template.write_text(text.replace(globals_timeout, f"\n    Timeout: {COLD_START_TIMEOUT}\n"))


SCHEDULED_EVENTS = (  # not HTTP
    "expire_reservations",
    "audit_ledger",
    "migrate_ledger",
    "publish_events",
    "roll_checkpoints",
)


def sam_invoke(sam: SamLocal, name: str, event: dict, database: str, variables: dict | None = None) -> Answer:
    """`sam local invoke` of events/<name>.json's function with `event`, against `database`; `variables`
    add to the --env-vars file (a variable the template declares for the function)."""
    event_file = sam.scratch / f"{name}-{uuid.uuid4().hex[:6]}.json"
    event_file.write_text(json.dumps(event))
    env_vars = sam_local.write_env_vars(sam.scratch / f"env-{database}.json", sam.uri, database, log_level="WARNING")
    if variables:
        written = json.loads(env_vars.read_text())
        written["Parameters"] |= variables
        env_vars = sam.scratch / f"env-{database}-{uuid.uuid4().hex[:6]}.json"
        env_vars.write_text(json.dumps(written))
    started = time.monotonic()
    result = subprocess.run(
        sam_local.invoke_command(sam.logical_ids[name], event_file, env_vars, sam.arch),
        cwd=ROOT,
        env=sam_local._sam_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    sam.record("sam local invoke (all)", time.monotonic() - started)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"no response on stdout; stderr:\n{result.stderr[-3000:]}"
    response = json.loads(lines[-1])
    if name in SCHEDULED_EVENTS:  # not HTTP: the report itself
        return Answer(200, {}, response, response, result.stderr)
    body = json.loads(response["body"]) if response.get("body") else None
    return Answer(response["statusCode"], response.get("headers") or {}, body, response, result.stderr)


@pytest.fixture
def ledger(sam: SamLocal) -> Iterator[tuple[str, Database, WalletService]]:
    name = f"wallet_sam_{uuid.uuid4().hex[:12]}"
    database = sam.client[name]
    service = WalletService(database)
    service.ensure_indexes()
    yield name, database, service
    sam.client.drop_database(name)


def test_the_base_image_has_the_name_sam_cli_looks_for():
    assert image_name("x86_64") == "public.ecr.aws/lambda/python:3.13-x86_64"
    assert image_name("arm64") == "public.ecr.aws/lambda/python:3.13-arm64"


def test_a_loopback_uri_is_relayed_with_its_credentials_and_options():
    uri = "mongodb://app:s3cret@localhost:27017/wallet?replicaSet=rs0&authSource=admin&w=majority"
    assert sam_local.container_uri(uri, ("172.17.0.1", 41000)) == (
        "mongodb://app:s3cret@172.17.0.1:41000/wallet?authSource=admin&w=majority&directConnection=true"
    )


def test_the_env_vars_file_sets_only_what_the_template_declares(tmp_path):
    """SAM's --env-vars overrides declared variables only: every one we hand over must be declared."""
    from samcli.yamlhelper import yaml_parse

    declared = yaml_parse((TEMPLATE).read_text())["Globals"]["Function"]["Environment"]["Variables"]
    written = json.loads(sam_local.write_env_vars(tmp_path / "env.json", "mongodb://x", "db").read_text())
    assert set(written) == {"Parameters"}
    assert set(written["Parameters"]) <= set(declared)
    assert declared["MONGODB_URI"] == ""  # empty in AWS


def test_the_events_here_are_every_event_file():
    everything = [*MONEY_EVENTS, *ACCOUNT_EVENTS, "health", *SCHEDULED_EVENTS]
    assert sorted(everything) == sorted(p.stem for p in EVENTS.glob("*.json"))


def test_the_built_layer_holds_no_development_tool(sam):
    """What `sam build` makes of the layer is its requirements and its code: never SecantusDB (GPL-2.0,
    a development and test tool) nor anything else of requirements-dev.txt's alone."""
    built = sam_local.build_dir() / "WalletLayer" / "python"
    shipped = {path.name.lower() for path in built.iterdir()}
    assert {"wallet_service", "wallet_lambda", "pymongo"} <= shipped, sorted(shipped)
    for tool in ("secantus", "pytest", "hypothesis", "schemathesis", "moto", "samcli"):
        assert not [name for name in shipped if name.startswith(tool)], (tool, sorted(shipped))
    assert not list(built.rglob("*secantus*")), "SecantusDB in the built layer"


def test_the_money_events_in_containers(sam, ledger):
    name, database, service = ledger
    opened = sam_invoke(sam, "create_wallet", load_event("create_wallet"), name)
    assert opened.status == 201, opened
    assert opened.headers["Location"] == f"/v1/wallets/{opened.body['wallet']['id']}"
    rider = opened.body["wallet"]["id"]
    driver = service.create_wallet("driver-7", opened.body["wallet"]["currency"]).wallet.id
    ids = {"rider": rider, "driver": driver}
    opening = service.deposit(rider, 10_000).wallet.balance

    for event in ("freeze_wallet", "unfreeze_wallet", "get_wallet"):
        answer = sam_invoke(sam, event, load_event(event, **ids), name)
        assert (answer.status, answer.body["id"]) == (200, rider), (event, answer)
    assert service.get_wallet(rider).status == "ACTIVE"

    deposited = sam_invoke(sam, "deposit", load_event("deposit", **ids), name, {"POWERTOOLS_LOG_LEVEL": "INFO"})
    assert deposited.status == 201, deposited
    assert deposited.headers["Idempotent-Replayed"] == "false"
    # The emulator serves the Extensions API, the layer's after-answer extension registers at init,
    # and the emulator hands the answer back only once the extension has asked for its next event:
    # here the events are sent before the answer arrives (docs/sam-local.md, "After the answer").
    assert '"message":"after-answer extension registered"' in deposited.log, deposited.log[-3000:]
    assert database["ledger"].count_documents({"kind": "event", "sent": False, "walletId": ObjectId(rider)}) == 0
    amount = deposited.body["entries"][0]["amount"]
    assert service.get_wallet(rider).balance == opening + amount

    replayed = sam_invoke(sam, "deposit", load_event("deposit", **ids), name)
    assert (replayed.status, replayed.headers["Idempotent-Replayed"]) == (201, "true")
    assert service.get_wallet(rider).balance == opening + amount  # applied once

    withdrawn = sam_invoke(sam, "withdraw", load_event("withdraw", **ids), name)
    assert withdrawn.status == 201, withdrawn
    balance = opening + amount - withdrawn.body["entries"][0]["amount"]
    assert service.get_wallet(rider).balance == balance

    transferred = sam_invoke(sam, "transfer", load_event("transfer", **ids), name)
    assert transferred.status == 201, transferred
    sent = transferred.body["entries"][0]["amount"]
    assert (service.get_wallet(rider).balance, service.get_wallet(driver).balance) == (balance - sent, sent)
    assert transferred.body["counterpartyWallet"] is None

    held = sam_invoke(sam, "create_reservation", load_event("create_reservation", **ids), name)
    assert held.status == 201, held
    hold = held.body["reservation"]
    assert service.get_wallet(rider).held == hold["amount"]

    listed = sam_invoke(sam, "list_reservations", load_event("list_reservations", **ids), name)
    assert listed.status == 200, listed
    assert [item["id"] for item in listed.body["items"]] == [hold["id"]]

    fetched = sam_invoke(sam, "get_reservation", load_event("get_reservation", **ids, reservation=hold["id"]), name)
    assert (fetched.status, fetched.body["status"]) == (200, "HELD")

    raised = sam_invoke(
        sam, "increment_reservation", load_event("increment_reservation", **ids, reservation=hold["id"]), name
    )
    assert raised.status == 201, raised
    (more,) = raised.body["reservation"]["increments"]
    assert service.get_wallet(rider).held == hold["amount"] + more["amount"]

    captured = sam_invoke(
        sam, "capture_reservation", load_event("capture_reservation", **ids, reservation=hold["id"]), name
    )
    assert captured.status == 200, captured
    taken = captured.body["reservation"]["capturedAmount"]
    assert (service.get_wallet(rider).balance, service.get_wallet(rider).held) == (balance - sent - taken, 0)

    second = service.create_reservation(rider, 100).reservation.id
    released = sam_invoke(
        sam, "release_reservation", load_event("release_reservation", **ids, reservation=second), name
    )
    assert (released.status, released.body["reservation"]["status"]) == (200, "RELEASED")
    assert service.get_reservation(second).status == "RELEASED"

    journal = sam_invoke(sam, "list_transactions", load_event("list_transactions", **ids), name)
    assert journal.status == 200, journal
    assert journal.body["items"][0]["type"] == "RELEASE"

    alerted = sam_invoke(sam, "set_wallet_alerts", load_event("set_wallet_alerts", **ids), name)
    assert (alerted.status, alerted.body["alerts"]) == (200, {"availableBelow": 1000}), alerted
    # No bus under sam local (the template's GetAtt of the bus's name is left empty): the functions
    # deliver to a file inside their container (EVENTS_FILE, devtools/sam_local.py), so none waits.
    assert database["ledger"].count_documents({"kind": "event", "sent": False}) == 0
    assert_ledger_consistent(database)


ACCOUNT_EVENTS = ("open_account", "get_account", "list_account_transactions", "refund_reservation", "get_balance")


def test_the_platform_account_and_refund_events_in_containers(sam, ledger):
    name, database, service = ledger
    wallet = service.create_wallet("rider-42", "USD", opening_balance=900).wallet.id
    opened = sam_invoke(sam, "open_account", load_event("open_account"), name)
    assert (opened.status, opened.body["name"]) == (201, "@tips"), opened
    revenue = sam_invoke(sam, "get_account", load_event("get_account"), name)
    assert (revenue.status, revenue.body["balance"]) == (200, 0), revenue
    funding = sam_invoke(sam, "list_account_transactions", load_event("list_account_transactions"), name)
    assert funding.status == 200, funding
    assert [(item["walletId"], item["amount"]) for item in funding.body["items"]] == [(wallet, 900)]
    hold = service.create_reservation(wallet, 500).reservation.id
    service.capture_reservation(hold)
    refunded = sam_invoke(sam, "refund_reservation", load_event("refund_reservation", reservation=hold), name)
    assert (refunded.status, refunded.body["reservation"]["refundedAmount"]) == (201, 200), refunded
    balance = sam_invoke(sam, "get_balance", load_event("get_balance", rider=wallet), name)
    assert (balance.status, balance.body["sequence"]) == (200, 0), balance  # the event asks for a time before it
    assert_ledger_consistent(database)


def test_the_audit_and_migration_events_in_containers(sam, ledger):
    name, _, service = ledger
    service.create_wallet("rider-42", "USD", opening_balance=100)
    audited = sam_invoke(sam, "audit_ledger", load_event("audit_ledger"), name).body
    assert (audited["discrepancies"], audited["wallets"]) == (0, 1), audited
    migrated = sam_invoke(sam, "migrate_ledger", load_event("migrate_ledger"), name).body
    assert migrated == NOTHING_TO_MIGRATE
    rolled = sam_invoke(sam, "roll_checkpoints", load_event("roll_checkpoints"), name).body
    assert rolled == {"accounts": 1, "postings": 1, "finished": True}  # the opening balance's FUNDING
    assert service.get_account("@funding", "USD").balance == -100


def test_the_health_event_in_a_container(sam, ledger):
    answer = sam_invoke(sam, "health", load_event("health"), ledger[0])
    assert (answer.status, answer.body) == (200, {"status": "ok"})


def test_the_scheduled_expiry_event_in_a_container(sam, ledger):
    name, database, service = ledger
    wallet = service.create_wallet("rider-9", "USD", opening_balance=500).wallet.id
    due = service.create_reservation(wallet, 200, ttl_seconds=1).reservation.id
    kept = service.create_reservation(wallet, 100, ttl_seconds=3600).reservation.id
    time.sleep(1.1)
    report = sam_invoke(sam, "expire_reservations", load_event("expire_reservations"), name).body
    (expiry,) = service.list_transactions(wallet, entry_type="EXPIRE").items
    assert report == {
        "expired": 1,
        "skipped": 0,
        "failed": 0,
        "skippedReservationIds": [],
        "failedReservationIds": [],
        "operationIds": [expiry.operation_id],
    }
    assert (service.get_reservation(due).status, service.get_reservation(kept).status) == ("EXPIRED", "HELD")
    assert (service.get_wallet(wallet).held, service.get_wallet(wallet).available) == (100, 400)
    assert_ledger_consistent(database)


def test_the_publisher_event_in_a_container(sam, ledger):
    """No bus under sam local (the template's GetAtt of its name is left empty); with a file in the
    container for the bus (the template declares EVENTS_FILE for --env-vars), the publisher sends
    what is due and marks it sent."""
    name, database, service = ledger
    service.create_wallet("rider-9", "USD", opening_balance=500)
    variables = {"EVENTS_FILE": "/tmp/wallet-events.jsonl", "PUBLISH_OLDER_THAN_SECONDS": "0"}
    report = sam_invoke(sam, "publish_events", load_event("publish_events"), name, variables).body
    assert report == {"sent": 1, "failed": 0, "pending": 0}, report
    assert database["ledger"].count_documents({"kind": "event", "sent": False}) == 0


@pytest.fixture(scope="module")
def server(sam: SamLocal, tmp_path_factory) -> Iterator[Server]:
    """`make sam-api` (without its build: the fixture built once) on a free port, for the HTTP suite."""
    port = free_port()
    log = tmp_path_factory.mktemp("sam_api") / "server.log"
    database = f"wallet_sam_api_{uuid.uuid4().hex[:12]}"
    environment = {
        **os.environ,
        "MONGODB_URI": sam.uri,
        "MONGODB_DATABASE": database,
        "EXPIRY_INTERVAL_SECONDS": "1",
        "SAM_ARCH": sam.arch,
    }
    # Count only start-api's containers below: clear any `sam local invoke` container still being
    # torn down by the engine (seen on a loaded machine after the invoke tests).
    sam_local.stop_sam_containers()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.sam_local", "api", "--no-build", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    running = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        running.wait_until_healthy(API_START_SECONDS, "sam local start-api")
    except RuntimeError as error:
        pytest.fail(str(error))
    sam.record("start-api until /health answers (EAGER: every container started)", time.monotonic() - started)
    suite_started = time.monotonic()
    yield running
    sam.record("HTTP suite against start-api", time.monotonic() - suite_started)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    sam.client.drop_database(database)


# The end-to-end HTTP suite of `make run`, each test as tests/e2e/test_local_api.py has it, against the
# `server` above. Not here: what only the in-process server has (Swagger UI, its own busy-port and
# database messages, make invoke); Ctrl-C is the last test below.
test_the_story = http_suite.test_the_story
test_a_ride_raised_and_captured_in_two_parts = http_suite.test_a_ride_raised_and_captured_in_two_parts
test_the_schedule_expires_a_short_hold = http_suite.test_the_schedule_expires_a_short_hold
test_bad_tokens_are_401_before_any_handler_runs = http_suite.test_bad_tokens_are_401_before_any_handler_runs
test_admin_routes_need_the_scope = http_suite.test_admin_routes_need_the_scope
test_one_log_line_per_request = http_suite.test_one_log_line_per_request


def test_requests_ran_in_lambda_containers(server):
    """The answers came from SAM's containers: every function has a warm one, started eagerly.

    SAM CLI may add a second container for a function that is asked while its first is busy
    (seen now and then on this 2-core machine), so the set of functions is what is compared."""
    assert set(sam_local.sam_containers(running_only=True).values()) == set(load_functions())


def test_ctrl_c_stops_sam_and_its_containers(server):
    """Last in this module: it stops the shared server."""
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=120) == 0
    assert server.log.read_text().rstrip().endswith("stopped")
    assert sam_local.sam_containers() == {}  # this run's; other runs' on the engine are theirs
