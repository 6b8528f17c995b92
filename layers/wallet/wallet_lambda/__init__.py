"""The HTTP side of the wallet, shared by every Lambda function: the runtime (one MongoClient per
container), request models, caller identity, the one place that maps errors to HTTP, and the
delivery of the outbox's events to the bus (delivery.py, event_sinks.py)."""
