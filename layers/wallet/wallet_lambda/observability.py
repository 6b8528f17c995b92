"""Logs, traces and metrics, shared by every function: the HTTP ones through wallet_lambda.http, the
scheduled expiry function directly, so that it does not import the API Gateway resolver, its
OpenAPI validation and the request models to log a report."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
# Trace the database calls; patching every library X-Ray supports would import botocore and
# friends on every cold start (about 160 ms) for the one SSM or secret read per container.
tracer = Tracer(patch_modules=("pymongo",))
# The template's namespace unless the environment names another: never none, whatever imported this first.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Wallet")
