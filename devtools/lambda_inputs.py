"""What Lambda hands a handler, for every local runner and test: one context, one scheduled event.

Plain Python and standard library only: `make importtime`'s clean child process reads this file
directly, without devtools on its path."""

import time
import uuid
from datetime import UTC, datetime


class LambdaContext:
    """Lambda's context: names, memory, a request id, and a deadline `timeout_seconds` from now."""

    def __init__(self, function_name: str = "wallet", timeout_seconds: float = 10.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def scheduled_event(rule: str) -> dict:
    """The payload an EventBridge schedule (`rule`) sends its target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"],
        "detail": {},
    }
