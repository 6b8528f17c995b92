"""Schemathesis hooks for tests/e2e/workload/test_fuzz_openapi.py, loaded by the Schemathesis CLI it runs.

They keep the generated requests within the rules of the contract that JSON Schema cannot state,
so that a refusal of a schema-valid request still means a defect. Each refusal they steer around
is probed by hand in tests/e2e/workload/test_security_probes.py, where it is the expected answer
(all but the last, which make run cannot serve).

- An Idempotency-Key names one request. The fuzzer draws keys from a small space and reuses them
  with other bodies, which the API rightly answers with 422 `idempotency_key_mismatch`. Here each
  distinct request gets a key of its own, derived from the drawn one, so a repeat of the same
  request is still a replay. Malformed keys (negative cases) are sent as drawn.
- Integers are JSON integers. To JSON Schema, 6.0 is an integer; the API refuses any number
  written with a fraction or an exponent where an integer belongs (422, as docs/api.md's contract
  says). Whole floats the fuzzer draws for integer fields are sent as integers.
- A transfer's two wallets differ (422 otherwise); no schema compares two fields.
- Some refusals depend on state no schema can see, and are documented answers: a cursor this
  listing did not issue is 400 `invalid_cursor`; capturing more than the hold holds, splits that
  name an unknown wallet or account or do not add up, a refund's sources that were not paid that
  much, or transferring to a wallet of another currency, is 422 `validation_error` on that field.
  Schemathesis' check that valid data is accepted lets exactly these through, nothing broader.
"""

from __future__ import annotations

import hashlib
import json
import re

import schemathesis

WELL_FORMED_KEY = re.compile(r"[\x21-\x7e]{1,255}")
HEADER = "idempotency-key"
# (method, path) -> (status, problem code, the fields (a field or its items: "splits" covers
# "splits[0]") whose state-dependent check may refuse a schema-valid request; empty when the
# problem names no field)
STATE_DEPENDENT = {
    ("GET", "/v1/wallets/{walletId}/transactions"): (400, "invalid_cursor", ()),
    ("GET", "/v1/wallets/{walletId}/reservations"): (400, "invalid_cursor", ()),
    ("GET", "/v1/accounts/{name}/transactions"): (400, "invalid_cursor", ()),
    ("POST", "/v1/reservations/{reservationId}/capture"): (422, "validation_error", ("amount", "splits")),
    ("POST", "/v1/reservations/{reservationId}/refunds"): (422, "validation_error", ("from",)),
    # A valid ttlSeconds may still take the hold past 7 days after it was placed.
    ("POST", "/v1/reservations/{reservationId}/increments"): (422, "validation_error", ("ttlSeconds",)),
    # captureTo must name an open account, or another wallet in the hold's currency.
    ("POST", "/v1/wallets/{walletId}/reservations"): (422, "validation_error", ("captureTo",)),
    ("POST", "/v1/transfers"): (422, "validation_error", ("toWalletId",)),
}


def _request_digest(case) -> str:
    request = [case.method, case.formatted_path, case.query, case.body]
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def _json_integers(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _json_integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_integers(item) for item in value]
    return value


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    if isinstance(case.body, dict | list):
        integers = _json_integers(case.body)
        if json.dumps(integers) != json.dumps(case.body):  # 6 == 6.0 to Python: compare the JSON
            case.body = integers
    headers = case.headers or {}
    for name, key in list(headers.items()):
        if name.lower() == HEADER and isinstance(key, str) and WELL_FORMED_KEY.fullmatch(key):
            headers[name] = f"{key[:200]}~{_request_digest(case)}"


@schemathesis.hook
def filter_case(context, case) -> bool:
    body = case.body
    return not (
        isinstance(body, dict)
        and isinstance(body.get("fromWalletId"), str)
        and body.get("fromWalletId") == body.get("toWalletId")
    )


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure but a schema-valid request refused for the state it met (see above)."""
    if failure.code != "ST202":  # Schema-valid request rejected
        return True
    expected = STATE_DEPENDENT.get((case.method.upper(), case.path))
    try:
        problem = json.loads(response.content)
    except ValueError:
        return True
    if expected is None or not isinstance(problem, dict):
        return True
    status, code, fields = expected
    refused = [str(error.get("field")) for error in problem.get("errors") or []]
    named = all(
        any(field == name or field.startswith((f"{name}[", f"{name}.")) for name in fields) for field in refused
    )
    explained = named and bool(refused) == bool(fields)
    return not (response.status_code == status and problem.get("code") == code and explained)
