"""Every metric template.yaml's alarms and dashboard name is one that exists.

The Wallet namespace's metrics are collected from what the functions really emit: the real handlers,
in process, through successes, refusals, failures (500 and 503) and the scheduled jobs, their
Powertools EMF documents read back from stdout. Each metric an alarm or a widget names must be
emitted with exactly its dimensions, and with the values it names. AWS namespaces are checked
against what those services publish (AWS_PUBLISHED), and their dimension values must name this
template's resources. Plain parsing of the template: `make sam-validate` lints it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools.lambda_inputs import scheduled_event
from tests.lambda_harness import LambdaContext, function_module, http_event, invoke
from tests.tooling.test_template import functions, http_events, template
from wallet_lambda import runtime

# The functions' namespace, as the template gives it to them.
WALLET = template()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
DASHBOARD = "WalletDashboard"
ADMIN = ("wallet:admin",)
ANY = None  # a SEARCH's or a SCHEMA's dimension: every value
PSEUDO_PARAMETERS = {"AWS::Region", "AWS::AccountId", "AWS::StackName", "AWS::Partition", "AWS::URLSuffix"}


@dataclass(frozen=True)
class Published:
    metrics: frozenset[str]
    dimension_sets: frozenset[frozenset[str]]


def published(metrics: set[str], *dimension_sets: set[str]) -> Published:
    return Published(frozenset(metrics), frozenset(frozenset(names) for names in dimension_sets))


# What AWS publishes, for the namespaces the template names. API Gateway's are an HTTP API's (a REST
# API's say 4XXError, 5XXError and ApiName); per route only with the stage's detailed metrics.
AWS_PUBLISHED = {
    "AWS/ApiGateway": published(
        {"4xx", "5xx", "Count", "Latency", "IntegrationLatency", "DataProcessed"},
        {"ApiId"},
        {"ApiId", "Stage"},
        {"ApiId", "Stage", "Route"},
    ),
    "AWS/Lambda": published(
        {"Errors", "Throttles", "Invocations", "Duration", "ConcurrentExecutions"}, {"FunctionName"}
    ),
    "AWS/SQS": published(
        {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "NumberOfMessagesSent"}, {"QueueName"}
    ),
}


@dataclass
class MetricReference:
    """A metric an alarm or a widget names: dimension values as the template writes them (a literal,
    or `${Resource}` / `${Resource.Attribute}` for a Ref or a GetAtt), ANY for a search's."""

    where: str
    namespace: str
    name: str
    dimensions: dict[str, str | None]


# ---------------------------------------------------------------- what the template names


def resources() -> dict[str, dict]:
    return template()["Resources"]


def written(value: object) -> str:
    """A dimension value as the dashboard's !Sub writes it: `${Name}`, `${Name.Attribute}`, or itself."""
    if isinstance(value, dict) and "Ref" in value:
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    assert isinstance(value, str), value
    return value


def alarm_references() -> Iterator[MetricReference]:
    for name, resource in resources().items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        if "MetricName" in properties:
            yield MetricReference(name, properties["Namespace"], properties["MetricName"], dimensions_of(properties))
            continue
        ids = {query["Id"] for query in properties["Metrics"]}
        for query in properties["Metrics"]:
            where = f"{name} {query['Id']}"
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                yield MetricReference(where, metric["Namespace"], metric["MetricName"], dimensions_of(metric))
            elif query["Expression"].lstrip().upper().startswith("SELECT"):
                yield insights_reference(where, query["Expression"])
            else:  # metric math (functions in capitals) on the alarm's other queries; an alarm cannot SEARCH
                assert "SEARCH" not in query["Expression"].upper(), where
                assert set(re.findall(r"\b[a-z]\w*\b", query["Expression"])) <= ids, where


def dimensions_of(metric: dict) -> dict[str, str | None]:
    return {item["Name"]: written(item["Value"]) for item in metric.get("Dimensions", [])}


def dashboard_body() -> str:
    return resources()[DASHBOARD]["Properties"]["DashboardBody"]["Fn::Sub"]


def dashboard_references() -> Iterator[MetricReference]:
    """Each widget's metrics: rows [namespace, name, dimension, value, ..., {options}] where "." repeats
    the previous row's item, and {"expression": ...} rows (SEARCH, or math on the other rows)."""
    for widget in json.loads(dashboard_body())["widgets"]:
        title = widget["properties"].get("title", "")
        previous: list[str] = []
        for row in widget["properties"].get("metrics", []):
            items = [item for item in row if not isinstance(item, dict)]
            options = next((item for item in row if isinstance(item, dict)), {})
            if not items:
                expression = options["expression"]
                if expression.lstrip().upper().startswith("SEARCH"):
                    yield search_reference(f"dashboard: {title}", expression)
                continue
            items = [previous[index] if item == "." else item for index, item in enumerate(items)]
            previous = items
            namespace, name, *pairs = items
            assert len(pairs) % 2 == 0, (title, row)
            yield MetricReference(
                f"dashboard: {title}", namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))
            )


SEARCH = re.compile(r"SEARCH\(\s*'\s*\{(?P<schema>[^}]*)\}(?P<terms>[^']*)'\s*,\s*'[^']+'(?:\s*,\s*\d+)?\s*\)")
TERM = re.compile(r'\s*(?P<key>\w+)\s*=\s*"(?P<value>[^"]*)"\s*')
INSIGHTS = re.compile(
    r"SELECT\s+\w+\(\s*\"?(?P<name>\w+)\"?\s*\)\s+FROM\s+SCHEMA\((?P<schema>[^)]*)\)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+(?:GROUP|ORDER)\s+BY\s.*|\s+LIMIT\s.*)?$",
    re.IGNORECASE | re.DOTALL,
)
CONDITION = re.compile(r"\s*\"?(?P<key>\w+)\"?\s*=\s*'(?P<value>[^']*)'\s*")


def schema(text: str) -> tuple[str, list[str]]:
    """A SEARCH's {Namespace,Dimension,...} or a SCHEMA(namespace, label, ...): its namespace and dimensions."""
    namespace, *dimensions = (part.strip().strip('"') for part in text.split(","))
    return namespace, dimensions


def search_reference(where: str, expression: str) -> MetricReference:
    """SEARCH('{Namespace,Dimension,...} Dimension="value" MetricName="Name"', 'Stat', period): each
    term a quoted exact match; a free-text term would match what this test cannot know."""
    match = SEARCH.fullmatch(expression.strip())
    assert match, f"{where}: not a SEARCH this test reads: {expression}"
    namespace, dimensions = schema(match["schema"])
    terms = match["terms"].strip()
    assert TERM.sub("", terms) == "", f'{where}: only Name="value" terms, not {terms!r}'
    filters = {term["key"]: term["value"] for term in TERM.finditer(terms)}
    name = filters.pop("MetricName", None)
    assert name, f"{where}: a SEARCH names its MetricName"
    assert set(filters) <= set(dimensions), f"{where}: filters {sorted(filters)} outside the schema {dimensions}"
    return MetricReference(where, namespace, name, {dimension: filters.get(dimension, ANY) for dimension in dimensions})


def insights_reference(where: str, query: str) -> MetricReference:
    """SELECT FUNCTION(Name) FROM SCHEMA(namespace, label, ...) [WHERE label = 'value' AND ...]."""
    match = INSIGHTS.fullmatch(query.strip())
    assert match, f"{where}: not a Metrics Insights query this test reads: {query}"
    namespace, dimensions = schema(match["schema"])
    conditions = re.split(r"\s+AND\s+", match["where"] or "", flags=re.IGNORECASE)
    filters = {}
    for condition in filter(None, conditions):
        parsed = CONDITION.fullmatch(condition)
        assert parsed, f"{where}: only label = 'value' conditions, not {condition!r}"
        filters[parsed["key"]] = parsed["value"]
    assert set(filters) <= set(dimensions), f"{where}: conditions {sorted(filters)} outside the schema {dimensions}"
    return MetricReference(
        where, namespace, match["name"], {dimension: filters.get(dimension, ANY) for dimension in dimensions}
    )


def all_references() -> list[MetricReference]:
    return [*alarm_references(), *dashboard_references()]


# ---------------------------------------------------------------- what exists


Emitted = dict[tuple[str, str, frozenset[str]], dict[str, set[str]]]


def emitted_metrics(stdout: str) -> Emitted:
    """(namespace, metric, dimension names) -> each dimension's values, from Powertools' EMF lines."""
    emitted: Emitted = defaultdict(lambda: defaultdict(set))
    for line in stdout.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                for metric in directive["Metrics"]:
                    values = emitted[(directive["Namespace"], metric["Name"], frozenset(dimension_set))]
                    for dimension in dimension_set:
                        values[dimension].add(document[dimension])
    return emitted


def dead_letter_queues() -> set[str]:
    """Queues SAM creates for a schedule's DeadLetterConfig, by the logical id the template gives them."""
    return {
        event["Properties"]["DeadLetterConfig"]["QueueLogicalId"]
        for function in functions().values()
        for event in (function["Properties"].get("Events") or {}).values()
        if event["Type"] == "Schedule" and "QueueLogicalId" in event["Properties"].get("DeadLetterConfig", {})
    }


def resource_dimension_values() -> dict[str, set[str]]:
    """The values an AWS dimension may take: this template's resources, as the template writes them."""
    of_type = {
        kind: {name for name, resource in resources().items() if resource["Type"] == kind}
        for kind in ("AWS::Serverless::HttpApi", "AWS::Serverless::Function", "AWS::SQS::Queue")
    }
    apis = of_type["AWS::Serverless::HttpApi"]
    assert all("StageName" not in resources()[api].get("Properties", {}) for api in apis)  # SAM's $default stage
    return {
        "ApiId": {f"${{{api}}}" for api in apis},
        "Stage": {"$default"},
        "Route": {f"{event['Method'].upper()} {event['Path']}" for name in functions() for event in http_events(name)},
        "FunctionName": {f"${{{name}}}" for name in of_type["AWS::Serverless::Function"]},
        "QueueName": {f"${{{queue}.QueueName}}" for queue in of_type["AWS::SQS::Queue"] | dead_letter_queues()},
    }


def problems_with(reference: MetricReference, emitted: Emitted) -> list[str]:
    where, namespace, name = reference.where, reference.namespace, reference.name
    dimensions = frozenset(reference.dimensions)
    fixed = {dimension: value for dimension, value in reference.dimensions.items() if value is not ANY}
    if namespace == WALLET:
        values = emitted.get((namespace, name, dimensions))
        if values is None:
            known = sorted(sorted(names) for ns, metric, names in emitted if (ns, metric) == (namespace, name))
            return [f"{where}: no function emits {name} with dimensions {sorted(dimensions)} (emitted with: {known})"]
        return [
            f"{where}: {name} is never emitted with {dimension}={value!r} (only {sorted(values[dimension])})"
            for dimension, value in fixed.items()
            if value not in values[dimension]
        ]
    if namespace not in AWS_PUBLISHED:
        return [f"{where}: {namespace} is neither the functions' namespace nor a known AWS one"]
    service = AWS_PUBLISHED[namespace]
    problems = []
    if name not in service.metrics:
        problems.append(f"{where}: {namespace} publishes no {name}")
    if dimensions not in service.dimension_sets:
        problems.append(f"{where}: {namespace} publishes nothing by {sorted(dimensions)}")
    allowed = resource_dimension_values()
    for dimension, value in fixed.items():
        if value not in allowed.get(dimension, set()):
            problems.append(f"{where}: {dimension}={value!r} names nothing of this template")
    return problems


# ---------------------------------------------------------------- the functions, for real


@pytest.fixture
def emitted(lambda_env, monkeypatch, tmp_path, capsys) -> Emitted:
    """What every function emits through a day of the service: answers, refusals, failures, schedules."""
    monkeypatch.setenv("EVENTS_FILE", str(tmp_path / "events.jsonl"))  # a sink, for the publisher
    runtime.reset()
    capsys.readouterr()
    run_the_service(monkeypatch)
    return emitted_metrics(capsys.readouterr().out)


def money(function: str, route: str, parameters: dict | None, body: dict | None, key: str, **options):
    return invoke(function, http_event("POST", route, parameters, body=body, idempotency_key=key, **options))


def run_the_service(monkeypatch) -> dict[str, int]:
    """Every kind of answer: each money operation (one replayed), reads, a refusal before and one
    after routing, an unexpected error (500) and a database that is away (503), then each schedule."""
    opened = invoke(
        "create_wallet",
        http_event(
            "POST",
            "/v1/wallets",
            body={"currency": "USD", "ownerId": "rider-42", "openingBalance": 10_000},
            sub="ops",
            scopes=ADMIN,
        ),
    )
    assert opened.status == 201, opened
    rider = opened.body["wallet"]["id"]
    driver = invoke("create_wallet", http_event("POST", "/v1/wallets", body={"currency": "USD"}, sub="driver-7"))
    driver = driver.body["wallet"]["id"]
    wallet = {"walletId": rider}
    answers = {
        "deposit": money("deposit", "/v1/wallets/{walletId}/deposits", wallet, {"amount": 2_500}, "d1").status,
        "replay": money("deposit", "/v1/wallets/{walletId}/deposits", wallet, {"amount": 2_500}, "d1").status,
        "withdraw": money("withdraw", "/v1/wallets/{walletId}/withdrawals", wallet, {"amount": 700}, "w1").status,
        "transfer": money(
            "transfer", "/v1/transfers", None, {"fromWalletId": rider, "toWalletId": driver, "amount": 300}, "t1"
        ).status,
    }
    hold = money("create_reservation", "/v1/wallets/{walletId}/reservations", wallet, {"amount": 1_000}, "h1")
    held = {"reservationId": hold.body["reservation"]["id"]}
    answers["raise"] = money(
        "increment_reservation", "/v1/reservations/{reservationId}/increments", held, {"amount": 200}, "i1"
    ).status
    answers["capture"] = money(
        "capture_reservation", "/v1/reservations/{reservationId}/capture", held, {"amount": 400}, "c1"
    ).status  # final: the other 800 is released
    answers["refund"] = money(
        "refund_reservation",
        "/v1/reservations/{reservationId}/refunds",
        held,
        {"amount": 150},
        "r1",
        sub="ops",
        scopes=ADMIN,
    ).status
    other = money("create_reservation", "/v1/wallets/{walletId}/reservations", wallet, {"amount": 50}, "h2")
    answers["release"] = money(
        "release_reservation",
        "/v1/reservations/{reservationId}/release",
        {"reservationId": other.body["reservation"]["id"]},
        None,
        "rl1",
    ).status
    answers["read"] = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", wallet)).status
    answers["health"] = invoke("health", http_event("GET", "/health", sub=None)).status
    answers["no key"] = money("deposit", "/v1/wallets/{walletId}/deposits", wallet, {"amount": 1}, None).status
    answers["too much"] = money(
        "withdraw", "/v1/wallets/{walletId}/withdrawals", wallet, {"amount": 10**9}, "w2"
    ).status

    def unexpected(*args, **kwargs):
        raise RuntimeError("a bug")

    from wallet_service import WalletService

    with monkeypatch.context() as patched:
        patched.setattr(WalletService, "get_wallet", unexpected)
        answers["bug"] = invoke("get_wallet", http_event("GET", "/v1/wallets/{walletId}", wallet)).status
    for job in ("expire_reservations", "audit_ledger", "publish_events", "roll_checkpoints"):
        function_module(job).lambda_handler(scheduled_event(f"wallet-{job}"), LambdaContext())
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=300")
    runtime.reset()
    answers["away"] = invoke("health", http_event("GET", "/health", sub=None), LambdaContext(timeout_seconds=1)).status
    assert answers == {
        "deposit": 201, "replay": 201, "withdraw": 201, "transfer": 201, "raise": 201, "capture": 200,
        "refund": 201, "release": 200, "read": 200, "health": 200, "no key": 400, "too much": 409,
        "bug": 500, "away": 503,
    }  # fmt: skip
    return answers


# ---------------------------------------------------------------- the checks


def test_every_metric_the_alarms_and_the_dashboard_name_exists(emitted):
    references = all_references()
    assert {reference.namespace for reference in references} == {WALLET, *AWS_PUBLISHED}
    problems = [problem for reference in references for problem in problems_with(reference, emitted)]
    assert problems == []


def test_the_check_fails_on_a_metric_that_does_not_exist(emitted):
    """The check above can fail: each of these is one mistake away from a metric the template names."""
    api = {"ApiId": "${WalletApi}", "Stage": "$default"}
    wrong = {
        "a typo": (WALLET, "AmountsMoved", {"currency": ANY, "operation": ANY, "service": ANY}),
        "a dimension short": (WALLET, "Failed", {"operation": ANY}),
        "a value never emitted": (WALLET, "HoldsFailed", {"operation": "AuditLedger", "service": "wallet"}),
        "a REST API's name": ("AWS/ApiGateway", "5XXError", api),
        "a route it lacks": ("AWS/ApiGateway", "Count", {**api, "Route": "GET /v1/users"}),
        "no such function": ("AWS/Lambda", "Errors", {"FunctionName": "${Deposits}"}),
        "by function and queue": ("AWS/Lambda", "Errors", {"FunctionName": ANY, "QueueName": ANY}),
        "a literal queue": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "expiry-dlq"}),
        "a namespace of no one": ("Wallets", "Failed", {"operation": ANY, "service": ANY}),
    }
    for where, (namespace, name, dimensions) in wrong.items():
        assert problems_with(MetricReference(where, namespace, name, dimensions), emitted), where
    right = MetricReference(
        "right", WALLET, "AmountMoved", {"currency": "USD", "operation": "Deposit", "service": "wallet"}
    )
    assert problems_with(right, emitted) == []


def test_amount_moved_counts_what_each_operation_moved(lambda_env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("EVENTS_FILE", str(tmp_path / "events.jsonl"))
    runtime.reset()
    capsys.readouterr()
    run_the_service(monkeypatch)
    moved = [
        (document["operation"], document["currency"], document["service"], document["AmountMoved"][0])
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"AmountMoved"' in line
        for document in [json.loads(line)]
    ]
    # The opening balance, the deposit once (its replay moved nothing), the withdrawal, the transfer
    # once (not both sides), what the capture took (not the 800 it released), the refund; the hold,
    # its raise and the release moved none.
    assert moved == [
        ("CreateWallet", "USD", "wallet", 10_000),
        ("Deposit", "USD", "wallet", 2_500),
        ("Withdraw", "USD", "wallet", 700),
        ("Transfer", "USD", "wallet", 300),
        ("CaptureReservation", "USD", "wallet", 400),
        ("RefundReservation", "USD", "wallet", 150),
    ]


def test_every_function_has_an_errors_and_a_throttles_alarm():
    alarmed = {
        (reference.name, reference.dimensions["FunctionName"])
        for reference in alarm_references()
        if reference.namespace == "AWS/Lambda"
    }
    assert alarmed == {(metric, f"${{{name}}}") for name in functions() for metric in ("Errors", "Throttles")}


def test_every_alarm_notifies_the_topic_on_alarm_and_on_ok():
    notify = [{"Fn::If": ["CreateAlarmTopic", {"Ref": "AlarmTopic"}, {"Ref": "AlarmTopicArn"}]}]
    alarms = {name: r["Properties"] for name, r in resources().items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"LedgerDiscrepancyAlarm", "WalletMismatchAlarm", "EventsFailedAlarm"} <= set(alarms)
    for name, properties in alarms.items():
        assert (properties["AlarmActions"], properties["OKActions"]) == (notify, notify), name
        assert properties["TreatMissingData"] == "notBreaching", name  # no traffic is no trouble
    topic = resources()["AlarmTopic"]
    assert (topic["Type"], topic["Condition"]) == ("AWS::SNS::Topic", "CreateAlarmTopic")
    assert template()["Conditions"]["CreateAlarmTopic"] == {"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}
    assert template()["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template()["Outputs"]["AlarmTopicArn"]["Value"] == notify[0]


def test_the_dashboard_names_only_what_the_template_has():
    names = set(re.findall(r"\$\{([^}]+)\}", dashboard_body()))
    known = set(resources()) | dead_letter_queues() | set(template()["Parameters"]) | PSEUDO_PARAMETERS
    assert {name.split(".", 1)[0] for name in names} <= known
    titles = [widget["properties"]["title"] for widget in json.loads(dashboard_body())["widgets"]]
    assert len(titles) == len(set(titles))
