"""Scheduled by EventBridge: expire due holds and release their money, then publish the run's events.

A run that could not finish some batches raises after logging its report, so Lambda's
asynchronous retries run it again and a run that keeps failing lands in the dead-letter queue
(expiry is exactly once per hold, so a rerun is always safe); holds skipped as unexpirable are
reported and left for people to look at. The events its batches committed go to the bus before it
returns, within its remaining time, with the other unsent events of the wallets they are for, each
wallet's in order (one read and one update for the whole run); what is left, and the unsent events
of other wallets, the scheduled publisher sends.
"""

import os

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_lambda.delivery import publish_committed
from wallet_lambda.observability import logger, metrics, tracer
from wallet_lambda.runtime import database_deadline, wallet_service
from wallet_service import committed_events

RESERVE_SECONDS = 5.0


class ExpiryIncomplete(RuntimeError):
    pass


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    metrics.add_dimension("operation", "ExpireReservations")
    time_limit = max(1.0, context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS)
    with committed_events() as committed, database_deadline(context.get_remaining_time_in_millis(), at_most=None):
        report = wallet_service().expire_reservations(
            batch_size=int(os.environ.get("EXPIRY_BATCH_SIZE", "100")), time_limit=time_limit
        )
    summary = report.model_dump(mode="json", by_alias=True)
    logger.info("expiry run", extra={"report": summary, "scheduledAt": event.get("time")})
    published = publish_committed(committed, context, at_most=None)
    if published is not None:
        logger.info("events published", extra={"published": published.model_dump(mode="json", by_alias=True)})
    metrics.add_metric(name="HoldsExpired", unit=MetricUnit.Count, value=report.expired)
    metrics.add_metric(name="HoldsSkipped", unit=MetricUnit.Count, value=report.skipped)
    metrics.add_metric(name="HoldsFailed", unit=MetricUnit.Count, value=report.failed)
    if report.failed:
        raise ExpiryIncomplete(f"{report.failed} holds could not be expired in this run; retrying is safe")
    return summary
