"""`make demo`: the wallet's story, told against the running local API (`make run`).

An admin opens a USD wallet for a rider with $50.00 in it and an empty one for a driver; the rider
tops up $20.00 and holds $15.00 for a ride; a detour raises the hold by $4.00 (an increment); the
platform captures $8.00 at a stop on the way (final false: the rest stays held) and $9.00 when the
ride ends (final: the $2.00 left is released), each split 80/20 between the driver and @revenue;
it repeats that last capture to show it is answered from the record; the rider holds $3.00 again
for two seconds and watches the expiry schedule give it back; then come the history and the final
wallets. Every request and answer is printed.

BASE_URL (default http://127.0.0.1:$PORT, PORT default 3000) picks the API. Tokens come from
devtools/local_auth, the local API's development issuer. Each run uses fresh owner ids, so it
can be run again and again against the same database. Standard library only (urllib).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http import HTTPStatus

from devtools.local_auth import issue_token

TIMEOUT = 30  # seconds per request; the local API imports each handler on its first call


class DemoFailed(SystemExit):
    """An answer the story did not expect: the message is printed and the exit status is 1."""

    def __init__(self, message: str) -> None:
        super().__init__(f"\ndemo failed: {message}")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: object = field(default=None)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Caller:
    label: str
    token: str


class Api:
    def __init__(self, base_url: str, *, full: bool) -> None:
        self.base_url = base_url.rstrip("/")
        self.full = full
        self.bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def heading(self, text: str) -> None:
        print(f"\n\033[1m{text}\033[0m" if self.bold else f"\n{text}")

    def call(
        self,
        method: str,
        path: str,
        *,
        caller: Caller | None,
        body: dict | None = None,
        key: str | None = None,
        quiet: bool = False,
    ) -> Answer:
        """One request; printed unless `quiet` (then only the answer is returned)."""
        headers = {"Accept": "application/json, application/problem+json"}
        data = None
        if caller is not None:
            headers["Authorization"] = f"Bearer {caller.token}"
        if key is not None:
            headers["Idempotency-Key"] = key
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if not quiet:
            notes = ", ".join(filter(None, [caller and f"as {caller.label}", key and f"Idempotency-Key: {key}"]))
            print(f"  → {method} {path}" + (f"   [{notes}]" if notes else ""))
            if body is not None:
                print(f"    {json.dumps(body)}")
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                answer = Answer(response.status, _headers(response.headers), _json(response.read()))
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, _headers(error.headers), _json(error.read()))
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise SystemExit(
                f"the wallet API is not reachable at {self.base_url} ({reason}).\n"
                "Start it with `make run` (in another terminal), or point BASE_URL at a running one."
            ) from None
        if not quiet:
            self.show(answer)
        return answer

    def show(self, answer: Answer) -> None:
        try:
            phrase = HTTPStatus(answer.status).phrase
        except ValueError:
            phrase = ""
        extra = [
            f"{name}: {answer.header(name)}" for name in ("Location", "Idempotent-Replayed") if answer.header(name)
        ]
        print(f"  ← {answer.status} {phrase}" + (f"   [{', '.join(extra)}]" if extra else ""))
        for line in summarize(answer.body):
            print(f"    {line}")
        if self.full and answer.body is not None:
            for line in json.dumps(answer.body, indent=2).splitlines():
                print(f"      {line}")

    def expect(self, answer: Answer, status: int, what: str) -> dict:
        if answer.status != status:
            problem = answer.body if isinstance(answer.body, dict) else {}
            detail = problem.get("detail") or problem.get("title") or answer.body
            hint = ""
            if answer.status == 401:
                hint = " (the local API accepts tokens from devtools/local_auth only: is BASE_URL a `make run`?)"
            raise DemoFailed(
                f"{what}: expected {status}, got {answer.status} {problem.get('code', '')} {detail}{hint}".replace(
                    "  ", " "
                )
            )
        if not isinstance(answer.body, dict):
            raise DemoFailed(f"{what}: expected a JSON object, got {answer.body!r}")
        return answer.body


def _headers(message) -> dict[str, str]:
    return {name.lower(): value for name, value in message.items()}


def _json(raw: bytes) -> object:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


# ---------------------------------------------------------------- compact views of the bodies


def money(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}" if cents >= 0 else f"-{money(-cents)}"


def wallet_line(wallet: dict) -> str:
    return (
        f"wallet {wallet['id']} ({wallet['ownerId']}, {wallet['currency']}, {wallet['status']}): "
        f"balance {wallet['balance']}, held {wallet['held']}, available {wallet['available']}"
    )


OPEN = ("HELD", "PARTIALLY_CAPTURED")  # a hold that still holds money


def reservation_line(hold: dict) -> str:
    parts = [f"reservation {hold['id']}: {hold['status']}, amount {hold['amount']}"]
    if hold.get("increments"):
        raised = "+".join(str(increment["amount"]) for increment in hold["increments"])
        parts.append(f"raised {len(hold['increments'])}x (+{raised})")
    if hold.get("capturedAmount") or hold.get("releasedAmount"):
        parts.append(f"captured {hold['capturedAmount']}, released {hold['releasedAmount']}")
    if hold.get("captures"):
        parts.append(f"captures {'+'.join(str(capture['amount']) for capture in hold['captures'])}")
    if hold["status"] in OPEN:
        parts.append(f"still held {hold.get('heldAmount', hold['amount'])}, expires {hold['expiresAt']}")
    return ", ".join(parts)


def entry_line(entry: dict) -> str:
    reference = f"  ({entry['referenceType']} {entry['referenceId']})" if entry.get("referenceType") else ""
    return (
        f"#{entry['sequence']:<3} {entry['type']:<10} {entry['amount']:>6}"
        f"  → balance {entry['balanceAfter']:>5}, held {entry['heldAfter']:>5}{reference}"
    )


def summarize(body: object) -> list[str]:
    """The fields that tell the story, under the names the JSON uses; `--full` prints everything."""
    if not isinstance(body, dict):
        return [] if body is None else [str(body)]
    if "code" in body and "status" in body and "title" in body:  # application/problem+json
        return [f"problem {body['code']}: {body.get('detail') or body['title']}"]
    if "items" in body:  # a page
        lines = [entry_line(item) if "sequence" in item else reservation_line(item) for item in body["items"]]
        return lines + ([f"nextCursor {body['nextCursor']}"] if body.get("nextCursor") else [])
    if "operationId" in body and "entries" in body:  # a money movement
        lines = [f"operationId {body['operationId']}"]
        if body.get("reservation"):
            lines.append(reservation_line(body["reservation"]))
        own = body["wallet"]["id"]
        lines += [
            "entry " + entry_line(entry) + ("" if entry["walletId"] == own else f"  (wallet {entry['walletId']})")
            for entry in body["entries"]
        ]
        return [*lines, wallet_line(body["wallet"])]
    if "available" in body:
        return [wallet_line(body)]
    if "expiresAt" in body:
        return [reservation_line(body)]
    return [json.dumps(body)]


# ---------------------------------------------------------------- the story


def check_reachable(api: Api) -> None:
    answer = api.call("GET", "/health", caller=None, quiet=True)
    if answer.status == 503:
        raise SystemExit(
            f"the wallet API at {api.base_url} answers, but its database is unavailable (GET /health: 503)"
        )
    if answer.status != 200:
        raise SystemExit(
            f"{api.base_url} answered GET /health with {answer.status}: is it the wallet API? Start it with `make run`."
        )


def wait_for_expiry(api: Api, rider: Caller, reservation_id: str, limit: float) -> dict:
    print(f"  … polling GET /v1/reservations/{reservation_id} every second (up to {limit:.0f} s)", flush=True)
    live = sys.stdout.isatty()
    started = time.monotonic()
    reported = -1
    while True:
        answer = api.call("GET", f"/v1/reservations/{reservation_id}", caller=rider, quiet=True)
        hold = api.expect(answer, 200, "reading the short hold")
        waited = time.monotonic() - started
        if hold["status"] != "HELD":
            if live and reported >= 0:
                print("\r\033[K", end="")
            print(f"  ← 200 OK after {waited:.0f} s")
            print(f"    {reservation_line(hold)}")
            return hold
        if waited >= limit:
            raise DemoFailed(
                f"the hold was still HELD after {limit:.0f} s: is the expiry schedule running? "
                "Start the API with `make run` (EXPIRY_INTERVAL_SECONDS sets how often it runs)."
            )
        if live:
            print(f"\r\033[K    still HELD after {waited:.0f} s", end="", flush=True)
            reported = int(waited)
        elif int(waited) // 10 > reported:  # a log, not a terminal: a line every 10 s
            reported = int(waited) // 10
            print(f"    still HELD after {waited:.0f} s", flush=True)
        time.sleep(1)


def run(api: Api, wait_limit: float) -> None:
    check_reachable(api)
    run_id = secrets.token_hex(3)
    owner = f"rider-{run_id}"
    driver = f"driver-{run_id}"
    admin = Caller(f"ops-{run_id} (wallet:admin)", issue_token(f"ops-{run_id}", ("wallet:admin",)))
    rider = Caller(owner, issue_token(owner))
    print(f"Wallet API demo against {api.base_url}: rider {owner}, driver {driver}; amounts are integer cents")

    api.heading(f"1. An admin opens a USD wallet for {owner} with $50.00 in it, and an empty one for {driver}")
    opened = api.expect(
        api.call(
            "POST",
            "/v1/wallets",
            caller=admin,
            body={"currency": "USD", "ownerId": owner, "openingBalance": 5000},
        ),
        201,
        "opening the rider's wallet",
    )
    wallet_id = opened["wallet"]["id"]
    driver_wallet_id = api.expect(
        api.call("POST", "/v1/wallets", caller=admin, body={"currency": "USD", "ownerId": driver}),
        201,
        "opening the driver's wallet",
    )["wallet"]["id"]

    api.heading("2. The rider tops up $20.00")
    api.expect(
        api.call(
            "POST",
            f"/v1/wallets/{wallet_id}/deposits",
            caller=rider,
            key=f"topup-{run_id}",
            body={"amount": 2000, "referenceType": "topup", "referenceId": f"card-{run_id}"},
        ),
        201,
        "the deposit",
    )

    ride = f"ride-{run_id}"
    api.heading(f"3. A ride starts: hold $15.00 for {ride}, for up to 15 minutes")
    held = api.expect(
        api.call(
            "POST",
            f"/v1/wallets/{wallet_id}/reservations",
            caller=rider,
            key=f"hold-{ride}",
            body={"amount": 1500, "ttlSeconds": 900, "referenceType": "ride", "referenceId": ride},
        ),
        201,
        "the hold",
    )
    reservation_id = held["reservation"]["id"]
    hold_path = f"/v1/reservations/{reservation_id}"

    api.heading("4. A detour: the hold is raised by $4.00, and kept for 30 minutes from now")
    raised = api.expect(
        api.call(
            "POST",
            f"{hold_path}/increments",
            caller=rider,
            key=f"detour-{ride}",
            body={"amount": 400, "ttlSeconds": 1800, "referenceType": "detour", "referenceId": ride},
        ),
        201,
        "the increment",
    )
    if (raised["reservation"]["amount"], raised["wallet"]["held"]) != (1900, 1900):
        raise DemoFailed(f"the raised hold should hold 1900: {reservation_line(raised['reservation'])}")

    split = [{"walletId": driver_wallet_id}, {"account": "@revenue"}]  # 80 % to the driver, 20 % to the platform
    api.heading(
        "5. A stop on the way: the platform captures $8.00 for the first leg (final false: the rest stays held)"
    )
    api.expect(
        api.call(
            "POST",
            f"{hold_path}/capture",
            caller=admin,
            key=f"leg-1-{ride}",
            body={
                "amount": 800,
                "final": False,
                "splits": [{**split[0], "amount": 640}, {**split[1], "amount": 160}],
                "referenceType": "fare",
                "referenceId": f"{ride}-leg-1",
            },
        ),
        200,
        "the first leg's capture",
    )

    api.heading("6. The ride ends at $17.00 in all: the platform captures the last $9.00; the $2.00 left is released")
    capture = {
        "amount": 900,
        "splits": [{**split[0], "amount": 720}, {**split[1], "amount": 180}],
        "referenceType": "fare",
        "referenceId": ride,
    }
    first = api.call("POST", f"{hold_path}/capture", caller=admin, key=f"fare-{ride}", body=capture)
    captured = api.expect(first, 200, "the final capture")
    hold = captured["reservation"]
    if (hold["status"], hold["capturedAmount"], hold["releasedAmount"]) != ("CAPTURED", 1700, 200):
        raise DemoFailed(f"expected CAPTURED, captured 1700, released 200: {reservation_line(hold)}")

    api.heading("7. The same capture again, same Idempotency-Key (a client retry): answered from the record")
    again = api.call("POST", f"{hold_path}/capture", caller=admin, key=f"fare-{ride}", body=capture)
    replayed = api.expect(again, 200, "the repeated capture")
    if again.header("Idempotent-Replayed") != "true" or replayed["operationId"] != captured["operationId"]:
        raise DemoFailed("the repeated capture was not a replay of the first")
    print("    same operationId, same figures, Idempotent-Replayed: true; no money moved twice")

    api.heading("8. Another ride is booked ($3.00 hold, 2 s TTL) but never happens")
    short = api.expect(
        api.call(
            "POST",
            f"/v1/wallets/{wallet_id}/reservations",
            caller=rider,
            key=f"hold-{ride}-b",
            body={"amount": 300, "ttlSeconds": 2, "referenceType": "ride", "referenceId": f"{ride}-b"},
        ),
        201,
        "the short hold",
    )
    print(
        "    The expiry schedule gives the money back. `make run` runs it as deployed, rate(1 minute), or\n"
        "    every EXPIRY_INTERVAL_SECONDS seconds when that is set (`EXPIRY_INTERVAL_SECONDS=5 make run`)."
    )
    expired = wait_for_expiry(api, rider, short["reservation"]["id"], wait_limit)
    if expired["status"] != "EXPIRED":
        raise DemoFailed(f"the short hold ended {expired['status']}, not EXPIRED")

    api.heading("9. The rider's history, newest first")
    history = api.expect(
        api.call("GET", f"/v1/wallets/{wallet_id}/transactions", caller=rider), 200, "listing the history"
    )
    types = [item["type"] for item in reversed(history["items"])]
    story = ["DEPOSIT", "DEPOSIT", "HOLD", "HOLD", "CAPTURE", "CAPTURE", "RELEASE", "HOLD", "EXPIRE"]
    if types != story:
        raise DemoFailed(f"unexpected history: {types}")

    api.heading("10. The wallets now")
    wallet = api.expect(api.call("GET", f"/v1/wallets/{wallet_id}", caller=rider), 200, "reading the wallet")
    figures = (wallet["balance"], wallet["held"], wallet["available"])
    if figures != (5300, 0, 5300):
        raise DemoFailed(f"expected balance 5300, held 0, available 5300; got {figures}")
    paid = api.expect(
        api.call("GET", f"/v1/wallets/{driver_wallet_id}", caller=admin), 200, "reading the driver's wallet"
    )
    if paid["balance"] != 1360:
        raise DemoFailed(f"expected the driver's balance 1360, got {paid['balance']}")
    print(
        f"\nDone: {money(5000)} opening + {money(2000)} top-up - {money(1700)} fare = {money(wallet['balance'])} USD; "
        f"nothing held, {money(wallet['available'])} available. The driver got {money(paid['balance'])} "
        f"(80 %), @revenue {money(1700 - paid['balance'])}."
    )


def main() -> None:
    """Walk the wallet's story against the running local API (start it with `make run`)."""
    port = os.environ.get("PORT") or "3000"
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--base-url", default=os.environ.get("BASE_URL") or f"http://127.0.0.1:{port}")
    parser.add_argument("--wait", type=float, default=150, help="seconds to wait for the expiry schedule (150)")
    parser.add_argument("--full", action="store_true", help="also print every response body in full")
    arguments = parser.parse_args()
    try:
        run(Api(arguments.base_url, full=arguments.full), arguments.wait)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
