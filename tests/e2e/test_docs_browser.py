"""Swagger UI at /docs, as a person sees it: `make run`'s server in headless Chromium (Playwright).

One walk through the page, in the order a newcomer takes it: every operation listed under its
group with its summary, examples and links; Authorize with a `make token` token; "Try it out" to
open a wallet (201), deposit into it with an Idempotency-Key (201) and read it back (200, the
balance); the token kept across a reload; and without a token, API Gateway's own 401. The page
must load nothing from anywhere but the server, and log no error. A full-page screenshot is
kept in `.local/docs-page.png` after each run.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright

from devtools import browser
from devtools.local_auth import issue_token
from devtools.local_server import Server, running_server
from devtools.paths import LOCAL, OPENAPI

SCREENSHOT = LOCAL / "docs-page.png"
SPEC = json.loads((OPENAPI).read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("docs") / "server.log") as running:
        yield running


@dataclass
class Watched:
    """What the page did besides rendering: requests to other hosts, script errors."""

    foreign_requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def watched() -> Watched:
    return Watched()


@pytest.fixture
def page(server: Server, watched: Watched) -> Iterator[Page]:
    with sync_playwright() as playwright:
        chromium = browser.launch(playwright)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "request",
            lambda request: request.url.startswith(server.base) or watched.foreign_requests.append(request.url),
        )
        page.on("pageerror", lambda error: watched.errors.append(str(error)))
        page.on("console", lambda message: _script_error(message) and watched.errors.append(message.text))
        try:
            yield page
        finally:
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=SCREENSHOT, full_page=True)
            chromium.close()


def _script_error(message) -> bool:
    """A console error other than Chromium's note of an HTTP error status (a 401 is an answer here)."""
    return message.type == "error" and not message.text.startswith("Failed to load resource: the server responded")


def operation(page: Page, tag: str, operation_id: str) -> Locator:
    """An operation's block, opened (Swagger UI names it operations-<tag>-<operationId>)."""
    block = page.locator(f"#operations-{tag.replace(' ', '_')}-{operation_id}")
    if not block.locator(".opblock-body").is_visible():
        block.locator(".opblock-summary-control").click()
    expect(block.locator(".opblock-body")).to_be_visible()
    return block


def execute(page: Page, block: Locator) -> tuple[int, object]:
    """Press Execute and read the status and body the page shows once the answer has arrived."""
    with page.expect_response(lambda response: response.request.resource_type == "fetch") as arrived:
        block.get_by_role("button", name="Execute").click()
    sent = arrived.value
    shown = block.locator(".live-responses-table tbody tr.response").first
    expect(shown.locator(".response-col_status")).to_have_text(str(sent.status))
    body = shown.locator(".response-col_description pre.microlight").first
    expect(body).to_have_text(re.compile(r"\S"))
    for _ in range(50):  # the page renders the body just after the status
        if json.loads(body.inner_text()) == sent.json():
            break
        page.wait_for_timeout(100)
    return sent.status, json.loads(body.inner_text())


def fill_parameter(block: Locator, name: str, value: str) -> None:
    block.locator(f'tr[data-param-name="{name}"] input').fill(value)


def authorize(page: Page, token: str | None) -> None:
    """The Authorize dialog: paste a token, or log out when None."""
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    if token is None:
        dialog.get_by_role("button", name="Remove authorization").click()
    else:
        dialog.locator("input").fill(token)
        dialog.get_by_role("button", name="Apply credentials").click()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_the_docs_page_lists_the_api_and_tries_it_out(server: Server, page: Page, watched: Watched):
    page.goto(f"{server.base}/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
    expect(page.locator(".info .title")).to_contain_text(SPEC["info"]["title"])

    # Every operation, under its group, with its summary.
    for group in SPEC["tags"]:
        expect(page.locator(f'.opblock-tag[data-tag="{group["name"]}"]')).to_contain_text(group["description"][:40])
    listed = {
        (block.get_attribute("id") or "").rsplit("-", 1)[-1]: block.locator(".opblock-summary-description").inner_text()
        for block in page.locator(".opblock").all()
    }
    documented = {
        operation["operationId"]: operation["summary"] for item in SPEC["paths"].values() for operation in item.values()
    }
    assert listed == documented

    # Schemas, a request example, and the links from opening a wallet.
    schemas = page.locator('section.models article[data-json-schema-level="0"] > .json-schema-2020-12-head')
    expect(schemas.first).to_be_visible()
    assert sorted(schemas.locator(".json-schema-2020-12__title").all_inner_texts()) == sorted(
        SPEC["components"]["schemas"]
    )
    create = operation(page, "Wallets", "CreateWallet")
    assert json.loads(create.locator("textarea.body-param__text").input_value()) == {"currency": "USD"}
    links = create.locator('tr.response[data-code="201"] .response-col_links')
    for target in SPEC["paths"]["/v1/wallets"]["post"]["responses"]["201"]["links"]:
        expect(links).to_contain_text(target)
    hold = operation(page, "Holds", "CreateReservation")
    expect(hold.locator('tr.response[data-code="201"] .response-col_links')).to_contain_text("CaptureReservation")

    # Authorize once, then try it out: open a wallet, deposit into it, read it back.
    owner = f"docs-{uuid.uuid4().hex[:8]}"
    authorize(page, issue_token(owner))
    status, opened = execute(page, create)
    assert status == 201, opened
    wallet_id = opened["wallet"]["id"]
    assert opened["wallet"]["ownerId"] == owner

    deposit = operation(page, "Money movements", "Deposit")
    fill_parameter(deposit, "walletId", wallet_id)
    fill_parameter(deposit, "Idempotency-Key", f"docs-top-up-{owner}")
    status, deposited = execute(page, deposit)
    assert (status, deposited["wallet"]["balance"]) == (201, 2500), deposited

    read = operation(page, "Wallets", "GetWallet")
    fill_parameter(read, "walletId", wallet_id)
    status, wallet = execute(page, read)
    assert (status, wallet["balance"], wallet["available"]) == (200, 2500, 2500), wallet

    # The token survives a reload (persistAuthorization): paste it once.
    page.reload()
    expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)  # rendered again before it is clicked
    read = operation(page, "Wallets", "GetWallet")
    fill_parameter(read, "walletId", wallet_id)
    assert execute(page, read)[0] == 200

    # Without a token: API Gateway's own answer.
    authorize(page, None)
    assert execute(page, read) == (401, {"message": "Unauthorized"})

    assert watched.foreign_requests == [], "the page loaded something from elsewhere (a CDN?)"
    assert watched.errors == []
