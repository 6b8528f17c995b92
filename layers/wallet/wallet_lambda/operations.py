"""The table of operations: one row per Lambda function, written once.

The handlers' entry point (http.py) reads a row for the route, its success status, whether it
needs an Idempotency-Key and whether it is for administrators only; the OpenAPI generator, the
template test and the local tools read the same rows. `path` is written as API Gateway and
OpenAPI write it; `function` is the function's folder under functions/ and `name` its logical id
in template.yaml and its operationId. `publishes` says whether a function sends events to the bus
(wallet_lambda.delivery): an HTTP one those its transactions committed, once it has answered; a
scheduled one what its run committed (expiry) or every unsent event that is due. `moved` says which
of its answer's entries are the money it moved (the AmountMoved metric).
"""

from __future__ import annotations

from dataclasses import dataclass

from wallet_service import (
    AccountEntryPage,
    EntryPage,
    EntryType,
    Movement,
    PlatformAccount,
    Reservation,
    ReservationPage,
    Wallet,
    WalletBalance,
)
from wallet_service.ledger.limits import MAX_INCREMENTS, MAX_TTL_SECONDS

from .schemas import Health

# The problems each kind of route can answer, besides the ones every route answers before routing
# (400 malformed, 413 too large, 415 not JSON): see http.PROBLEM_DESCRIPTIONS.
# 403: the token lacks the operation's scope (Operation.scope).
READ_PROBLEMS = (401, 403, 404, 422, 500, 503)  # 400 also for a cursor this listing did not issue
MONEY_PROBLEMS = (401, 403, 404, 409, 422, 500, 503)
HEALTH_PROBLEMS = (500, 503)

# What "money moved" means (Operation.moved, the AmountMoved metric): the amounts of the answer's
# entries of one type, the money that changed hands. A transfer counts its TRANSFER_OUT (the amount
# once, not both sides); a capture what it captured (not the rest a final capture releases); a refund
# what went back to the payer; opening a wallet its opening balance. Placing, raising and releasing a
# hold move none: the money never leaves its wallet.


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    function: str
    method: str  # "" for a scheduled function
    path: str
    status: int
    summary: str
    tag: str
    answer: type | None  # the success body's model
    answer_description: str
    problems: tuple[int, ...]
    needs_idempotency_key: bool = False
    # Taken when sent, not needed: opening a wallet (an owner has one per currency, so a retry without
    # a key is answered 409 wallet_exists, naming it; with a key it is answered as the first time).
    optional_idempotency_key: bool = False
    admin_only: bool = False
    public: bool = False  # no token needed
    publishes: bool = False  # it sends events to the bus
    moved: EntryType | None = None  # the type of the answer's entries that are the money it moved
    # A 201's Location names what it created (a wallet, a hold, an account); a movement that creates
    # entries only (a deposit, a withdrawal, a transfer) has no resource of its own to name.
    located: bool = True

    @property
    def scope(self) -> str:
        """The scope a caller's token needs (wallet_lambda.identity.scope names it as the issuer does):
        none for a public route, admin for an administrator's, read for a GET, write for the rest.
        wallet:admin grants every one."""
        if self.public:
            return ""
        if self.admin_only:
            return "admin"
        return "read" if self.method == "GET" else "write"

    @property
    def route(self) -> str:
        """The path as Powertools routes write it: `<walletId>` for `{walletId}`."""
        return self.path.replace("{", "<").replace("}", ">")


PAGE = "one page, and the cursor of the next if there is one"

# The groups the rows name (`tag`), in the order the API's document (and Swagger UI) lists them.
TAGS = {
    "Wallets": (
        "Open a wallet per owner and currency, read it, freeze and unfreeze it (admin), and set the "
        "balance alert its events carry (`wallet.balance.low` when its available money drops below "
        "`availableBelow`, `wallet.balance.restored` when it is back)."
    ),
    "Money movements": "Deposits, withdrawals and transfers. Each needs an `Idempotency-Key`.",
    "Holds": (
        "Hold money for a time (a reservation) while a ride or an order runs, then capture it, in one "
        "part or several, or release it. Every call that moves money needs an `Idempotency-Key`.\n\n"
        "- **Raise** an open hold when the fare grows (a detour, a wait, a toll): `POST .../increments` "
        "holds `amount` more and may push the expiry out (`ttlSeconds` from now, never earlier than it "
        f"was). At most {MAX_INCREMENTS} raises per hold, and never past {MAX_TTL_SECONDS // 86_400} days "
        "after the hold was placed (a 422 on `ttlSeconds`).\n"
        "- **Capture** takes `amount` (default: all the hold still holds) to `splits` (default: all to "
        "`@revenue`). A final capture (the default) releases the rest and ends the hold; `final: false` "
        "takes `amount` and leaves the rest held, for more captures, a release or the expiry.\n"
        "- **At expiry**, the schedule releases what the hold still holds (`onExpiry: release`, the "
        "default) or captures it (`onExpiry: capture`) to `captureTo`: a wallet in the hold's currency "
        "(not its own) or an open platform account, default `@revenue` (a no-show fee, a pre-agreed fare).\n"
        "- **Statuses**: HELD → PARTIALLY_CAPTURED (after a capture that is not final) → CAPTURED, "
        "RELEASED or EXPIRED. A hold is open, to raise, capture or release, while HELD or "
        "PARTIALLY_CAPTURED; `heldAmount` is what it still holds, and `amount` = `capturedAmount` + "
        "`releasedAmount` + `heldAmount`.\n"
        "- **Errors**: 409 `insufficient_funds` (a hold or a raise beyond the available money), "
        "`invalid_state` (the hold is no longer open, past its expiry, or raised the most times), "
        "`wallet_frozen` (no new hold or raise on a frozen wallet; captures and releases still go); "
        "422 `validation_error` on the field at fault (an amount beyond what the hold holds, splits "
        "that do not add up, `captureTo` without `onExpiry: capture` or naming an unknown wallet or "
        "account, `final: false` without `amount`)."
    ),
    "Journal": "Every entry of a wallet, newest first, keyset-paged.",
    "Platform accounts": (
        "The platform's side of every movement (admin): `@funding`, `@payouts`, `@revenue` in every "
        "currency, and any account an administrator opens. A balance is the sum of the account's postings, "
        "read as its checkpoint plus the postings since."
    ),
    "Service": "Health of the service and its database.",
}

# fmt: off
OPERATIONS: tuple[Operation, ...] = (
    #         name                  function               method  path                                         status
    Operation("CreateWallet",       "create_wallet",       "POST", "/v1/wallets",                               201,
              "Open a wallet", "Wallets", Movement, "the wallet, and its opening DEPOSIT entry if any",
              MONEY_PROBLEMS, optional_idempotency_key=True, publishes=True, moved=EntryType.DEPOSIT),
    Operation("GetWallet",          "get_wallet",          "GET",  "/v1/wallets/{walletId}",                    200,
              "Read a wallet", "Wallets", Wallet, "the wallet", READ_PROBLEMS),
    Operation("GetBalance",         "get_balance",         "GET",  "/v1/wallets/{walletId}/balance",            200,
              "A wallet's balance at a time", "Wallets", WalletBalance,
              "balance, held and available as they were at `at`", READ_PROBLEMS),
    Operation("FreezeWallet",       "freeze_wallet",       "POST", "/v1/wallets/{walletId}/freeze",             200,
              "Freeze a wallet", "Wallets", Wallet, "the wallet after the change", MONEY_PROBLEMS,
              admin_only=True, publishes=True),
    Operation("UnfreezeWallet",     "unfreeze_wallet",     "POST", "/v1/wallets/{walletId}/unfreeze",           200,
              "Unfreeze a wallet", "Wallets", Wallet, "the wallet after the change", MONEY_PROBLEMS,
              admin_only=True, publishes=True),
    Operation("SetWalletAlerts",    "set_wallet_alerts",   "PUT",  "/v1/wallets/{walletId}/alerts",             200,
              "Set or remove a wallet's balance alert", "Wallets", Wallet, "the wallet with its alert",
              READ_PROBLEMS),
    Operation("Deposit",            "deposit",             "POST", "/v1/wallets/{walletId}/deposits",           201,
              "Add money to a wallet", "Money movements", Movement, "the deposit entry and the wallet after it",
              MONEY_PROBLEMS, needs_idempotency_key=True, publishes=True, moved=EntryType.DEPOSIT, located=False),
    Operation("Withdraw",           "withdraw",            "POST", "/v1/wallets/{walletId}/withdrawals",        201,
              "Take money out of a wallet", "Money movements", Movement,
              "the withdrawal entry and the wallet after it", MONEY_PROBLEMS, needs_idempotency_key=True,
              publishes=True, moved=EntryType.WITHDRAWAL, located=False),
    Operation("Transfer",           "transfer",            "POST", "/v1/transfers",                             201,
              "Transfer between wallets", "Money movements", Movement, "the entries and wallets the caller may see",
              MONEY_PROBLEMS, needs_idempotency_key=True, publishes=True, moved=EntryType.TRANSFER_OUT,
              located=False),
    Operation("CreateReservation",  "create_reservation",  "POST", "/v1/wallets/{walletId}/reservations",       201,
              "Hold money", "Holds", Movement, "the reservation, its HOLD entry and the wallet", MONEY_PROBLEMS,
              needs_idempotency_key=True, publishes=True),
    Operation("ListReservations",   "list_reservations",   "GET",  "/v1/wallets/{walletId}/reservations",       200,
              "List a wallet's reservations", "Holds", ReservationPage, PAGE, READ_PROBLEMS),
    Operation("GetReservation",     "get_reservation",     "GET",  "/v1/reservations/{reservationId}",          200,
              "Read a reservation", "Holds", Reservation, "the reservation", READ_PROBLEMS),
    Operation("IncrementReservation", "increment_reservation", "POST", "/v1/reservations/{reservationId}/increments",
              201, "Raise an open hold", "Holds", Movement,
              "the reservation with its new increment, the raise's HOLD entry and the wallet", MONEY_PROBLEMS,
              needs_idempotency_key=True, publishes=True),
    Operation("CaptureReservation", "capture_reservation", "POST", "/v1/reservations/{reservationId}/capture",  200,
              "Take all or part of a hold; a final capture releases the rest", "Holds", Movement,
              "the reservation, its entries and the wallet", MONEY_PROBLEMS, needs_idempotency_key=True,
              publishes=True, moved=EntryType.CAPTURE),
    Operation("ReleaseReservation", "release_reservation", "POST", "/v1/reservations/{reservationId}/release",  200,
              "Give a hold back", "Holds", Movement, "the reservation, its entries and the wallet", MONEY_PROBLEMS,
              needs_idempotency_key=True, publishes=True),
    Operation("RefundReservation",  "refund_reservation",  "POST", "/v1/reservations/{reservationId}/refunds",  201,
              "Refund part or all of a captured hold (admin)", "Holds", Movement,
              "the refund's entries, the hold's wallet and the reservation with its refunds",
              MONEY_PROBLEMS, needs_idempotency_key=True, admin_only=True,
              publishes=True, moved=EntryType.REFUND_IN),
    Operation("ListTransactions",   "list_transactions",   "GET",  "/v1/wallets/{walletId}/transactions",       200,
              "List a wallet's journal entries", "Journal", EntryPage, PAGE, READ_PROBLEMS),
    Operation("OpenAccount",        "open_account",        "POST", "/v1/accounts",                              201,
              "Open a platform account", "Platform accounts", PlatformAccount, "the account, with nothing on it",
              (401, 403, 409, 422, 500, 503), admin_only=True),
    Operation("GetAccount",         "get_account",         "GET",  "/v1/accounts/{name}",                       200,
              "Read a platform account's balance", "Platform accounts", PlatformAccount,
              "the account and its balance in the currency", READ_PROBLEMS, admin_only=True),
    Operation("ListAccountTransactions", "list_account_transactions", "GET", "/v1/accounts/{name}/transactions", 200,
              "List a platform account's postings", "Platform accounts", AccountEntryPage, PAGE,
              READ_PROBLEMS, admin_only=True),
    Operation("Health",             "health",              "GET",  "/health",                                   200,
              "Health", "Service", Health, "the database answered", HEALTH_PROBLEMS, public=True),
    Operation("ExpireReservations", "expire_reservations", "",     "",                                          0,
              "Expire due holds (EventBridge schedule)", "Service", None, "", (), publishes=True),
    Operation("PublishEvents",      "publish_events",      "",     "",                                          0,
              "Send the events still unsent to the bus (EventBridge schedule)", "Service", None, "", (),
              publishes=True),
    Operation("AuditLedger",        "audit_ledger",        "",     "",                                          0,
              "Prove the ledger (EventBridge schedule, hourly)", "Service", None, "", ()),
    Operation("RollCheckpoints",    "roll_checkpoints",    "",     "",                                          0,
              "Roll platform accounts' postings into their checkpoints (EventBridge schedule)", "Service", None,
              "", ()),
    Operation("MigrateLedger",      "migrate_ledger",      "",     "",                                          0,
              "Bring a single-entry ledger to double entry (invoked once)", "Service", None, "", ()),
)
# fmt: on

BY_NAME = {operation.name: operation for operation in OPERATIONS}
BY_FUNCTION = {operation.function: operation for operation in OPERATIONS}
HTTP_OPERATIONS = tuple(operation for operation in OPERATIONS if operation.method)
PUBLISHERS = tuple(operation for operation in OPERATIONS if operation.publishes)
