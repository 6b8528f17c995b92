"""Publishing the outbox's events from the functions: right after a commit, and on a schedule.

A function whose answer says it changed a wallet (a 2xx of a row of the table of operations with
`publishes`) sends that change's events right away, within what is left of its time: the events of
the answer's operation (`operationId`), or of the answered wallet (freeze, unfreeze), and any older
unsent ones of the same wallets before them. It never changes the answer: a sink that fails, a
database that does not answer or no time left is logged, and the events wait in the outbox, where
the scheduled publisher (functions/publish_events) finds them a few seconds later. The expiry job
publishes its batches' events the same way, by their operation ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from wallet_service import PublishReport

from . import runtime
from .observability import logger, tracer

if TYPE_CHECKING:
    from .operations import Operation

# Right after a commit: at most this long, and never closer than the margin to the Lambda's timeout.
COMMIT_PUBLISH_SECONDS = 2.0
PUBLISH_MARGIN_SECONDS = 1.0
MINIMUM_PUBLISH_SECONDS = 0.2


def publish_seconds(remaining_millis: int, *, at_most: float | None, margin: float = PUBLISH_MARGIN_SECONDS) -> float:
    """The time publishing may take: the Lambda's remaining time less `margin`, at most `at_most`."""
    seconds = remaining_millis / 1000 - margin
    return seconds if at_most is None else min(seconds, at_most)


@tracer.capture_method(capture_response=False)
def after_commit(operation: Operation, response: dict, remaining_millis: int) -> PublishReport | None:
    """Publish the events of a successful answer of `operation` (see the module's docstring); None
    when there is nothing to publish, no sink, no time left, or publishing failed (logged)."""
    # Imported here: the scheduled functions import this module but not the operations table
    # (its schemas cost them ~9 ms of cold start); an HTTP function has it loaded already.
    from .operations import PUBLISHES_OPERATION, PUBLISHES_WALLET

    if not operation.publishes or not 200 <= int(response.get("statusCode", 500)) < 300:
        return None
    try:
        sink = runtime.event_sink()
        if sink is None:
            return None
        seconds = publish_seconds(remaining_millis, at_most=COMMIT_PUBLISH_SECONDS)
        if seconds < MINIMUM_PUBLISH_SECONDS:
            logger.warning("no time left to publish the events: the scheduled publisher sends them")
            return None
        answer = json.loads(response["body"])
        if operation.publishes == PUBLISHES_OPERATION:
            target = {"operation_id": answer["operationId"]}
        elif operation.publishes == PUBLISHES_WALLET:
            target = {"wallet_id": answer["id"]}
        else:
            return None
        started = time.monotonic()
        with runtime.database_deadline(remaining_millis, at_most=seconds):
            report = runtime.wallet_service().publish_events(sink, time_limit=seconds, **target)
    except Exception:
        logger.exception("publishing the events failed: the scheduled publisher sends them")
        return None
    summary = {**report.model_dump(mode="json", by_alias=True), "seconds": round(time.monotonic() - started, 3)}
    if report.failed or report.pending:
        logger.warning("some events are left for the scheduled publisher", extra={"published": summary, **target})
    else:
        logger.debug("events published", extra={"published": summary, **target})
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


@tracer.capture_method(capture_response=False)
def publish_operations(operation_ids: Sequence[str], time_limit: float, remaining_millis: int) -> PublishReport | None:
    """The expiry job: the unsent events of the wallets its operations (batches) touched, one
    operation after another within `time_limit` seconds; None when no sink is configured. The
    operations not reached (time ran out, or the sink refused an event for good) are left to the
    scheduled publisher, uncounted. Raises when the database fails."""
    sink = runtime.event_sink()
    if sink is None:
        return None
    stop_at = time.monotonic() + max(MINIMUM_PUBLISH_SECONDS, time_limit)
    sent = failed = pending = 0
    with runtime.database_deadline(remaining_millis, at_most=None):
        for operation_id in operation_ids:
            seconds = stop_at - time.monotonic()
            if seconds <= 0:
                break
            report = runtime.wallet_service().publish_events(sink, operation_id=operation_id, time_limit=seconds)
            sent, failed, pending = sent + report.sent, failed + report.failed, pending + report.pending
            if report.failed:
                break  # the sink keeps refusing: trying the next operations would only wait on it
    return PublishReport(sent=sent, failed=failed, pending=pending)
