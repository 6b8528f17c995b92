"""Scheduled by EventBridge (every minute): send the events still unsent to the bus.

The function that commits a movement publishes its events right away; this one sends what such a
function left behind (it died, timed out or could not reach the bus between its commit and its
publishing): every wallet whose oldest unsent event is older than PUBLISH_OLDER_THAN_SECONDS, each
wallet's events in order. It emits `EventsPublished` and `EventsFailed` (events the bus refused
three times in this run: still unsent, tried again next minute), which the template's alarm
watches. It raises when the database cannot be read (Lambda retries the run; the next minute's
runs anyway) or when no sink is configured.
"""

import os

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_lambda.delivery import publish_due
from wallet_lambda.observability import logger, metrics, tracer

RESERVE_SECONDS = 5.0


class NoEventSink(RuntimeError):
    pass


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    metrics.add_dimension("operation", "PublishEvents")
    remaining = context.get_remaining_time_in_millis()
    report = publish_due(
        float(os.environ.get("PUBLISH_OLDER_THAN_SECONDS", "5")),
        time_limit=remaining / 1000 - RESERVE_SECONDS,
        remaining_millis=remaining,
    )
    if report is None:
        raise NoEventSink("no event sink: set EVENT_BUS_NAME (or EVENTS_FILE locally)")
    summary = report.model_dump(mode="json", by_alias=True)
    details = {"report": summary, "scheduledAt": event.get("time")}
    if report.sent or report.failed or report.pending:
        logger.info("publishing run", extra=details)
    else:
        logger.debug("publishing run", extra=details)  # a quiet minute: most of them
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=report.sent)
    metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=report.failed)
    return summary
