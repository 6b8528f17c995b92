"""How `make importtime` (devtools/importtime.py) reads a child's output, and the connections one
function's container holds, counted for real in a child against the tests' database."""

from __future__ import annotations

import json

import pytest

from devtools.importtime import (
    CONNECTION_MOMENTS,
    PHASE,
    RESULT,
    Database,
    Result,
    connections_report,
    events_for,
    measure_once,
    parse,
    parse_invocation,
    table,
)
from wallet_lambda.runtime import CLIENT_SETTINGS, connections_per_container

# -X importtime output: post-order, two spaces of indent per level; then the phases' own imports.
STDERR = f"""import time: self [us] | cumulative | imported package
import time:       500 |        500 | site
import time:      1000 |       1000 |     pydantic_core
import time:      2000 |       3000 |   pydantic
import time:       300 |        300 |     wallet_service.ledger.models
import time:      4000 |       4000 |     pymongo
import time:       200 |       4500 |   wallet_service
import time:       100 |       7600 | app
{PHASE}init
import time:       700 |        700 |   pymongo.srv_resolver
import time:       100 |        800 | pymongo.helpers_shared
{PHASE}first
import time:       900 |        900 | decimal
{PHASE}warm
{PHASE}end
"""


def test_the_import_and_its_dependencies_by_package():
    sample = parse(STDERR)
    assert sample.cumulative_us == 7600
    # pydantic as app imported it (with pydantic_core inside), pymongo as wallet_service imported it
    assert sample.dependencies_us == {"pydantic": 3000, "pymongo": 4000}


def test_each_phase_keeps_its_own_imports():
    stdout = (
        'log line\n{"_aws": {}}\n'
        + RESULT
        + json.dumps({"init_us": 9000, "first_us": 5000, "warm_us": 2000, "statuses": [201, 201]})
    )
    sample, statuses = parse_invocation(stdout, STDERR, parse(STDERR))
    assert statuses == [201, 201]
    assert sample.phases_us == {"init": 9000, "first": 5000, "warm": 2000}
    assert sample.lazy_imports_us == {"init": {"pymongo": 800}, "first": {"decimal": 900}, "warm": {}}


def test_a_child_without_its_result_line_is_an_error():
    with pytest.raises(ValueError, match="importtime-result"):
        parse_invocation("Traceback ...", STDERR, parse(STDERR))


def test_the_warm_call_names_other_documents_and_another_key():
    rider, driver, hold = "65f0c0ffee0000000000a001", "65f0c0ffee0000000000a002", "65f0c0ffee0000000000b001"
    first_ids = {rider: "a" * 24, driver: "b" * 24, hold: "e" * 24}
    warm_ids = {rider: "c" * 24, driver: "d" * 24, hold: "f" * 24}
    events = events_for("transfer", (first_ids, warm_ids))
    first, warm = (json.loads(events[name]["body"]) for name in ("first", "warm"))
    assert (first["fromWalletId"], first["toWalletId"]) == ("a" * 24, "b" * 24)
    assert (warm["fromWalletId"], warm["toWalletId"]) == ("c" * 24, "d" * 24)
    assert events["warm"]["headers"]["idempotency-key"] == events["first"]["headers"]["idempotency-key"] + "-warm"
    opened = events_for("create_wallet", None)
    claims = [opened[name]["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] for name in ("first", "warm")]
    assert claims == ["rider-42", "rider-42-warm"]


def test_the_table_adds_up_the_cold_start():
    result = Result(
        "deposit",
        250.0,
        [("aws_lambda_powertools", 165.0), ("pymongo", 43.0)],
        {"init": 8.0, "first": 6.0, "warm": 4.5},
        {"init": 0.0, "first": 0.2, "warm": 0.0},
        [("decimal", 0.2)],
    )
    assert result.cold_start_ms == 264.0
    assert table([result]).splitlines()[-1] == (
        "| deposit | 250 | 8 | 6 | 264 | 4.5 | aws_lambda_powertools 165, pymongo 43 | none |"
    )


def test_the_connections_counted_are_kept_with_the_timings():
    counted = {"before": {"total": 0, "pool": 0}, "first": {"total": 2, "pool": 1}, "warm": {"total": 2, "pool": 1}}
    timings = {"init_us": 1, "first_us": 1, "warm_us": 1, "statuses": [200, 200], "connections": counted}
    sample, _ = parse_invocation(RESULT + json.dumps(timings), STDERR, parse(STDERR))
    assert sample.connections == counted


def test_the_report_shows_the_connections_and_the_formula():
    held = {"before": {"total": 0, "pool": 0}, "first": {"total": 2, "pool": 1}, "warm": {"total": 2, "pool": 1}}
    results = [Result(name, 1.0, [], connections=held) for name in ("deposit", "health")]
    report, as_predicted = connections_report(results)
    on_primary, on_secondary = connections_per_container()
    assert as_predicted
    assert "| all 2 | 0 | 2 (1 pool, 1 monitoring) | 2 (1 pool, 1 monitoring) |" in report
    assert f"= {on_primary} x C" in report
    assert f"= {on_secondary} x C" in report
    grown = {**held, "warm": {"total": on_primary + 1, "pool": on_primary}}
    report, as_predicted = connections_report([*results, Result("transfer", 1.0, [], connections=grown)])
    assert not as_predicted
    assert report.splitlines()[-1] == "MORE THAN THE SETTINGS PREDICT: transfer"


def test_a_warm_container_holds_what_its_client_settings_predict(mongo_uri, mongo_client):
    """One real child (the deposit function, as `make importtime` runs it): nothing before its first
    call, then its pool and one monitor on this one server, and no more after several warm calls."""
    sample = measure_once(
        "deposit", lambda_env=True, database=Database(mongo_uri, mongo_client), count_connections=True
    )
    pool = CLIENT_SETTINGS["maxPoolSize"]
    on_primary, _ = connections_per_container()
    assert set(sample.connections) == set(CONNECTION_MOMENTS)
    assert sample.connections["before"] == {"total": 0, "pool": 0}
    assert sample.connections["first"] == sample.connections["warm"] == {"total": on_primary, "pool": pool}
