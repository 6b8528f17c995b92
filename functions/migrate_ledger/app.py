"""Invoked by an operator, once (no trigger): bring a single-entry ledger over to double entry.

Idempotent: invoking it again adds nothing. `aws lambda invoke --function-name <MigrateLedger> out.json`
after deploying this version; `make migrate` does the same against the local database.
"""

from aws_lambda_powertools.utilities.typing import LambdaContext

from wallet_lambda.observability import logger, tracer
from wallet_lambda.runtime import database_deadline, wallet_service


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    with database_deadline(context.get_remaining_time_in_millis(), at_most=None):
        report = wallet_service().migrate_ledger()
    summary = report.model_dump(mode="json", by_alias=True)
    logger.info("ledger migration", extra={"report": summary})
    return summary
