"""Scheduled by EventBridge (hourly): prove the ledger, report every discrepancy.

Each discrepancy is logged, and the run emits `LedgerImbalance` (currencies whose postings do not
sum to zero) and `WalletMismatches` (wallets and holds whose figures their entries do not explain),
which the template's alarm watches. A finding is not a failure of the function: the run returns
its report either way, and only a database that cannot be read makes it raise (and be retried).
"""

import os

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_lambda.observability import logger, metrics, tracer
from wallet_lambda.runtime import database_deadline, wallet_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    metrics.add_dimension("operation", "AuditLedger")
    with database_deadline(context.get_remaining_time_in_millis(), at_most=None):
        report = wallet_service().audit_ledger(batch_size=int(os.environ.get("AUDIT_BATCH_SIZE", "200")))
    for found in report.discrepancies:
        logger.error("ledger discrepancy", extra={"discrepancy": found.model_dump(mode="json")})
    summary = report.model_dump(mode="json", by_alias=True, exclude={"discrepancies"})
    summary["discrepancies"] = len(report.discrepancies)
    logger.info("audit run", extra={"report": summary, "scheduledAt": event.get("time")})
    metrics.add_metric(name="LedgerImbalance", unit=MetricUnit.Count, value=report.ledger_imbalances)
    metrics.add_metric(name="WalletMismatches", unit=MetricUnit.Count, value=report.wallet_mismatches)
    return summary
