"""A thin MongoDB wire-protocol layer in front of the embedded server.

It forwards every message unchanged except where the embedded server (mongoeco) is measured to
answer transactions differently from MongoDB 7, so that our code meets MongoDB's behaviour here:

1. A failed command inside a transaction aborts the transaction. mongoeco lets the transaction go
   on and commit; MongoDB aborts it, and every later command of it, commit included, fails with
   NoSuchTransaction (code 251, label TransientTransactionError). The layer aborts the transaction
   upstream and answers its later commands that way.
2. A write conflict reported at commit gets MongoDB's code 112 (WriteConflict) and the
   TransientTransactionError label; mongoeco sends a bare message.
3. A failed commit discards the transaction. mongoeco keeps it pending and applies its stale
   writes when the session id is next used (pymongo pools session ids), losing the update that
   won the conflict; the layer aborts it upstream at once.

It also injects faults on cue (`Faults`): drop a client connection before a command is forwarded,
or after a commitTransaction was forwarded and before its reply reaches the client (the
unknown-commit-result case). Faults are switched at run time from Python (`WireLayer.faults`) or
from any MongoDB client with the `devFaults` command, which the layer answers itself:
`client.admin.command("devFaults", {"dropAfterCommitNext": 2})`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import struct
import threading
from dataclasses import dataclass, field

import bson

logger = logging.getLogger("devtools.wire_layer")

OP_MSG = 2013
CHECKSUM_PRESENT = 1 << 0
MORE_TO_COME = 1 << 1
HEADER = struct.Struct("<iiii")
FLAGS = struct.Struct("<I")
NO_SUCH_TRANSACTION = 251
WRITE_CONFLICT = 112
# Commands that are part of connection set-up and monitoring: never faulted.
HANDSHAKE = frozenset({"hello", "ismaster", "isMaster", "saslStart", "saslContinue", "ping", "buildinfo", "buildInfo"})
WRITES = frozenset({"insert", "update", "delete", "findAndModify", "findandmodify", "bulkWrite"})


# devFaults settings (camelCase, as sent by clients) and the Faults attributes they set.
FAULT_SETTINGS = {
    "dropBeforeCommandProbability": "drop_before_command_probability",
    "dropBeforeCommandNext": "drop_before_command_next",
    "dropAfterCommitProbability": "drop_after_commit_probability",
    "dropAfterCommitNext": "drop_after_commit_next",
}


@dataclass
class Faults:
    """Fault switches; read by the layer's event loop, set from any thread (plain attribute writes)."""

    drop_before_command_probability: float = 0.0
    drop_before_command_next: int = 0
    drop_after_commit_probability: float = 0.0
    drop_after_commit_next: int = 0
    dropped_before_command: int = 0
    dropped_after_commit: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def configure(self, settings: dict) -> None:
        """Apply camelCase settings (as sent with the devFaults command); `reset: true` clears all first."""
        unknown = set(settings) - set(FAULT_SETTINGS) - {"reset"}
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        with self._lock:
            if settings.get("reset"):
                self.reset_locked()
            for name, attribute in FAULT_SETTINGS.items():
                if name in settings:
                    value = settings[name]
                    if attribute.endswith("probability"):
                        if not isinstance(value, int | float) or not 0 <= value <= 1:
                            raise ValueError(f"{name} must be a probability from 0 to 1")
                        setattr(self, attribute, float(value))
                    else:
                        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                            raise ValueError(f"{name} must be a non-negative integer")
                        setattr(self, attribute, value)

    def reset(self) -> None:
        with self._lock:
            self.reset_locked()

    def reset_locked(self) -> None:
        self.drop_before_command_probability = self.drop_after_commit_probability = 0.0
        self.drop_before_command_next = self.drop_after_commit_next = 0

    def report(self) -> dict:
        with self._lock:
            return {name: getattr(self, attribute) for name, attribute in FAULT_SETTINGS.items()} | {
                "droppedBeforeCommand": self.dropped_before_command,
                "droppedAfterCommit": self.dropped_after_commit,
            }

    def take_drop_before_command(self) -> bool:
        with self._lock:
            if self.drop_before_command_next > 0:
                self.drop_before_command_next -= 1
            elif not (self.drop_before_command_probability and random.random() < self.drop_before_command_probability):
                return False
            self.dropped_before_command += 1
            return True

    def take_drop_after_commit(self) -> bool:
        with self._lock:
            if self.drop_after_commit_next > 0:
                self.drop_after_commit_next -= 1
            elif not (self.drop_after_commit_probability and random.random() < self.drop_after_commit_probability):
                return False
            self.dropped_after_commit += 1
            return True


@dataclass(frozen=True, slots=True)
class Command:
    """The parts of a client's OP_MSG request the layer looks at."""

    name: str
    body: dict
    transaction: tuple[bytes, int] | None  # (lsid, txnNumber) when inside a multi-document transaction


def _read_command(payload: bytes) -> Command | None:
    """Decode an OP_MSG request's body section (kind 0); None for anything the layer passes through."""
    (flags,) = FLAGS.unpack_from(payload, 0)
    position = 4
    end = len(payload) - (4 if flags & CHECKSUM_PRESENT else 0)
    while position < end:
        kind = payload[position]
        position += 1
        (size,) = struct.unpack_from("<i", payload, position)
        if kind == 0:
            body = bson.decode(payload[position : position + size])
            if not body:
                return None
            name = next(iter(body))
            transaction = None
            if body.get("autocommit") is False and "lsid" in body and "txnNumber" in body:
                transaction = (bson.encode(body["lsid"]), int(body["txnNumber"]))
            return Command(name, body, transaction)
        position += size
    return None


def _reply_body(payload: bytes) -> dict:
    (size,) = struct.unpack_from("<i", payload, 5)
    return bson.decode(payload[5 : 5 + size]) if payload[4] == 0 else {}


def _op_msg(request_id: int, response_to: int, body: dict) -> bytes:
    document = bson.encode(body)
    payload = FLAGS.pack(0) + b"\x00" + document
    return HEADER.pack(HEADER.size + len(payload), request_id, response_to, OP_MSG) + payload


def _failed(body: dict) -> bool:
    return body.get("ok") != 1 or bool(body.get("writeErrors"))


class WireLayer:
    """An asyncio TCP server forwarding to `upstream`; run it on an event loop (see EmbeddedMongo)."""

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listen = (host, port)
        self._server: asyncio.AbstractServer | None = None
        self._aborted: set[tuple[bytes, int]] = set()
        self._request_ids = itertools.count(1 << 30)
        self._connections: set[asyncio.Task] = set()
        self.faults = Faults()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve_client, *self._listen)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def stop_serving(self) -> None:
        """The database goes away: every client connection is cut and new ones are refused,
        until `resume_serving` listens again on the same port (the data stays, as after a restart)."""
        self._listen = (self._listen[0], self.port)
        await self.close()

    async def resume_serving(self) -> None:
        if self._server is None:
            await self.start()

    async def _serve_client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream_writer = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._upstream)
            while True:
                message = await self._read_message(client_reader)
                if message is None:
                    return
                reply = await self._exchange(message, upstream_reader, upstream_writer)
                if reply is None:
                    return  # a fault: drop the client's connection
                for part in reply:
                    client_writer.write(part)
                await client_writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        finally:
            self._connections.discard(task)
            client_writer.close()
            if upstream_writer is not None:
                upstream_writer.close()

    @staticmethod
    async def _read_message(reader: asyncio.StreamReader) -> bytes | None:
        try:
            header = await reader.readexactly(HEADER.size)
        except asyncio.IncompleteReadError:
            return None
        (length,) = struct.unpack_from("<i", header, 0)
        return header + await reader.readexactly(length - HEADER.size)

    async def _exchange(
        self, message: bytes, upstream_reader: asyncio.StreamReader, upstream_writer: asyncio.StreamWriter
    ) -> list[bytes] | None:
        """Forward one request and return the replies for the client, or None to drop the connection."""
        _, request_id, _, op_code = HEADER.unpack_from(message, 0)
        command = _read_command(message[HEADER.size :]) if op_code == OP_MSG else None
        if command is not None:
            if command.name == "devFaults":
                return [self._answer_faults(request_id, command.body)]
            if command.name not in HANDSHAKE and self.faults.take_drop_before_command():
                logger.info("fault: dropped a connection before %s", command.name)
                return None
            if command.transaction in self._aborted:
                if command.name in ("commitTransaction", "abortTransaction"):
                    self._aborted.discard(command.transaction)
                return [_op_msg(next(self._request_ids), request_id, _no_such_transaction(command))]
        (flags,) = FLAGS.unpack_from(message, HEADER.size) if op_code == OP_MSG else (0,)
        upstream_writer.write(message)
        await upstream_writer.drain()
        if flags & MORE_TO_COME:
            return []  # the client expects no reply (unacknowledged write)
        replies = []
        while True:
            reply = await self._read_message(upstream_reader)
            if reply is None:
                raise ConnectionError("upstream closed the connection")
            replies.append(reply)
            reply_op = HEADER.unpack_from(reply, 0)[3]
            if reply_op != OP_MSG or not FLAGS.unpack_from(reply, HEADER.size)[0] & MORE_TO_COME:
                break
        if command is None or command.transaction is None or len(replies) != 1:
            return replies
        return await self._amend_transaction_reply(command, replies[0], upstream_writer)

    async def _amend_transaction_reply(
        self, command: Command, reply: bytes, upstream_writer: asyncio.StreamWriter
    ) -> list[bytes] | None:
        body = _reply_body(reply[HEADER.size :])
        response_to = HEADER.unpack_from(reply, 0)[2]
        if command.name == "commitTransaction":
            if self.faults.take_drop_after_commit():
                logger.info("fault: dropped the reply to a commitTransaction (outcome unknown to the client)")
                return None
            if body.get("ok") == 1:
                return [reply]
            # MongoDB discards a transaction whose commit failed. mongoeco keeps it pending, and the
            # next command on the same (pooled) session id applies its stale writes: a lost update.
            await self._abort_upstream(command)
            if "write conflict" in str(body.get("errmsg", "")).lower():
                labels = sorted({*body.get("errorLabels", []), "TransientTransactionError"})
                body |= {"code": WRITE_CONFLICT, "codeName": "WriteConflict", "errorLabels": labels}
                return [_op_msg(next(self._request_ids), response_to, body)]
            return [reply]
        if command.name != "abortTransaction" and _failed(body):
            # MongoDB aborts a transaction on a failed command; make the embedded server do the same.
            self._aborted.add(command.transaction)
            await self._abort_upstream(command)
        return [reply]

    async def _abort_upstream(self, command: Command) -> None:
        """Abort the transaction on the embedded server over a connection of its own."""
        body = {
            "abortTransaction": 1,
            "lsid": command.body["lsid"],
            "txnNumber": command.body["txnNumber"],
            "autocommit": False,
            "$db": "admin",
        }
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
            reader, writer = await asyncio.open_connection(*self._upstream)
            try:
                writer.write(_op_msg(next(self._request_ids), 0, body))
                await writer.drain()
                await self._read_message(reader)
            finally:
                writer.close()

    def _answer_faults(self, request_id: int, body: dict) -> bytes:
        settings = body.get("devFaults")
        try:
            if isinstance(settings, dict):
                self.faults.configure(settings)
            elif settings not in (1, True):
                raise ValueError("devFaults takes 1 (report) or a document of settings")
            answer = {"ok": 1.0, "faults": self.faults.report()}
        except ValueError as error:
            answer = {"ok": 0.0, "errmsg": str(error), "code": 2, "codeName": "BadValue"}
        return _op_msg(next(self._request_ids), request_id, answer)


def _no_such_transaction(command: Command) -> dict:
    return {
        "ok": 0.0,
        "errmsg": f"Transaction with {{ txnNumber: {command.body['txnNumber']} }} has been aborted.",
        "code": NO_SUCH_TRANSACTION,
        "codeName": "NoSuchTransaction",
        "errorLabels": ["TransientTransactionError"],
    }
