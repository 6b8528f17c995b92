"""Scheduled by EventBridge: expire due holds and release their money, then publish the run's events.

A run that could not finish some batches raises after logging its report, so Lambda's
asynchronous retries run it again and a run that keeps failing lands in the dead-letter queue
(expiry is exactly once per hold, so a rerun is always safe); holds skipped as unexpirable are
reported and left for people to look at. The events of the run's batches go to the bus before it
returns, within its remaining time, by the batches' operation ids (with the other unsent events of
the wallets they touched, each wallet's in order); what is left, and the unsent events of other
wallets, the scheduled publisher sends.
"""

import os

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_lambda.delivery import PUBLISH_MARGIN_SECONDS, publish_operations
from wallet_lambda.observability import logger, metrics, tracer
from wallet_lambda.runtime import database_deadline, wallet_service

RESERVE_SECONDS = 5.0


class ExpiryIncomplete(RuntimeError):
    pass


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    metrics.add_dimension("operation", "ExpireReservations")
    time_limit = max(1.0, context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS)
    with database_deadline(context.get_remaining_time_in_millis(), at_most=None):
        report = wallet_service().expire_reservations(
            batch_size=int(os.environ.get("EXPIRY_BATCH_SIZE", "100")), time_limit=time_limit
        )
    summary = report.model_dump(mode="json", by_alias=True)
    logger.info("expiry run", extra={"report": summary, "scheduledAt": event.get("time")})
    _publish(report.operation_ids, context)
    metrics.add_metric(name="HoldsExpired", unit=MetricUnit.Count, value=report.expired)
    metrics.add_metric(name="HoldsSkipped", unit=MetricUnit.Count, value=report.skipped)
    metrics.add_metric(name="HoldsFailed", unit=MetricUnit.Count, value=report.failed)
    if report.failed:
        raise ExpiryIncomplete(f"{report.failed} holds could not be expired in this run; retrying is safe")
    return summary


def _publish(operation_ids: tuple[str, ...], context: LambdaContext) -> None:
    """The events of the run's batches, within the remaining time; a failure is logged only."""
    if not operation_ids:
        return
    remaining = context.get_remaining_time_in_millis()
    try:
        report = publish_operations(operation_ids, remaining / 1000 - PUBLISH_MARGIN_SECONDS, remaining)
    except Exception:
        logger.exception("publishing the expiry's events failed: the scheduled publisher sends them")
        return
    if report is not None:
        logger.info("events published", extra={"published": report.model_dump(mode="json", by_alias=True)})
