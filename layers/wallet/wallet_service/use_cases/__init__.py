"""The operations, each one or more transactions: wallets, movements, holds and refunds, the
platform's accounts, the journal, and the jobs (expiry, publishing, the audit, checkpoints, migration)."""
