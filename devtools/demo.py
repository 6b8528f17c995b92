"""`make demo`: the wallet's story, told against the running local API (`make run`).

An admin opens a USD wallet for a rider with $50.00 in it and an empty one for a driver; the rider
tops up $20.00, sets a balance alert (below $52.00 available) and holds $15.00 for a ride; a
detour raises the hold by $4.00 (an increment); the platform captures $8.00 at a stop on the way
(final false: the rest stays held) and $9.00 when the ride ends (final: the $2.00 left is
released), each split 80/20 between the driver and @revenue; it repeats that last capture to show
it is answered from the record; the rider holds $3.00 again for two seconds and watches the expiry
schedule give it back; then come the history and the final wallets, and last the events the story
produced, as `make run`'s bus delivered them to its events file (the alert's among them:
wallet.balance.low when the detour takes the available money below $52.00, .restored when the
ride's end gives some back). Every request and answer is printed.

BASE_URL (default http://127.0.0.1:$PORT, PORT default 3000) picks the API. The events file is
found as `make run` chooses it (devtools/local_api.events_file: EVENTS_FILE, else beside DB_PATH's
folder, else .local/events.jsonl), or given with --events-file; only what is appended to it during
the run is read. Tokens come from devtools/local_auth, the local API's development issuer. Each run
uses fresh owner ids, so it can be run again and again against the same database. HTTP with the
standard library only (urllib).
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
from pathlib import Path

from devtools.local_auth import issue_token

TIMEOUT = 30  # seconds per request; the local API imports each handler on its first call
ALERT_BELOW = 5200  # the rider's balance alert: wallet.balance.low when less than this is available


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
    alert = (wallet.get("alerts") or {}).get("availableBelow")
    return (
        f"wallet {wallet['id']} ({wallet['ownerId']}, {wallet['currency']}, {wallet['status']}): "
        f"balance {wallet['balance']}, held {wallet['held']}, available {wallet['available']}"
        + (f", alert below {alert}" if alert is not None else "")
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


# ---------------------------------------------------------------- the events the story produced

# What each wallet of the story receives, in order (wallet_service/storage/outbox.py). The rider's alert
# (below ALERT_BELOW available, set after the top-up: set at the opening, with 5000 available, the
# top-up would say "restored") fires when the detour takes the available money from 5500 to 5100
# and is restored when the ride's end releases 200 (5300); the second hold (5000) and its expiry
# (5300) cross it again. Setting the alert and the replayed capture (step 7) write no event.
RIDER_EVENTS = (
    "wallet.opened",
    "wallet.deposit.created",
    "reservation.created",
    "reservation.incremented",
    "wallet.balance.low",
    "reservation.captured",
    "reservation.captured",
    "wallet.balance.restored",
    "reservation.created",
    "wallet.balance.low",
    "reservation.expired",
    "wallet.balance.restored",
)
DRIVER_EVENTS = ("wallet.opened", "wallet.capture.received", "wallet.capture.received")


class EventsFile:
    """The local bus's stand-in (`make run` appends one EventBridge-shaped JSON line per event): the
    events of some wallets appended since the demo started, each once (delivery is at least once:
    consumers deduplicate by detail.id)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = self._size()  # what was there before the story is not its
        self.details: dict[str, dict] = {}
        self.duplicates = 0

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def read(self, wallet_ids: set[str]) -> None:
        size = self._size()
        if size < self.offset:  # truncated or replaced since: read it again from the start
            self.offset = 0
        if size == self.offset:
            return
        with self.path.open("rb") as file:
            file.seek(self.offset)
            chunk = file.read(size - self.offset)
        complete = chunk.rfind(b"\n") + 1  # a line still being written is read the next time
        self.offset += complete
        for line in chunk[:complete].splitlines():
            try:
                detail = json.loads(line)["detail"]
                wallet_id = detail["walletId"]
            except (ValueError, KeyError, TypeError):
                continue
            if wallet_id not in wallet_ids:
                continue
            if detail["id"] in self.details:
                self.duplicates += 1
            else:
                self.details[detail["id"]] = detail

    def types(self, wallet_id: str) -> list[str]:
        return [detail["type"] for detail in self.ordered() if detail["walletId"] == wallet_id]

    def ordered(self) -> list[dict]:
        return sorted(self.details.values(), key=lambda item: (item["walletId"], item["version"], item["index"]))


def wait_for_events(events: EventsFile, expected: dict[str, tuple[str, ...]], limit: float) -> float:
    """Read the file until every expected event is in it, or `limit` seconds; the seconds waited."""
    started = time.monotonic()
    while True:
        events.read(set(expected))
        waited = time.monotonic() - started
        if all(events.types(wallet_id) == list(types) for wallet_id, types in expected.items()) or waited >= limit:
            return waited
        time.sleep(0.2)


def event_line(detail: dict, names: dict[str, str], steps: dict[str, str]) -> str:
    """One event: its wallet, version/index, the step that caused it, its type and a figure."""
    data = detail.get("data") or {}
    if "availableBelow" in data:  # wallet.balance.low and .restored
        figure = f"available {data['availableBefore']} → {data['available']} (alert below {data['availableBelow']})"
    else:
        wallet = data.get("wallet") or {}
        figure = f"balance {wallet.get('balance')}, held {wallet.get('held')}, available {wallet.get('available')}"
    step = steps.get(detail["operationId"], "expiry")  # the schedule's run: an operation the demo did not send
    return (
        f"{names[detail['walletId']]:<13} v{detail['version']}/{detail['index']}  {step:<7} "
        f"{detail['type']:<24} {figure}"
    )


def show_events(
    events: EventsFile,
    names: dict[str, str],
    steps: dict[str, str],
    expected: dict[str, tuple[str, ...]],
    limit: float,
) -> None:
    """Wait for the story's events, print them in (wallet, version, index) order and check them."""
    shown = _shown(events.path)
    print(
        f"  … reading what `make run` appended to {shown} since the story began\n"
        f"    (waiting up to {limit:g} s for any still on their way)"
    )
    waited = wait_for_events(events, expected, limit)
    ordered = events.ordered()
    if not ordered:
        print(
            f"    no event of these wallets in {shown}: is it the file `make run` appends to (it names it when it\n"
            "    starts)? Give it with --events-file or EVENTS_FILE."
        )
        return
    print(f"    wallet        version/index, step, type, then the wallet after it ({len(ordered)} events)")
    for detail in ordered:
        print(f"    {event_line(detail, names, steps)}")
    late = []
    for wallet_id, types in expected.items():
        found = events.types(wallet_id)
        if found != list(types[: len(found)]):
            raise DemoFailed(f"{names[wallet_id]}'s events are not the story's: {found}")
        late += [f"{names[wallet_id]}'s {kind}" for kind in types[len(found) :]]
    if late:
        print(
            f"    not in the file after {waited:.0f} s: {', '.join(late)}. A function publishes its events right\n"
            "    after its commit; what it could not send, the scheduled publisher sends (PUBLISH_INTERVAL_SECONDS)."
        )
        return
    twice = f" ({events.duplicates} delivered twice)" if events.duplicates else ""
    rider = next(iter(expected))
    versions = {detail["version"] for detail in ordered if detail["walletId"] == rider}
    silent = sorted(set(range(1, max(versions) + 1)) - versions)  # changes of the wallet with no event
    alert = f"setting the alert (the rider's version {', '.join(map(str, silent))}) nor for " if silent else ""
    print(f"    Each shown once, by detail.id{twice}. No event for {alert}the replayed capture (step 7).")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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


def run(api: Api, wait_limit: float, events_path: Path, events_wait: float) -> None:
    check_reachable(api)
    events = EventsFile(events_path)
    steps: dict[str, str] = {}  # operationId: the step that sent it

    def step(number: int, body: dict) -> dict:
        steps[body["operationId"]] = f"step {number}"
        return body

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
    wallet_id = step(1, opened)["wallet"]["id"]
    driver_wallet_id = step(
        1,
        api.expect(
            api.call("POST", "/v1/wallets", caller=admin, body={"currency": "USD", "ownerId": driver}),
            201,
            "opening the driver's wallet",
        ),
    )["wallet"]["id"]

    api.heading(f"2. The rider tops up $20.00, and asks to be told when less than ${money(ALERT_BELOW)} is available")
    step(
        2,
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
        ),
    )
    alerted = api.expect(
        api.call("PUT", f"/v1/wallets/{wallet_id}/alerts", caller=rider, body={"availableBelow": ALERT_BELOW}),
        200,
        "setting the balance alert",
    )
    if (alerted.get("alerts") or {}).get("availableBelow") != ALERT_BELOW:
        raise DemoFailed(f"the wallet's alert should be below {ALERT_BELOW}: {wallet_line(alerted)}")

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
    reservation_id = step(3, held)["reservation"]["id"]
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
    if (step(4, raised)["reservation"]["amount"], raised["wallet"]["held"]) != (1900, 1900):
        raise DemoFailed(f"the raised hold should hold 1900: {reservation_line(raised['reservation'])}")

    split = [{"walletId": driver_wallet_id}, {"account": "@revenue"}]  # 80 % to the driver, 20 % to the platform
    api.heading(
        "5. A stop on the way: the platform captures $8.00 for the first leg (final false: the rest stays held)"
    )
    step(
        5,
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
        ),
    )

    api.heading("6. The ride ends at $17.00 in all: the platform captures the last $9.00; the $2.00 left is released")
    capture = {
        "amount": 900,
        "splits": [{**split[0], "amount": 720}, {**split[1], "amount": 180}],
        "referenceType": "fare",
        "referenceId": ride,
    }
    first = api.call("POST", f"{hold_path}/capture", caller=admin, key=f"fare-{ride}", body=capture)
    captured = step(6, api.expect(first, 200, "the final capture"))
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
    step(8, short)
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

    api.heading("11. The events the story produced, as the local bus delivered them, by wallet, version and index")
    names = {wallet_id: owner, driver_wallet_id: driver}
    expected = {wallet_id: RIDER_EVENTS, driver_wallet_id: DRIVER_EVENTS}
    show_events(events, names, steps, expected, events_wait)
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
    parser.add_argument(
        "--events-file",
        type=Path,
        help="the file `make run` appends the events to (found as it finds it: EVENTS_FILE, else beside "
        "DB_PATH's folder, else .local/events.jsonl)",
    )
    parser.add_argument(
        "--events-wait", type=float, default=5, help="seconds to wait for events not yet in the file (5)"
    )
    arguments = parser.parse_args()
    if arguments.events_file is None:
        from devtools.local_api import events_file

        arguments.events_file = events_file()
    try:
        run(Api(arguments.base_url, full=arguments.full), arguments.wait, arguments.events_file, arguments.events_wait)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
