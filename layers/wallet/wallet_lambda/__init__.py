"""The HTTP side of the wallet, shared by every Lambda function: the runtime (one MongoClient per
container), request models, caller identity, and the one place that maps errors to HTTP."""
