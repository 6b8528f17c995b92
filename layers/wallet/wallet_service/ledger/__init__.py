"""What a ledger is made of, with no database: its models, errors and limits, the posting rules, and
the validated commands and reads."""
