"""`make run` and `make invoke`: the bundle on this machine, without Docker.

`make run` serves every route of template.yaml on 127.0.0.1:PORT with SAM CLI's own local API
machinery (its template parsing, route table, Flask server and API Gateway HTTP API v2 event
construction). Only the container runner is replaced: `ContainerRunner` checks the bearer token
as the template's JWT authorizer would (with the local development key of
devtools/local_auth.py), then hands the event to one of the function's local containers, each a
process of its own that runs the real handler one invocation at a time, as many at once as requests
come, as Lambda scales out (devtools/container_pool.py, devtools/lambda_container.py); every
function's first container starts with the server, so no first request waits for a cold start
(LOCAL_WARM=0: each on first use, as the tests' servers do unless they ask). The scheduled
functions run on the template's schedules (EXPIRY_INTERVAL_SECONDS, AUDIT_INTERVAL_SECONDS and
PUBLISH_INTERVAL_SECONDS shorten them), Swagger UI is at /docs and the spec at /openapi.json. The
database is the embedded one on .local/db (kept across runs) unless MONGODB_URI is set. The event
bus is a file: every event the functions publish is appended to .local/events.jsonl (beside the
database's folder when DB_PATH moves it; EVENTS_FILE chooses another), one JSON line each as
EventBridge hands an event to a target, and logged as one line. EVENTS_FILE=off runs with no bus, as
a deployment without EVENT_BUS_NAME: the events wait in the outbox and PublishEvents is not scheduled
(`make bench` compares a deposit's latency both ways).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from devtools.container_pool import ContainerPool
from devtools.gateway import access_line, authorize, function_failed
from devtools.lambda_container import FunctionError
from devtools.lambda_inputs import scheduled_event
from devtools.paths import LOCAL, OPENAPI, ROOT, TEMPLATE

TEMPLATE = TEMPLATE
DEFAULT_PORT = 3000
RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def _log(message: str) -> None:
    print(f"{datetime.now().strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


@dataclass
class LocalFunction:
    """One AWS::Serverless::Function of the template, served by a container process of its own."""

    name: str
    code_dir: Path
    timeout_seconds: int
    public: bool  # an HTTP route without the JWT authorizer (Auth: {Authorizer: NONE})
    schedule: str | None

    def __post_init__(self) -> None:
        self.containers = ContainerPool(self.name, self.code_dir, self.timeout_seconds)

    def invoke(self, event: dict) -> object:
        """The handler's response; FunctionError if it raised, crashed or timed out. The function's
        work after the answer starts at once."""
        return self.containers.invoke(event)


def load_functions(template_path: Path = TEMPLATE) -> dict[str, LocalFunction]:
    from samcli.yamlhelper import yaml_parse

    template = yaml_parse(template_path.read_text())
    globals_ = template.get("Globals", {}).get("Function", {})
    parameters = {name: spec.get("Default") for name, spec in template.get("Parameters", {}).items()}
    functions = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        events = (properties.get("Events") or {}).values()
        public = any(
            event["Type"] == "HttpApi" and (event["Properties"].get("Auth") or {}).get("Authorizer") == "NONE"
            for event in events
        )
        schedules = [event["Properties"]["Schedule"] for event in events if event["Type"] == "Schedule"]
        schedule = schedules[0] if schedules else None
        if isinstance(schedule, dict) and "Ref" in schedule:
            schedule = parameters.get(schedule["Ref"])
        functions[name] = LocalFunction(
            name=name,
            code_dir=ROOT / properties["CodeUri"],
            timeout_seconds=int(properties.get("Timeout", globals_.get("Timeout", 3))),
            public=public,
            schedule=schedule,
        )
    return functions


class ContainerRunner:
    """What SAM CLI's local API service calls to run a function: here, its local container process."""

    def __init__(self, functions: dict[str, LocalFunction]) -> None:
        self._functions = functions

    def is_debugging(self) -> bool:
        return False

    def invoke(self, function_name: str, event: str, stdout=None, stderr=None, **_ignored) -> None:
        started = time.perf_counter()
        request = json.loads(event)
        function = self._functions[function_name]
        response = None if function.public else authorize(request)
        if response is None:
            try:
                response, taken = function.containers.invoke_until_answered(request)
                _once_the_answer_has_left(taken.answer_left)
            except FunctionError as error:
                _log(f"{function_name} failed: {error}")
                response = function_failed()
        status = response.get("statusCode", 200) if isinstance(response, dict) else 200
        _log(access_line(request, status, started, function_name))
        if stdout is not None:
            stdout.write_str(json.dumps(response))


def _once_the_answer_has_left(callback) -> None:
    """Call `callback` once Flask has written the response of the request being served (as Lambda,
    which lets a function's extensions work on only once the answer is on its way)."""
    import flask

    def when_closed(response):
        response.call_on_close(callback)
        return response

    flask.after_this_request(when_closed)


# The variables that shorten a scheduled function's interval locally (the template's otherwise).
INTERVAL_VARIABLES = {
    "ExpireReservations": "EXPIRY_INTERVAL_SECONDS",
    "AuditLedger": "AUDIT_INTERVAL_SECONDS",
    "PublishEvents": "PUBLISH_INTERVAL_SECONDS",
    "RollCheckpoints": "CHECKPOINT_INTERVAL_SECONDS",
}
# What a scheduled run reports that is worth a line of the log when it is not zero.
NOTEWORTHY = ("expired", "skipped", "failed", "discrepancies", "sent", "pending", "postings")


def scheduled_run_summary(result: dict) -> str:
    """What a scheduled run did, in a few words ("expired 3, failed 1"); empty when it did nothing."""
    return ", ".join(f"{count} {result[count]}" for count in NOTEWORTHY if result.get(count))


def interval_seconds(function) -> float:
    override = os.environ.get(INTERVAL_VARIABLES.get(function.name, ""))
    return float(override) if override else schedule_seconds(function.schedule)


def schedule_seconds(expression: str) -> int:
    match = RATE.fullmatch(expression.strip())
    if not match:
        raise SystemExit(f"cannot run schedule {expression!r} locally: only rate(N unit) expressions are supported")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2).rstrip("s")]


class Scheduler(threading.Thread):
    """Runs each scheduled function every interval, as EventBridge would."""

    def __init__(self, functions: dict[str, LocalFunction]) -> None:
        super().__init__(name="local-schedule", daemon=True)
        self._jobs = [(function, interval_seconds(function)) for function in functions.values() if function.schedule]
        self._stop = threading.Event()

    def describe(self) -> str:
        return ", ".join(f"{function.name} every {interval:g} s" for function, interval in self._jobs) or "none"

    def run(self) -> None:
        next_run = {function.name: time.monotonic() + interval for function, interval in self._jobs}
        while not self._stop.wait(0.2):
            for function, interval in self._jobs:
                if time.monotonic() < next_run[function.name]:
                    continue
                next_run[function.name] = time.monotonic() + interval
                try:
                    result = function.invoke(scheduled_event(function.name))
                    if happened := scheduled_run_summary(result):
                        _log(f"schedule {function.name}: {happened}")
                except Exception as error:  # a failed run is retried at the next tick, as Lambda would retry it
                    _log(f"schedule {function.name} failed: {error!r}")

    def stop(self) -> None:
        self._stop.set()


EVENTS_FILE_NAME = "events.jsonl"
NO_BUS = "off"  # EVENTS_FILE's value for no bus at all


def events_file() -> Path | None:
    """Where the local bus's events go: EVENTS_FILE, else beside the embedded database's folder
    (.local/events.jsonl, or in DB_PATH's parent folder), else (MONGODB_URI, DB_PATH=:memory:) in .local."""
    chosen = os.environ.get("EVENTS_FILE")
    if chosen == NO_BUS:
        return None
    if chosen:
        return Path(chosen).resolve()
    from devtools.embedded_mongo import external_uri, local_storage_path

    storage = None if external_uri() else local_storage_path()
    return (storage.parent if storage is not None else LOCAL) / EVENTS_FILE_NAME


def _environment(uri: str) -> Path | None:
    """The functions' environment, as the template gives it, for the containers to inherit; returns
    the events file that stands for the bus (None: no bus)."""
    events = events_file()
    if events is None:
        os.environ.pop("EVENTS_FILE", None)
        os.environ.pop("EVENT_BUS_NAME", None)
    else:
        events.parent.mkdir(parents=True, exist_ok=True)
        os.environ["EVENTS_FILE"] = str(events)  # the functions' sink (it wins over an EVENT_BUS_NAME)
    os.environ["MONGODB_URI"] = uri
    os.environ.setdefault("MONGODB_DATABASE", "wallet")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "wallet")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Wallet")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    return events


def _database(cleanup: list) -> tuple[str, str]:
    """(URI, what it is): MONGODB_URI if set and reachable, else the embedded server on .local/db."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from devtools.embedded_mongo import DatabaseStartError, local_database

    try:
        uri, description = local_database(cleanup)
    except DatabaseStartError as error:
        raise SystemExit(f"cannot start the embedded database: {error}") from None
    if description != "MONGODB_URI":
        return uri, description
    client = MongoClient(uri, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except PyMongoError as error:
        raise SystemExit(f"MONGODB_URI is not reachable: {error.__class__.__name__}: {str(error)[:200]}") from None
    finally:
        client.close()
    return uri, description


def _port_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise SystemExit(
                f"port {port} on 127.0.0.1 is busy ({error.strerror}); choose another with PORT=..."
            ) from None


def serve(port: int) -> None:
    from samcli.lib.providers.api_provider import ApiProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider
    from samcli.local.apigw.local_apigw_service import LocalApigwService
    from samcli.local.docker.exceptions import ProcessSigTermException

    _port_free(port)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the runner logs one line per request
    cleanup: list = []
    try:
        uri, database = _database(cleanup)
        events = _environment(uri)
        from devtools.local_auth import DEFAULT_SCOPES, KEY_FILE, issue_token, signing_key
        from wallet_lambda import runtime

        runtime.wallet_service()  # create the indexes now, not on the first request
        runtime.reset()
        functions = load_functions()
        if events is None:
            del functions["PublishEvents"]  # nothing to publish to
        cleanup.extend(function.containers.stop for function in functions.values())
        if os.environ.get("LOCAL_WARM", "1") != "0":
            _keep_warm(functions)
        stacks, _ = SamLocalStackProvider.get_stacks(str(TEMPLATE))
        api = ApiProvider(stacks).api
        service = LocalApigwService(api=api, lambda_runner=ContainerRunner(functions), port=port, host="127.0.0.1")
        service.create()
        _as_http_api(service)
        _add_docs(service._app, port)
        scheduler = Scheduler(functions)
        scheduler.start()
        cleanup.append(scheduler.stop)
        signing_key()
        bus = (
            f"appended to {_shown(events)}, one JSON line each (the bus's stand-in)"
            if events is not None
            else f"no bus (EVENTS_FILE={NO_BUS}): they wait in the outbox"
        )
        print(
            f"wallet API on http://127.0.0.1:{port}  (Swagger UI: http://127.0.0.1:{port}/docs)\n"
            f"  database: {uri}\n    {database}\n"
            f"  routes: {len(api.routes)} from template.yaml; schedule: {scheduler.describe()}\n"
            f"  events: {bus}\n"
            f"  tokens: signed with the development key in {KEY_FILE.relative_to(ROOT)} "
            f"({signing_key().decode()[:8]}..., local only); make token SUB=alice [SCOPES=wallet:admin]\n"
            f"  alice's token ({' '.join(DEFAULT_SCOPES)}; 12 h), to paste into /docs' Authorize as it is "
            f"(a client sends it as Authorization: Bearer <token>):\n    {issue_token('alice')}\n"
            "  Ctrl-C stops",
            flush=True,
        )
        service.run()
    except (KeyboardInterrupt, ProcessSigTermException):  # Ctrl-C, or SIGTERM (SAM CLI's handler raises this)
        pass
    finally:
        for step in reversed(cleanup):
            began = time.monotonic()
            step()
            if time.monotonic() - began > 1:  # what a slow Ctrl-C waited on
                _log(f"stopping: {getattr(step, '__qualname__', step)} took {time.monotonic() - began:.1f} s")
        print("stopped", flush=True)


def _keep_warm(functions: dict[str, LocalFunction]) -> None:
    """Start every function's container now, in the background, and replace a lost one at once: the
    first request of each function and the retry of a killed one find it warm (in Lambda, a cold
    start costs a few hundred milliseconds; here, two cores importing the layer, seconds)."""
    began = time.monotonic()

    def warm_all() -> None:
        starting = [threading.Thread(target=function.containers.warm, daemon=True) for function in functions.values()]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()
        _log(f"functions warm: {len(starting)} containers in {time.monotonic() - began:.1f} s")

    for function in functions.values():
        function.containers.keep_warm = True
    threading.Thread(target=warm_all, name="warm-up", daemon=True).start()


def _shown(path: Path) -> str:
    """A path as short as it reads: relative to the repository when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _as_http_api(service) -> None:
    """Two answers where SAM CLI's local service (written for REST APIs too) differs from an HTTP API:
    no route is API Gateway's 404 {"message": "Not Found"} (not REST's 403 "Missing Authentication
    Token"), and a body that is not UTF-8 reaches the function base64-encoded with
    `isBase64Encoded: true` (SAM CLI answers 502 before any function runs)."""
    from flask import Response
    from samcli.local.apigw import local_apigw_service

    def not_found(_error) -> Response:
        return Response(json.dumps({"message": "Not Found"}), status=404, mimetype="application/json")

    service._app.register_error_handler(404, not_found)
    service._app.register_error_handler(405, not_found)
    construct = local_apigw_service.construct_v2_event_http
    if getattr(construct, "base64_when_not_utf8", False):
        return

    def construct_v2_event_http(flask_request, port, binary_types, *args, **kwargs):
        try:
            return construct(flask_request, port, binary_types, *args, **kwargs)
        except UnicodeDecodeError:
            return construct(flask_request, port, ["*/*"], *args, **kwargs)  # every type binary: base64

    construct_v2_event_http.base64_when_not_utf8 = True
    local_apigw_service.construct_v2_event_http = construct_v2_event_http


def _add_docs(app, port: int) -> None:
    """Swagger UI 5 (it reads OpenAPI 3.1) at /docs and the spec at /openapi.json, both served from
    local packages (flask-swagger-ui's copy of swagger-ui-dist; no CDN). Authorize takes a `make token`
    token once and keeps it across reloads; "Try it out" is on from the start."""
    from flask import Response
    from flask_swagger_ui import get_swaggerui_blueprint

    spec = json.loads((OPENAPI).read_text())
    spec["servers"] = [{"url": f"http://127.0.0.1:{port}", "description": "make run"}]
    config = {
        "app_name": "Wallet API",
        "layout": "BaseLayout",  # no top bar: this page documents this API only
        "persistAuthorization": True,
        "tryItOutEnabled": True,
        "displayRequestDuration": True,
        "showExtensions": True,
    }
    app.add_url_rule("/openapi.json", "openapi", lambda: Response(json.dumps(spec), mimetype="application/json"))
    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json", config=config))


def invoke_once(function_name: str, event_path: Path) -> None:
    """`make invoke`: run one function once and print its response, as `sam local invoke` does."""
    cleanup: list = []
    try:
        _environment(_database(cleanup)[0])
        functions = load_functions()
        if function_name not in functions:
            raise SystemExit(f"unknown function {function_name}; template.yaml has {', '.join(sorted(functions))}")
        event = json.loads(event_path.read_text())
        function = functions[function_name]
        cleanup.append(function.containers.stop)
        try:
            response = function.invoke(event)
        except FunctionError as error:
            raise SystemExit(f"{function_name} failed: {error}") from None
        print(json.dumps(response))
    finally:
        for step in reversed(cleanup):
            step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="serve the API")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT") or DEFAULT_PORT))
    invoke = commands.add_parser("invoke", help="run one function with one event")
    invoke.add_argument("function")
    invoke.add_argument("event", type=Path)
    arguments = parser.parse_args()
    if arguments.command == "run":
        # Ctrl-C stops it, even when it was started with SIGINT ignored (a background job, `make run &`).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        serve(arguments.port)
    else:
        invoke_once(arguments.function, arguments.event)


if __name__ == "__main__":
    main()
