"""Work a function does once its answer has left: on Lambda, an internal extension.

Lambda freezes an execution environment only when its runtime has posted the answer and every
extension registered for INVOKE has asked for its next event. So a thread of the function's own
process, registered at init as an internal extension (the Extensions API at AWS_LAMBDA_RUNTIME_API),
keeps the environment running after the answer: on each INVOKE it waits for what the handler hands
over at its end, does it, and only then asks for the next event ("Running code after returning a
response from an AWS Lambda function", AWS Compute Blog). The client has its answer meanwhile; the
work counts against the invocation's timeout and its billed duration, and the environment takes
its next request once the work is done.

Without an Extensions API (a handler called in a test or a script) `hand_over` does the work at
once, before the handler returns. `make run`'s containers serve the Extensions API and deliver INVOKE
once the client has the answer (devtools/extensions_api.py); `sam local`'s emulator serves it but
holds the answer until the extension has asked for its next event (docs/sam-local.md).
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import threading
import time
from collections.abc import Callable

from .observability import logger

EXTENSION_NAME = "wallet-after-answer"
EXTENSIONS_API = "2020-01-01/extension"

Job = Callable[[], None]

_lock = threading.Lock()
_extension: _Extension | None = None


class _Extension:
    """The internal extension: one thread that runs each invocation's handed-over job."""

    def __init__(self, api: str) -> None:
        self._api = api
        self._jobs: queue.Queue[tuple[str, Job | None]] = queue.Queue()
        self._identifier = ""
        self._connection: http.client.HTTPConnection | None = None  # kept alive between calls
        self.alive = False

    def register(self) -> None:
        headers = {"Lambda-Extension-Name": EXTENSION_NAME}
        answer, _ = self._call("POST", "register", json.dumps({"events": ["INVOKE"]}).encode(), headers)
        self._identifier = answer.getheader("Lambda-Extension-Identifier") or ""
        self.alive = True
        threading.Thread(target=self._serve, name=EXTENSION_NAME, daemon=True).start()

    def hand_over(self, request_id: str, job: Job | None) -> None:
        self._jobs.put((request_id, job))

    def _serve(self) -> None:
        while True:
            try:
                _, body = self._call("GET", "event/next", None, {"Lambda-Extension-Identifier": self._identifier})
                event = json.loads(body)
            except Exception:
                # Lambda ends the environment at its timeout; until then the handlers do their work themselves.
                self.alive = False
                logger.exception("the after-answer extension lost the Extensions API")
                return
            if event.get("eventType") == "INVOKE":
                self._run(event["requestId"], event["deadlineMs"] / 1000)

    def _run(self, request_id: str, deadline: float) -> None:
        """The job the handler of `request_id` hands over, done; nothing after the deadline."""
        while (left := deadline - time.time()) > 0:
            try:
                handed_id, job = self._jobs.get(timeout=left)
            except queue.Empty:
                break
            if handed_id != request_id:
                continue  # an invocation Lambda ended (its timeout) before the extension saw it
            if job is not None:
                try:
                    job()
                except Exception:
                    logger.exception("work after the answer failed")
            return
        logger.warning("the handler handed nothing over before its deadline", extra={"requestId": request_id})

    def _call(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """One call on the kept-alive connection to the runtime's local endpoint (a GET is sent again
        once on a new connection if the old one was closed); an answer that is not a 2xx raises."""
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._api)
            try:
                self._connection.request(method, f"/{EXTENSIONS_API}/{path}", body=body, headers=headers)
                answer = self._connection.getresponse()
                data = answer.read()
            except (http.client.HTTPException, OSError):
                self._connection.close()
                self._connection = None
                if attempt == 2 or method != "GET":
                    raise
                continue
            if not 200 <= answer.status < 300:
                raise RuntimeError(f"the Extensions API answered {answer.status} to {path}: {data[:200]!r}")
            return answer, data
        raise AssertionError("unreachable")


def register() -> None:
    """At init, where Lambda's Extensions API is there: register the extension (once per process)."""
    global _extension
    api = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not api:
        return
    with _lock:
        if _extension is not None:
            return
        extension = _Extension(api)
        try:
            extension.register()
        except Exception:
            logger.exception("the after-answer extension could not register: work is done before answering")
            return
        _extension = extension
    logger.info("after-answer extension registered", extra={"extension": EXTENSION_NAME})


def hand_over(request_id: str, job: Job | None) -> None:
    """At the end of every invocation of a function that registered: `job` to do once the answer has
    left (None: nothing, which the extension must hear too). Without the extension it runs now."""
    extension = _extension
    if extension is not None and extension.alive:
        extension.hand_over(request_id, job)
    elif job is not None:
        job()
