"""The Lambda Extensions API as one local container serves it to internal extensions.

What the layer's after-answer extension uses (wallet_lambda/after_answer.py): `register` and
`event/next` of the 2020-01-01 API, INVOKE events only (internal extensions get no SHUTDOWN). Lambda
delivers INVOKE to extensions as the invocation starts; this container delivers it once the client
has the answer (`invoked`), an order the protocol allows (an extension cannot tell when its event
was sent) and the one that lets a test see the answer leave before any after-answer work starts.
`idle` waits, as Lambda does before freezing an environment, until every extension has asked for
its next event again.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2020-01-01/extension/"


class _Extension:
    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[dict] = []
        self.waiting = False  # blocked in event/next with nothing to deliver


class LocalExtensionsApi:
    """Listens on 127.0.0.1 (a free port), from a thread; `address` is AWS_LAMBDA_RUNTIME_API's value."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self._extensions: dict[str, _Extension] = {}
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="extensions-api", daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def registered(self) -> list[str]:
        return [extension.name for extension in self._extensions.values()]

    def invoked(self, request_id: str, deadline_ms: int) -> None:
        """An invocation has been answered: deliver its INVOKE to every extension."""
        event = {
            "eventType": "INVOKE",
            "deadlineMs": deadline_ms,
            "requestId": request_id,
            "invokedFunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}",
            "tracing": {},
        }
        with self._changed:
            for extension in self._extensions.values():
                extension.events.append(event)
            self._changed.notify_all()

    def idle(self, timeout: float) -> bool:
        """Wait until every extension is waiting for its next event; False if `timeout` passed first."""
        with self._changed:
            return self._changed.wait_for(
                lambda: all(extension.waiting and not extension.events for extension in self._extensions.values()),
                timeout,
            )

    def stop(self) -> None:
        self._server.shutdown()

    def _next_event(self, identifier: str) -> dict | None:
        extension = self._extensions.get(identifier)
        if extension is None:
            return None
        with self._changed:
            extension.waiting = True
            self._changed.notify_all()
            self._changed.wait_for(lambda: extension.events)
            extension.waiting = False
            return extension.events.pop(0)

    def _register(self, name: str) -> str:
        identifier = str(uuid.uuid4())
        with self._changed:
            self._extensions[identifier] = _Extension(name)
        return identifier

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept alive, as Lambda's runtime API keeps them
            disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait between

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if self.path == PREFIX + "register":
                    identifier = api._register(self.headers.get("Lambda-Extension-Name", ""))
                    body = {
                        "functionName": api.function_name,
                        "functionVersion": "$LATEST",
                        "handler": "app.lambda_handler",
                    }
                    self._answer(200, body, {"Lambda-Extension-Identifier": identifier})
                elif self.path in (PREFIX + "init/error", PREFIX + "exit/error"):
                    self._answer(202, {"status": "OK"})
                else:
                    self._answer(404, {"errorMessage": f"no such path {self.path}"})

            def do_GET(self) -> None:
                event = None
                if self.path == PREFIX + "event/next":
                    event = api._next_event(self.headers.get("Lambda-Extension-Identifier", ""))
                if event is None:
                    self._answer(403, {"errorMessage": "unknown extension or path"})
                else:
                    self._answer(200, event, {"Lambda-Extension-Event-Identifier": str(uuid.uuid4())})

            def _answer(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args) -> None:
                pass  # the container's log is the function's

        return Handler
