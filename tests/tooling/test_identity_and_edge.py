"""template.yaml's identity (an issuer of one's own, or the stack's Cognito pool with a
client-credentials client) and the HTTP API's edge (route throttling, per-route metrics).

The template is read twice, as CloudFormation would resolve it for the two ways to deploy it: the
conditions evaluated for the given parameters, then SAM's own translator (offline) for what the HTTP
API's authorizer and stage become.
"""

from __future__ import annotations

import copy
import os
from functools import cache

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from devtools.paths import TEMPLATE
from devtools.samconfig import parameter_overrides

OWN_ISSUER = {"JwtIssuer": "https://auth.example.com/", "JwtAudience": "wallet-api"}
POOL = {"JwtIssuer": "", "JwtAudience": ""}
COGNITO = {"WalletUserPool", "WalletUserPoolDomain", "WalletResourceServer", "PlatformClient"}
SCOPES = {"wallet:read", "wallet:write", "wallet:admin"}


@cache
def template() -> dict:
    return yaml_parse(TEMPLATE.read_text())


def parameters(given: dict[str, str]) -> dict[str, object]:
    values = {name: spec.get("Default") for name, spec in template()["Parameters"].items()}
    values.update(given)
    for name, spec in template()["Parameters"].items():
        if spec["Type"] == "CommaDelimitedList" and isinstance(values[name], str):
            values[name] = values[name].split(",")
    return values


def resolve(node, values: dict, conditions: dict[str, bool]):
    """The intrinsic functions the conditions and the identity settings use, evaluated."""
    if isinstance(node, list):
        return [resolve(item, values, conditions) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, argument),) = node.items()
        if key == "Ref" and argument in values:
            return values[argument]
        if key == "Condition":
            return conditions[argument]
        if key == "Fn::Equals":
            left, right = (resolve(item, values, conditions) for item in argument)
            return left == right
        if key == "Fn::Not":
            return not resolve(argument[0], values, conditions)
        if key == "Fn::And":
            return all(resolve(item, values, conditions) for item in argument)
        if key == "Fn::Or":
            return any(resolve(item, values, conditions) for item in argument)
        if key == "Fn::Join":
            separator, items = argument
            return separator.join(resolve(items, values, conditions))
        if key == "Fn::If":
            name, when_true, when_false = argument
            return resolve(when_true if conditions[name] else when_false, values, conditions)
    return {key: resolve(value, values, conditions) for key, value in node.items()}


def conditions_for(given: dict[str, str]) -> dict[str, bool]:
    values = parameters(given)
    conditions: dict[str, bool] = {}
    for name, expression in template()["Conditions"].items():  # each refers only to earlier ones
        conditions[name] = bool(resolve(expression, values, conditions))
    return conditions


def deployed_resources(given: dict[str, str]) -> set[str]:
    conditions = conditions_for(given)
    return {name for name, spec in template()["Resources"].items() if conditions.get(spec.get("Condition"), True)}


@cache
def translated() -> dict:
    """SAM's translation to plain CloudFormation (code locations stood in by S3 URIs)."""
    document = copy.deepcopy(template())
    for spec in document["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in spec.get("Properties", {}):
                spec["Properties"][key] = "s3://bucket/code.zip"

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    region = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator asks for one; nothing is called
    try:
        return transform(document, {}, NoManagedPolicies())
    finally:
        if region is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = region


def authorizer(given: dict[str, str]) -> dict:
    body = translated()["Resources"]["WalletApi"]["Properties"]["Body"]
    scheme = body["components"]["securitySchemes"]["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]
    return resolve(scheme, parameters(given), conditions_for(given))


def test_an_issuer_of_ones_own_creates_no_pool_and_is_the_one_the_authorizer_trusts():
    assert not COGNITO & deployed_resources(OWN_ISSUER)
    assert authorizer(OWN_ISSUER)["jwtConfiguration"] == {
        "issuer": "https://auth.example.com/",
        "audience": ["wallet-api"],
    }
    environment = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert resolve(environment["SCOPE_PREFIX"], parameters(OWN_ISSUER), conditions_for(OWN_ISSUER)) == ""


def test_without_an_issuer_the_stack_creates_a_pool_whose_tokens_the_authorizer_trusts():
    assert deployed_resources(POOL) >= COGNITO
    configuration = authorizer(POOL)["jwtConfiguration"]
    assert configuration["issuer"] == {
        "Fn::Sub": "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${WalletUserPool}"
    }
    # Cognito's access tokens carry client_id, not aud: the platform client's id is the audience.
    assert configuration["audience"] == [{"Ref": "PlatformClient"}]


def test_the_pool_has_no_sign_ups_and_its_resource_server_defines_the_three_scopes():
    resources = template()["Resources"]
    assert resources["WalletUserPool"]["Properties"]["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    server = resources["WalletResourceServer"]["Properties"]
    assert server["UserPoolId"] == {"Ref": "WalletUserPool"}
    assert {scope["ScopeName"] for scope in server["Scopes"]} == SCOPES


def test_the_platform_client_uses_client_credentials_with_every_scope_and_the_functions_know_their_names():
    resources = template()["Resources"]
    client = resources["PlatformClient"]
    identifier = resources["WalletResourceServer"]["Properties"]["Identifier"]
    properties = client["Properties"]
    assert client["DependsOn"] == "WalletResourceServer"
    assert properties["GenerateSecret"] is True
    assert properties["AllowedOAuthFlowsUserPoolClient"] is True
    assert properties["AllowedOAuthFlows"] == ["client_credentials"]
    assert set(properties["AllowedOAuthScopes"]) == {f"{identifier}/{scope}" for scope in SCOPES}
    environment = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert resolve(environment["SCOPE_PREFIX"], parameters(POOL), conditions_for(POOL)) == f"{identifier}/"


def test_the_pool_domain_is_the_given_prefix_or_the_stack_and_account():
    domain = template()["Resources"]["WalletUserPoolDomain"]["Properties"]["Domain"]
    assert (
        resolve(
            domain,
            parameters({**POOL, "UserPoolDomainPrefix": "acme-wallet"}),
            conditions_for({**POOL, "UserPoolDomainPrefix": "acme-wallet"}),
        )
        == "acme-wallet"
    )
    assert resolve(domain, parameters(POOL), conditions_for(POOL)) == {"Fn::Sub": "${AWS::StackName}-${AWS::AccountId}"}


def test_the_token_url_and_client_are_outputs_only_with_the_pool():
    outputs = template()["Outputs"]
    for name in ("UserPoolId", "TokenUrl", "PlatformClientId"):
        assert outputs[name]["Condition"] == "CreateUserPool"
    assert outputs["TokenUrl"]["Value"] == {
        "Fn::Sub": "https://${WalletUserPoolDomain}.auth.${AWS::Region}.amazoncognito.com/oauth2/token"
    }


@pytest.mark.parametrize(
    ("given", "holds"),
    [(OWN_ISSUER, True), (POOL, True), ({"JwtIssuer": "https://auth.example.com/", "JwtAudience": ""}, False)],
)
def test_an_issuer_needs_its_audience(given, holds):
    rule = template()["Rules"]["AnIssuerNamesItsAudience"]
    values, conditions = parameters(given), conditions_for(given)
    applies = resolve(rule["RuleCondition"], values, conditions)
    assert (not applies or all(resolve(item["Assert"], values, conditions) for item in rule["Assertions"])) == holds


def test_every_route_is_throttled_by_the_parameters_and_has_detailed_metrics():
    stages = [spec for spec in translated()["Resources"].values() if spec["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert len(stages) == 1
    settings = stages[0]["Properties"]["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "DetailedMetricsEnabled": True,
    }


@pytest.mark.parametrize("environment", ["(the defaults)", *sorted(parameter_overrides())])
def test_a_burst_the_api_lets_through_fits_in_every_routes_reserved_concurrency(environment):
    """Beyond a function's reservation Lambda refuses the call and API Gateway answers a 5xx; within
    the burst limit, API Gateway's own 429 comes first. For the defaults and each samconfig stack."""
    defaults = {name: spec.get("Default") for name, spec in template()["Parameters"].items()}
    defaults.update(
        {name: int(value) for name, value in parameter_overrides().get(environment, {}).items() if value.isdigit()}
    )
    routed = [
        spec["Properties"]["ReservedConcurrentExecutions"]["Ref"]
        for spec in template()["Resources"].values()
        if spec["Type"] == "AWS::Serverless::Function"
        and any(event["Type"] == "HttpApi" for event in spec["Properties"].get("Events", {}).values())
    ]
    assert routed
    assert defaults["ApiThrottlingBurstLimit"] <= min(defaults[name] for name in routed)
    assert defaults["ApiThrottlingRateLimit"] > 0
