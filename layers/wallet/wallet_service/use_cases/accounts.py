"""Platform accounts: `@funding`, `@payouts` and `@revenue` in every currency, and any other an
administrator opens (`@tips`, `@tax`, `@driver-payables`, ...), one per name and currency.

An account is not a document that movements update, or every deposit would wait on every other
there: its postings are journal entries (`account`, `currency`), its balance their sum, read as its
checkpoint plus the postings since (checkpoints.py). An opened account is a document of the
`accounts` registry whose _id is its name and currency, and it is never closed: so a movement asks
the registry outside its transaction (which then stays on the shards of the owners it moves money
for), and a process may remember the accounts it has seen."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from ..ledger import answers, reads
from ..ledger.errors import AccountExists, FieldError, NotFound, ValidationFailed
from ..ledger.models import AccountEntryPage, PlatformAccount
from ..ledger.postings import BUILT_IN_ACCOUNTS
from ..ledger.validation import encode_cursor
from ..storage import documents
from ..storage.queries import Database
from . import checkpoints

# Accounts seen opened, per ledger: they never close, so remembering them is never wrong.
_opened: set[tuple[str, str, str]] = set()


def open_account(db: Database, account: reads.AccountName) -> PlatformAccount:
    if account.name in BUILT_IN_ACCOUNTS:
        raise AccountExists(f"{account.name} is built in, in every currency")
    document = documents.platform_account(account.name, account.currency, db.clock())
    try:
        db.read(lambda: db.accounts.insert_one(document))
    except DuplicateKeyError:
        raise AccountExists(f"{account.name} is already open in {account.currency}") from None
    return PlatformAccount(name=account.name, currency=account.currency, balance=0, built_in=False)


def get_account(db: Database, account: reads.AccountName) -> PlatformAccount:
    if not is_open(db, account.name, account.currency):
        raise NotFound(f"no platform account {account.name} in {account.currency}")
    balance = checkpoints.balance(db, account.name, account.currency)
    built_in = account.name in BUILT_IN_ACCOUNTS
    return PlatformAccount(name=account.name, currency=account.currency, balance=balance, built_in=built_in)


def list_account_entries(db: Database, page: reads.AccountPage) -> AccountEntryPage:
    """A platform account's postings in one currency, newest first."""
    account = page.account
    if not is_open(db, account.name, account.currency):
        raise NotFound(f"no platform account {account.name} in {account.currency}")
    query = checkpoints.postings_query(account.name, account.currency, before=page.position)
    found = db.read(
        lambda: list(db.ledger.find(query, comment=checkpoints.EVERY_SHARD).sort("_id", -1).limit(page.limit + 1))
    )
    items = tuple(answers.account_entry_from_document(document) for document in found[: page.limit])
    next_cursor = encode_cursor(page.cursor_scope, items[-1].id) if len(found) > page.limit else None
    return AccountEntryPage(items=items, next_cursor=next_cursor)


def is_open(db: Database, name: str, currency: str) -> bool:
    """Whether the account is open in the currency, read outside any transaction: an account never
    closes, so what a committed read says open stays open."""
    seen = (db.accounts.full_name, name, currency)
    if name in BUILT_IN_ACCOUNTS or seen in _opened:
        return True
    if db.accounts.find_one({"_id": documents.platform_account_id(name, currency)}, {"_id": 1}) is None:
        return False
    _opened.add(seen)
    return True


def require_open(db: Database, field: str, names: list[str], currency: str) -> None:
    """Refuse (422) a movement that names a platform account not open in its currency."""
    missing = [name for name in names if not is_open(db, name, currency)]
    if missing:
        raise ValidationFailed([FieldError(field, f"no platform account {name} in {currency}") for name in missing])
