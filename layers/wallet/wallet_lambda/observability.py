"""Logs, traces and metrics, shared by every function: the HTTP ones through wallet_lambda.http, the
scheduled expiry function directly, so that it does not import the API Gateway resolver, its
OpenAPI validation and the request models to log a report."""

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
# Trace the database calls; patching every library X-Ray supports would import botocore and
# friends on every cold start (about 160 ms) for the one SSM or secret read per container.
tracer = Tracer(patch_modules=("pymongo",))
# The template's namespace and service (a dimension of every metric the alarms name) unless the
# environment names others: never none, whatever imported this first.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Wallet",
    service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "wallet",
)


def count_amount_moved(operation: str, currency: str, amount: int) -> None:
    """AmountMoved: money one call moved, in the currency's minor units, by operation and currency.
    A metric document of its own: `metrics` flushes one set of dimensions for all it holds, and
    Succeeded and the others have no currency. Same namespace and service as theirs."""
    with single_metric(name="AmountMoved", unit=MetricUnit.Count, value=amount, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="operation", value=operation)
        metric.add_dimension(name="currency", value=currency)
        metric.add_dimension(name="service", value=metrics.service)
