"""Every limit and pattern of the API, defined once: the service's checks, the HTTP request
schemas and the OpenAPI document all read them from here."""

from __future__ import annotations

from datetime import timedelta

MAX_INT64 = 2**63 - 1
# An amount is an integer number of minor units, 0 < amount <= MAX_AMOUNT.
MAX_AMOUNT = 10**15

# A hold's time to live, in seconds.
DEFAULT_TTL_SECONDS = 30 * 60
MIN_TTL_SECONDS = 1
MAX_TTL_SECONDS = 7 * 24 * 3600  # also the longest a hold may live, from its creation, whatever its increments
# Increments (raises) of one hold, at most.
MAX_INCREMENTS = 10

# The transaction lifetime the database is set to (mongod's transactionLifetimeLimitSeconds; the
# embedded server's launcher passes it): a transaction whose client died (a function killed at its
# timeout, a lost container, a cut connection) holds its documents this long before the server ends
# it. Twice the 5 s a request may wait on the database, far above a movement's transaction or an
# expiry batch's (milliseconds).
TRANSACTION_LIFETIME_SECONDS = 10
# How long a call keeps retrying write conflicts before answering Conflict (409, Retry-After): a
# live writer's transaction lasts milliseconds, so conflicts that last longer mean a wallet held by
# a writer that died in its transaction (until the lifetime above ends it) or a wallet too hot to
# win: the caller hears so within a second and comes back, rather than a function spinning on it
# for the 5 s a request may wait on a database that is away.
CONFLICT_BUDGET_SECONDS = 0.5
# An entry whose createdAt (taken by its transaction's attempt) is older than this belongs to a
# transaction that has committed or aborted: the lifetime, the 5 s a request retries, and 15 s for
# the skew between the writer's clock and the auditor's. The audit reads such entries outside any
# transaction (ledger_sums.py, audit.py).
SETTLED_SECONDS = 3 * TRANSACTION_LIFETIME_SECONDS

# Listings.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_CURSOR_LENGTH = 200

# Identifiers and text, as regular expressions without anchors (fullmatch them) and lengths.
OBJECT_ID_PATTERN = r"[0-9a-f]{24}"
VISIBLE_ASCII_PATTERN = r"[\x21-\x7e]+"
MAX_OWNER_ID_LENGTH = 256
MAX_IDEMPOTENCY_KEY_LENGTH = 255
IDEMPOTENCY_KEY_PATTERN = rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}"
MAX_REFERENCE_TYPE_LENGTH = 64
MAX_REFERENCE_ID_LENGTH = 128
MAX_REASON_LENGTH = 256  # a refund's reason: free text for people
TEXT_PATTERN = r"[^\x00-\x1f\x7f-\x9f]+"  # free text: any characters but control characters

# A platform account's name: a leading @, then lower-case letters, digits, - and _.
ACCOUNT_NAME_PATTERN = r"@[a-z0-9][a-z0-9_-]{0,62}"
# Destinations of one capture, at most.
MAX_SPLITS = 16

# Metadata: a flat object of scalars.
METADATA_KEY_PATTERN = r"[A-Za-z0-9_-]{1,64}"
MAX_METADATA_KEYS = 32
MAX_METADATA_STRING = 512

# An operation record (an idempotency key's answer) is kept at least this long.
IDEMPOTENCY_RETENTION = timedelta(hours=24)

# Holds expired per transaction, at most: a batch's transaction stays far inside the lifetime above
# (250 holds took about 1.5 s on the embedded server, a tenth of that on mongod; 1,000 took 9.5 s
# there). The schedule's batch is 100 (template.yaml, EXPIRY_BATCH_SIZE).
MAX_EXPIRY_BATCH = 250

# A platform account's postings rolled into its checkpoint per transaction, at most (each is an update:
# 100 keep a roll to half a second even on the embedded server, whose update of many documents holds
# up every other write to the ledger); a balance read that finds more than LONG_TAIL postings past
# the checkpoint rolls a batch (checkpoints.py).
ROLL_BATCH = 100
LONG_TAIL = 1000
