"""Scheduled by EventBridge (every minute): roll each platform account's new postings into its
checkpoint, so that its balance stays one short read whatever the ledger's size.

A run that ends at its time limit with tails left says so (`finished: false`); the next minute's
run goes on where it stopped, and a balance read that finds a long tail rolls a batch itself. A run
that fails is not retried: the next one does the same work. It emits `PostingsRolled`.
"""

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_lambda.observability import logger, metrics, tracer
from wallet_lambda.runtime import database_deadline, wallet_service

RESERVE_SECONDS = 5.0


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    metrics.add_dimension("operation", "RollCheckpoints")
    time_limit = max(1.0, context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS)
    with database_deadline(context.get_remaining_time_in_millis(), at_most=None):
        report = wallet_service().roll_checkpoints(time_limit=time_limit)
    summary = report.model_dump(mode="json", by_alias=True)
    details = {"report": summary, "scheduledAt": event.get("time")}
    if report.postings or not report.finished:
        logger.info("checkpoint run", extra=details)
    else:
        logger.debug("checkpoint run", extra=details)  # nothing new since the last minute
    metrics.add_metric(name="PostingsRolled", unit=MetricUnit.Count, value=report.postings)
    return summary
