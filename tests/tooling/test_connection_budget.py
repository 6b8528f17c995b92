"""The stack's connection budget: what every container the template's reserved concurrency allows
may hold on the primary, against MaxDatabaseConnections; and Lambda's unreserved executions.

Worst case: every function at its reserved concurrency, each container holding what its client's
settings allow (wallet_lambda.runtime.CLIENT_SETTINGS): its pool and one server's monitors on the
primary, the monitors alone on each secondary. Plain file parsing, as tests/tooling/test_template.py.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest

from devtools.samconfig import parameter_overrides
from tests.tooling.test_template import functions, template
from wallet_lambda import runtime
from wallet_lambda.operations import OPERATIONS, Operation

# Each function's reservation, by the kind of its row in the table of operations.
GROUP_PARAMETERS = {
    "write": "WriteFunctionConcurrency",  # an HTTP function that changes something
    "read": "ReadFunctionConcurrency",  # a GET route
    "job": "JobFunctionConcurrency",  # scheduled or invoked: no method
}
BUDGET_PARAMETER = "MaxDatabaseConnections"
CAPACITY_GROUP = "Capacity"  # the console's parameter group that holds them
ACCOUNT_CONCURRENCY = 1_000  # Lambda's default concurrency quota per account and region
UNRESERVED_MINIMUM = 100  # Lambda refuses a reservation that leaves fewer executions unreserved


def group(operation: Operation) -> str:
    if not operation.method:
        return "job"
    return "read" if operation.method == "GET" else "write"


@dataclass(frozen=True)
class Budget:
    reserved: int  # every function's reserved concurrency, summed: the most containers at once
    on_primary: int  # the connections they may hold on the primary
    on_each_secondary: int
    limit: int  # MaxDatabaseConnections

    @property
    def excess(self) -> int:
        return max(0, self.on_primary - self.limit)


def parameter_values(stack: dict, overrides: dict[str, str]) -> dict[str, int]:
    """The numeric parameters' values: the defaults, with `overrides` (as `sam deploy` applies them)."""
    return {
        name: int(overrides.get(name, parameter["Default"]))
        for name, parameter in stack["Parameters"].items()
        if parameter["Type"] == "Number" and (name in overrides or "Default" in parameter)
    }


def budget(stack: dict, overrides: dict[str, str] | None = None, settings: dict = runtime.CLIENT_SETTINGS) -> Budget:
    values = parameter_values(stack, overrides or {})
    reserved = sum(
        values[resource["Properties"]["ReservedConcurrentExecutions"]["Ref"]]
        for resource in stack["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    )
    on_primary, on_secondary = runtime.connections_per_container(settings)
    return Budget(reserved, reserved * on_primary, reserved * on_secondary, values[BUDGET_PARAMETER])


def test_every_function_reserves_the_concurrency_of_its_group():
    assert set(functions()) == {operation.name for operation in OPERATIONS}
    for operation in OPERATIONS:
        reservation = functions()[operation.name]["Properties"].get("ReservedConcurrentExecutions")
        assert reservation == {"Ref": GROUP_PARAMETERS[group(operation)]}, operation.name


def test_the_capacity_parameters_are_positive_numbers_in_their_own_group():
    parameters = template()["Parameters"]
    names = [*GROUP_PARAMETERS.values(), BUDGET_PARAMETER]
    for name in names:
        assert (parameters[name]["Type"], parameters[name]["MinValue"]) == ("Number", 1), name
    groups = template()["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (capacity,) = [entry for entry in groups if entry["Label"]["default"].startswith(CAPACITY_GROUP)]
    assert capacity["Parameters"] == names


def test_the_defaults_hold_within_the_database_connections():
    found = budget(template())
    assert found.excess == 0, (
        f"{found.reserved} containers may hold {found.on_primary} connections on the primary, "
        f"{found.excess} more than {BUDGET_PARAMETER}'s {found.limit}"
    )


def test_the_defaults_leave_lambda_its_unreserved_executions():
    assert budget(template()).reserved <= ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM


def test_the_default_budget_leaves_room_on_an_atlas_m10():
    # 1,500 per node, 10 of them Atlas's own: the rest is for operators, agents and other clients.
    assert template()["Parameters"][BUDGET_PARAMETER]["Default"] < 1_500 - 10


@pytest.mark.parametrize("environment", sorted(parameter_overrides()))
def test_every_samconfig_stack_holds_within_its_budget(environment):
    overrides = parameter_overrides()[environment]
    assert set(overrides) <= set(template()["Parameters"]), "an override names no parameter of the template"
    found = budget(template(), overrides)
    assert found.excess == 0, found
    assert found.reserved <= ACCOUNT_CONCURRENCY - UNRESERVED_MINIMUM


def test_the_dev_stack_reserves_less_than_the_defaults():
    overrides = parameter_overrides()["default"]
    assert {*GROUP_PARAMETERS.values(), BUDGET_PARAMETER} <= set(overrides)
    assert budget(template(), overrides).reserved < budget(template()).reserved


@pytest.mark.parametrize(
    ("change", "settings"),
    [
        ({"WriteFunctionConcurrency": 100}, runtime.CLIENT_SETTINGS),  # more containers
        ({}, {**runtime.CLIENT_SETTINGS, "maxPoolSize": 4}),  # a bigger pool per container
        ({}, {**runtime.CLIENT_SETTINGS, "serverMonitoringMode": "stream"}),  # two monitors per server
    ],
)
def test_the_check_reports_a_stack_over_its_budget(change, settings):
    stack = copy.deepcopy(template())
    for name, default in change.items():
        stack["Parameters"][name]["Default"] = default
    found = budget(stack, settings=settings)
    assert found.excess > 0, found
    assert found.excess == found.on_primary - found.limit


def test_the_check_counts_every_function_and_both_kinds_of_connection():
    stack = copy.deepcopy(template())
    for name in GROUP_PARAMETERS.values():
        stack["Parameters"][name]["Default"] = 1
    found = budget(stack, settings={"maxPoolSize": 3, "serverMonitoringMode": "stream"})
    assert found.reserved == len(OPERATIONS)
    assert (found.on_primary, found.on_each_secondary) == (len(OPERATIONS) * (3 + 2), len(OPERATIONS) * 2)
