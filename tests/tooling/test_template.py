"""template.yaml against the API's route table, the handler folders and the sample events in events/.

Plain file parsing, no SAM CLI: `make sam-validate` lints the template and `make sam-build` builds it.
"""

from __future__ import annotations

import json
import re
from functools import cache

import pytest
import yaml

from devtools.paths import EVENTS, FUNCTIONS, ROOT, TEMPLATE
from wallet_service.ledger.limits import ACCOUNT_NAME_PATTERN

TEMPLATE = TEMPLATE
FUNCTIONS = FUNCTIONS
EVENTS = EVENTS

# The HTTP contract: function logical id -> (method, path).
ROUTES = {
    "CreateWallet": ("POST", "/v1/wallets"),
    "GetWallet": ("GET", "/v1/wallets/{walletId}"),
    "GetBalance": ("GET", "/v1/wallets/{walletId}/balance"),
    "FreezeWallet": ("POST", "/v1/wallets/{walletId}/freeze"),
    "UnfreezeWallet": ("POST", "/v1/wallets/{walletId}/unfreeze"),
    "SetWalletAlerts": ("PUT", "/v1/wallets/{walletId}/alerts"),
    "Deposit": ("POST", "/v1/wallets/{walletId}/deposits"),
    "Withdraw": ("POST", "/v1/wallets/{walletId}/withdrawals"),
    "Transfer": ("POST", "/v1/transfers"),
    "CreateReservation": ("POST", "/v1/wallets/{walletId}/reservations"),
    "ListReservations": ("GET", "/v1/wallets/{walletId}/reservations"),
    "GetReservation": ("GET", "/v1/reservations/{reservationId}"),
    "IncrementReservation": ("POST", "/v1/reservations/{reservationId}/increments"),
    "CaptureReservation": ("POST", "/v1/reservations/{reservationId}/capture"),
    "ReleaseReservation": ("POST", "/v1/reservations/{reservationId}/release"),
    "RefundReservation": ("POST", "/v1/reservations/{reservationId}/refunds"),
    "ListTransactions": ("GET", "/v1/wallets/{walletId}/transactions"),
    "OpenAccount": ("POST", "/v1/accounts"),
    "GetAccount": ("GET", "/v1/accounts/{name}"),
    "ListAccountTransactions": ("GET", "/v1/accounts/{name}/transactions"),
    "Health": ("GET", "/health"),
}
SCHEDULED = {"ExpireReservations", "AuditLedger", "PublishEvents", "RollCheckpoints"}
INVOKED = {"MigrateLedger"}  # no trigger: an operator invokes it (the one-off migration)
PUBLIC = {"Health"}
ADMIN_ONLY = {
    "FreezeWallet",
    "UnfreezeWallet",
    "RefundReservation",
    "OpenAccount",
    "GetAccount",
    "ListAccountTransactions",
}
MONEY_MOVING = {
    "Deposit",
    "Withdraw",
    "Transfer",
    "CreateReservation",
    "IncrementReservation",
    "CaptureReservation",
    "ReleaseReservation",
    "RefundReservation",
}
# The functions that publish the outbox's events to the bus: every one that changes a wallet (named
# here independently of the table of operations' `publishes`, which the handlers read) and the two
# scheduled ones that publish what is due.
PUBLISHERS = {
    "CreateWallet",
    "FreezeWallet",
    "UnfreezeWallet",
    *MONEY_MOVING,
    "ExpireReservations",
    "PublishEvents",
}
API = "WalletApi"
AUTHORIZER = "JwtAuthorizer"
BUS = "WalletEventBus"


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that reads the short intrinsic forms (!Ref, !Sub, !GetAtt, !If, ...) as their long forms."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


@cache
def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)


def functions() -> dict[str, dict]:
    return {
        name: resource
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def function_property(name: str, key: str):
    """A function's property, falling back to Globals.Function as SAM does."""
    properties = functions()[name].get("Properties", {})
    if key in properties:
        return properties[key]
    return template().get("Globals", {}).get("Function", {}).get(key)


def snake_case(logical_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id).lower()


def http_events(name: str) -> list[dict]:
    events = functions()[name].get("Properties", {}).get("Events", {}) or {}
    return [event["Properties"] for event in events.values() if event["Type"] == "HttpApi"]


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{snake_case(name)}.json").read_text())


def test_the_template_declares_exactly_the_expected_functions():
    assert set(functions()) == set(ROUTES) | SCHEDULED | INVOKED


@pytest.mark.parametrize("name", sorted(set(ROUTES) | SCHEDULED | INVOKED))
def test_function_handler_code_folder_and_event_file(name):
    assert function_property(name, "Handler") == "app.lambda_handler"
    code_uri = (ROOT / function_property(name, "CodeUri")).resolve()
    assert code_uri.parent == FUNCTIONS, f"{name}: CodeUri {code_uri} is not a folder under functions/"
    assert code_uri.name == snake_case(name)
    assert code_uri.is_dir(), f"{name}: {code_uri} does not exist"
    assert (code_uri / "app.py").is_file(), f"{name}: {code_uri}/app.py is missing"
    assert (EVENTS / f"{snake_case(name)}.json").is_file(), f"{name}: events/{snake_case(name)}.json is missing"


def test_every_event_file_belongs_to_a_function():
    expected = {f"{snake_case(name)}.json" for name in functions()}
    assert {path.name for path in EVENTS.glob("*.json")} == expected


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_http_route_and_authorizer(name):
    (event,) = http_events(name)
    assert event["ApiId"] == {"Ref": API}
    assert (event["Method"].upper(), event["Path"]) == ROUTES[name]
    authorizer = (event.get("Auth") or {}).get("Authorizer", AUTHORIZER)
    assert authorizer == ("NONE" if name in PUBLIC else AUTHORIZER)


def test_the_api_uses_the_jwt_authorizer_by_default():
    auth = template()["Resources"][API]["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == AUTHORIZER
    authorizer = auth["Authorizers"][AUTHORIZER]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    # Whose tokens: tests/tooling/test_identity_and_edge.py.
    assert set(authorizer["JwtConfiguration"]) == {"issuer", "audience"}


def test_no_two_functions_share_a_route():
    routes = [(event["Method"].upper(), event["Path"]) for name in functions() for event in http_events(name)]
    assert len(routes) == len(set(routes))


def test_the_expiry_job_is_scheduled_with_retries_and_a_dead_letter_queue():
    properties = functions()["ExpireReservations"]["Properties"]
    assert http_events("ExpireReservations") == []
    (event,) = properties["Events"].values()
    assert event["Type"] == "Schedule"
    schedule = event["Properties"]
    assert schedule["Schedule"] == {"Ref": "ExpirySchedule"}
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert 60 <= schedule["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400
    assert schedule["DeadLetterConfig"]["Type"] == "SQS"
    assert function_property("ExpireReservations", "Timeout") == 60
    queue = schedule["DeadLetterConfig"]["QueueLogicalId"]
    outputs = [output["Value"] for output in template()["Outputs"].values()]
    assert {"Fn::GetAtt": [queue, "Arn"]} in outputs
    # A run that raises is retried asynchronously by Lambda, then parked in the same queue.
    invoke_config = properties["EventInvokeConfig"]
    assert invoke_config["MaximumRetryAttempts"] >= 1
    assert invoke_config["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": [queue, "Arn"]},
    }


@pytest.mark.parametrize("name", sorted(set(ROUTES) | SCHEDULED | INVOKED))
def test_every_function_may_read_only_the_configured_database_uri_and_publishers_put_events_on_the_bus(name):
    policies = function_property(name, "Policies")
    publish = [{"EventBridgePutEventsPolicy": {"EventBusName": {"Ref": BUS}}}] if name in PUBLISHERS else []
    assert policies == [
        {"Fn::If": ["UseSsm", {"Ref": "MongoUriParameterReadPolicy"}, {"Ref": "AWS::NoValue"}]},
        {"Fn::If": ["UseSecret", {"Ref": "MongoUriSecretReadPolicy"}, {"Ref": "AWS::NoValue"}]},
        *publish,
    ]


def test_the_publishers_are_the_rows_that_publish():
    from wallet_lambda.operations import PUBLISHERS as PUBLISHING_ROWS

    assert {operation.name for operation in PUBLISHING_ROWS} == PUBLISHERS


def test_the_event_bus_has_an_archive_and_every_function_knows_its_name():
    resources = template()["Resources"]
    bus = resources[BUS]
    assert bus["Type"] == "AWS::Events::EventBus"
    assert bus["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-wallet-events"}
    (archive,) = [resource for resource in resources.values() if resource["Type"] == "AWS::Events::Archive"]
    assert archive["Properties"]["SourceArn"] == {"Fn::GetAtt": [BUS, "Arn"]}
    assert archive["Properties"]["RetentionDays"] == {"Ref": "EventArchiveRetentionDays"}
    assert archive["Properties"]["EventPattern"] == {"source": ["wallet-service"]}
    retention = template()["Parameters"]["EventArchiveRetentionDays"]
    assert (retention["Type"], retention["MinValue"]) == ("Number", 0)
    assert retention["Default"] > 0
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    # GetAtt, not Ref: sam local resolves a Ref to the logical id (and would call the real EventBridge
    # with fake credentials), and leaves a GetAtt empty (no bus).
    assert variables["EVENT_BUS_NAME"] == {"Fn::GetAtt": [BUS, "Name"]}
    assert variables["EVENTS_FILE"] == ""  # a local file instead of the bus, set by make run
    for name in functions():  # SAM merges a function's own variables into these: none overrides the bus
        own = (functions()[name]["Properties"].get("Environment") or {}).get("Variables", {})
        assert not {"EVENT_BUS_NAME", "EVENTS_FILE"} & set(own), name
    outputs = {name: output["Value"] for name, output in template()["Outputs"].items()}
    assert outputs["EventBusName"] == {"Ref": BUS}
    assert outputs["EventBusArn"] == {"Fn::GetAtt": [BUS, "Arn"]}


def test_the_publisher_runs_every_minute_and_its_failures_raise_an_alarm():
    properties = functions()["PublishEvents"]["Properties"]
    assert http_events("PublishEvents") == []
    (event,) = properties["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "PublishSchedule"}
    assert template()["Parameters"]["PublishSchedule"]["Default"] == "rate(1 minute)"
    assert properties["Environment"]["Variables"]["PUBLISH_OLDER_THAN_SECONDS"] == "5"
    assert function_property("PublishEvents", "Timeout") == 60
    assert properties["EventInvokeConfig"]["MaximumRetryAttempts"] == 0  # the next run, a minute later, retries
    (alarm,) = [
        resource["Properties"]
        for resource in template()["Resources"].values()
        if resource["Type"] == "AWS::CloudWatch::Alarm" and resource["Properties"].get("MetricName") == "EventsFailed"
    ]
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert alarm["Namespace"] == variables["POWERTOOLS_METRICS_NAMESPACE"]
    assert {item["Name"]: item["Value"] for item in alarm["Dimensions"]} == {
        "operation": "PublishEvents",
        "service": "wallet",
    }
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"


def test_the_database_uri_policies_exist_only_for_their_source_and_name_their_actions():
    resources = template()["Resources"]
    assert resources["MongoUriParameterReadPolicy"]["Condition"] == "UseSsm"
    assert resources["MongoUriSecretReadPolicy"]["Condition"] == "UseSecret"
    for policy in ("MongoUriParameterReadPolicy", "MongoUriSecretReadPolicy"):
        for statement in resources[policy]["Properties"]["PolicyDocument"]["Statement"]:
            assert "*" not in json.dumps(statement["Action"]), f"{policy}: wildcard action {statement['Action']}"


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_http_event_matches_the_route(name):
    method, route = ROUTES[name]
    event = load_event(name)
    context = event["requestContext"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == context["routeKey"] == f"{method} {route}"
    assert context["http"]["method"] == method
    assert event["rawPath"] == context["http"]["path"]
    placeholders = re.findall(r"{(\w+)}", route)
    parameters = event.get("pathParameters") or {}
    assert sorted(parameters) == sorted(placeholders)
    expected_path = route
    for key, value in parameters.items():
        pattern = ACCOUNT_NAME_PATTERN if key == "name" else r"[0-9a-f]{24}"  # an account's name, or an id
        assert re.fullmatch(pattern, value), f"{key}={value!r} is not what the route takes"
        expected_path = expected_path.replace("{" + key + "}", value)
    assert event["rawPath"] == expected_path
    query = event.get("queryStringParameters") or {}
    assert event["rawQueryString"] == "&".join(f"{key}={value}" for key, value in query.items())
    assert event["isBase64Encoded"] is False
    if "body" in event:
        assert isinstance(json.loads(event["body"]), dict)
        assert event["headers"]["content-type"] == "application/json"


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_http_event_identity_and_idempotency_key(name):
    event = load_event(name)
    headers = event["headers"]
    assert all(key == key.lower() for key in headers), "HTTP APIs deliver header names in lower case"
    if name in PUBLIC:
        assert "authorizer" not in event["requestContext"]
        assert "authorization" not in headers
        return
    assert headers["authorization"].startswith("Bearer ")
    jwt = event["requestContext"]["authorizer"]["jwt"]
    assert jwt["claims"]["sub"]
    scopes = set(jwt["claims"]["scope"].split())
    assert scopes == set(jwt["scopes"])
    assert ("wallet:admin" in scopes) == (name in ADMIN_ONLY)
    assert ("idempotency-key" in headers) == (name in MONEY_MOVING)


@pytest.mark.parametrize("name", sorted(SCHEDULED))
def test_scheduled_event_is_an_eventbridge_scheduled_event(name):
    event = load_event(name)
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert len(event["resources"]) == 1
    assert re.fullmatch(r"arn:aws:events:[a-z0-9-]+:\d{12}:rule/\S+", event["resources"][0])
