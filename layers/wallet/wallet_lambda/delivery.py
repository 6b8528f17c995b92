"""Publishing the outbox's events from the functions: after the answer, and on a schedule.

An HTTP function collects the events its transactions commit while it answers
(wallet_service.committed_events) and, once the answer has left (after_answer.py), sends them with
any older unsent events of the same wallets first: one read and one update, within what is left of
its time. A replay, a refusal or a read commits no event and sends nothing. Publishing never changes
an answer: a sink that fails, a database that does not answer or no time left is logged, and the
events wait in the outbox, where the scheduled publisher (functions/publish_events) finds them a few
seconds later. The expiry job publishes its run's committed events the same way, before it returns.
"""

from __future__ import annotations

import time

from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_service import CommittedEvents, PublishReport

from . import runtime
from .observability import logger, tracer

# After an answer: at most this long, and never closer than the margin to the Lambda's timeout.
COMMIT_PUBLISH_SECONDS = 2.0
PUBLISH_MARGIN_SECONDS = 1.0
MINIMUM_PUBLISH_SECONDS = 0.2


def publish_seconds(remaining_millis: int, *, at_most: float | None, margin: float = PUBLISH_MARGIN_SECONDS) -> float:
    """The time publishing may take: the Lambda's remaining time less `margin`, at most `at_most`."""
    seconds = remaining_millis / 1000 - margin
    return seconds if at_most is None else min(seconds, at_most)


@tracer.capture_method(capture_response=False)
def publish_committed(
    committed: CommittedEvents, context: LambdaContext, at_most: float | None = COMMIT_PUBLISH_SECONDS
) -> PublishReport | None:
    """Send the committed events' wallets' unsent events, within the invocation's remaining time (at
    most `at_most` seconds); None when there is nothing to send, no sink, no time left, or publishing
    failed (logged)."""
    if not committed:
        return None
    try:
        sink = runtime.event_sink()
        if sink is None:
            return None
        remaining = context.get_remaining_time_in_millis()
        seconds = publish_seconds(remaining, at_most=at_most)
        if seconds < MINIMUM_PUBLISH_SECONDS:
            logger.warning("no time left to publish the events: the scheduled publisher sends them")
            return None
        started = time.monotonic()
        with runtime.database_deadline(remaining, at_most=seconds):
            report = runtime.wallet_service().publish_events(sink, committed=committed, time_limit=seconds)
    except Exception:
        logger.exception("publishing the events failed: the scheduled publisher sends them")
        return None
    summary = {**report.model_dump(mode="json", by_alias=True), "seconds": round(time.monotonic() - started, 3)}
    if report.failed or report.pending:
        logger.warning("some events are left for the scheduled publisher", extra={"published": summary})
    else:
        logger.debug("events published", extra={"published": summary})
    return report


@tracer.capture_method(capture_response=False)
def publish_due(older_than_seconds: float, time_limit: float, remaining_millis: int) -> PublishReport | None:
    """The scheduled publisher: every wallet's unsent events older than `older_than_seconds`, within
    `time_limit` seconds; None when no sink is configured. Raises when the database fails."""
    sink = runtime.event_sink()
    if sink is None:
        return None
    with runtime.database_deadline(remaining_millis, at_most=None):
        return runtime.wallet_service().publish_events(
            sink, older_than_seconds=older_than_seconds, time_limit=max(MINIMUM_PUBLISH_SECONDS, time_limit)
        )
