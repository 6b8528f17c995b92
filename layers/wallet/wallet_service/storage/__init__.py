"""Where the ledger lives in MongoDB: its documents and indexes, the queries, the transactions that
run them, exactly-once records and the outbox."""
