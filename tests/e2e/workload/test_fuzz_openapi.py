"""Schema-driven fuzzing of `make run`'s server from the committed openapi.json, with Schemathesis.

Schemathesis (its CLI, in a child process) generates requests from the document, valid and
invalid, through all its phases: boundary values and one-fault-at-a-time cases (coverage),
Hypothesis-generated requests (fuzzing) and sequences that feed one answer's ids into the next
request (stateful, along the document's links and the Location headers). It runs once with an
owner's token and once with an admin's. Every answer must be no 5xx, a documented status with a
documented content type, headers and body schema; schema-valid requests must not be refused (a
refusal means the document is looser than the code) and invalid ones must not be accepted; a
request without a token must be refused. Wallets and holds seeded for the owner, and another
owner's, are fed in as path and body ids (Schemathesis dictionaries), so requests reach the money
paths and not only 404s. tests/e2e/workload/fuzz_hooks.py keeps the generated requests within the
rules JSON Schema cannot state. Afterwards the ledger must still be consistent.

Bounded for `make test`: FUZZ_MAX_EXAMPLES (default 20) per operation and phase, a fixed seed.
`make fuzz` runs it for FUZZ_SECONDS per token with a new seed each time (FUZZ_SEED replays one).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.local_auth import issue_token
from devtools.paths import OPENAPI, ROOT
from tests.ledger_checks import assert_ledger_consistent

SPEC = OPENAPI
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "20"))
MAX_SECONDS = int(os.environ.get("FUZZ_MAX_SECONDS", "0"))  # 0: no time budget, only the examples bound
# A fixed seed keeps `make test` repeatable; `make fuzz` sets FUZZ_SEED=random for new cases each run
# (the seed is printed: FUZZ_SEED=<it> replays that run).
SEED = None if os.environ.get("FUZZ_SEED") == "random" else int(os.environ.get("FUZZ_SEED", "20261125"))
RUN_TIMEOUT = 300 + 2 * MAX_SECONDS  # seconds for one Schemathesis run
ADMIN = ("wallet:admin",)

# Every check Schemathesis has, but two about routes the document does not declare: the gateway
# answers an undeclared method itself, 404 {"message": "Not Found"} as an HTTP API does, before any
# function runs, so neither a 405 nor an Allow header can come from this code.
EXCLUDED_CHECKS = ("unsupported_method", "allow_header_conformance")
# How an invalid request may be refused: Schemathesis' list, and 413 for a body over 16 KiB.
REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


@dataclass(frozen=True)
class Seed:
    owner: str
    wallets: tuple[str, ...]  # the owner's, then another owner's
    reservations: tuple[str, ...]


def created(answer: tuple[int, dict, object]) -> dict:
    status, _, body = answer
    assert status == 201, body
    return body


@pytest.fixture(scope="module")
def seeded(deployment) -> Seed:
    """An owner with money in two currencies and open holds, and a stranger with a wallet and a hold."""
    server = deployment.server
    admin = issue_token("fuzz-ops", ADMIN)
    owner, stranger = f"fuzz-owner-{uuid.uuid4().hex[:8]}", f"fuzz-stranger-{uuid.uuid4().hex[:8]}"
    wallets, reservations = [], []
    plan = ((owner, "USD", 10**13, 5), (owner, "EUR", 10**13, 2), (stranger, "USD", 10**6, 1))
    for who, currency, balance, holds in plan:
        body = {"currency": currency, "ownerId": who, "openingBalance": balance}
        wallet = created(server.json("POST", "/v1/wallets", body, token=admin))["wallet"]["id"]
        wallets.append(wallet)
        for index in range(holds):
            hold = created(
                server.json(
                    "POST",
                    f"/v1/wallets/{wallet}/reservations",
                    {"amount": 1_000 + index, "ttlSeconds": 3_600},
                    token=issue_token(who),
                    key=f"seed-{wallet}-{index}",
                )
            )
            reservations.append(hold["reservation"]["id"])
    return Seed(owner, tuple(wallets), tuple(reservations))


def toml(value: object) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's; objects become inline tables."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {toml(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    return json.dumps(value)


def configuration(base_url: str, token: str, seed: Seed) -> dict:
    ids = {"probability": 0.8}
    return {
        "base-url": base_url,
        "hooks": "tests.e2e.workload.fuzz_hooks",
        "workers": 1,
        "seed": SEED,
        # Through the document's own security scheme, so cases without a token can leave it out.
        "auth": {"openapi": {"jwt": {"bearer": token}}},
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "checks": {name: {"enabled": False} for name in EXCLUDED_CHECKS}
        | {"negative_data_rejection": {"expected-statuses": REJECTIONS}},
        # The document's links, and those Location headers imply. Not "dependency-analysis": it guesses
        # links from field names, e.g. a journal entry's reservationId, which is null on a deposit.
        "phases": {"stateful": {"inference": {"algorithms": ["location-headers"]}}},
        "dictionaries": {"wallets": {"values": seed.wallets}, "reservations": {"values": seed.reservations}},
        "parameters": {
            "path.walletId": {"dictionary": "wallets"} | ids,
            "path.reservationId": {"dictionary": "reservations"} | ids,
            "body.fromWalletId": {"dictionary": "wallets"} | ids,
            "body.toWalletId": {"dictionary": "wallets"} | ids,
        },
    }


def run_schemathesis(base_url: str, token: str, seed: Seed, workdir: Path) -> tuple[subprocess.CompletedProcess, list]:
    settings = {key: value for key, value in configuration(base_url, token, seed).items() if value is not None}
    config = workdir / "schemathesis.toml"
    config.write_text("".join(f"{json.dumps(key)} = {toml(value)}\n" for key, value in settings.items()))
    events = workdir / "events.ndjson"
    command = [str(SCHEMATHESIS), "--config-file", str(config), "--no-color", "run", str(SPEC)]
    command += ["--report", "ndjson", "--report-ndjson-path", str(events)]
    if MAX_SECONDS:
        command += ["--max-time", str(MAX_SECONDS)]
    result = subprocess.run(
        command,
        cwd=workdir,  # Schemathesis' own files stay out of the checkout
        env={**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_TELEMETRY": "false"},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    (workdir / "schemathesis.txt").write_text(result.stdout + result.stderr)
    return result, [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []


def report(result: subprocess.CompletedProcess, workdir: Path) -> str:
    """Schemathesis' failures section, long lines (generated bodies) cut; the whole of it is in the file."""
    lines = (result.stdout + result.stderr).splitlines()
    start = next((index for index, line in enumerate(lines) if "FAILURES" in line or "ERRORS" in line), 0)
    shown = [line if len(line) <= 400 else line[:400] + " ..." for line in lines[start:][-400:]]
    return "\n".join([f"Schemathesis failed (exit {result.returncode}); all of it: {workdir}/schemathesis.txt", *shown])


def exchanges(events: list[dict]) -> list[tuple[str, int]]:
    """(operation label, response status) of every request the run sent."""
    found = []
    for event in events:
        for name, payload in event.items():
            recorder = payload.get("recorder") if isinstance(payload, dict) else None
            if not recorder:
                continue
            cases = recorder.get("cases", {})
            for interaction in recorder.get("interactions", {}).values():
                response = interaction.get("response") or {}
                case = cases.get(interaction.get("case_id") or "", {}).get("value", {})
                label = f"{case.get('method', '?')} {case.get('path', '?')}" if case else name
                found.append((label, response.get("status_code", 0)))
    return found


@pytest.mark.timeout(RUN_TIMEOUT + 60)
@pytest.mark.parametrize("role", ["owner", "admin"])
def test_the_api_answers_every_generated_request_as_documented(deployment, seeded, role, tmp_path):
    token = issue_token(seeded.owner) if role == "owner" else issue_token("fuzz-ops", ADMIN)
    started = time.monotonic()
    result, events = run_schemathesis(deployment.server.base, token, seeded, tmp_path)
    seconds = time.monotonic() - started
    sent = exchanges(events)
    statuses = Counter(status for _, status in sent)
    used = re.search(r"Seed: (\d+)", result.stdout)
    print(
        f"\n{role}: {len(sent)} requests in {seconds:.1f} s (FUZZ_SEED={used and used.group(1)}), "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert result.returncode == 0, report(result, tmp_path)
    assert sent, f"no request recorded:\n{result.stdout[-5_000:]}"
    assert not [status for status in statuses if status >= 500]
    # The seeded ids took the requests past the 404s: money moved on the owner's wallets.
    assert statuses[201], statuses
    assert statuses[200], statuses
    assert_ledger_consistent(deployment.database)
