"""What every route refuses before routing, as API Gateway does not: a body too large, not JSON
or with a key twice, a token without the operation's scope, a missing or malformed Idempotency-Key."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from wallet_service.ledger.limits import IDEMPOTENCY_KEY_PATTERN, MAX_IDEMPOTENCY_KEY_LENGTH

from . import problems
from .identity import caller_of, scope
from .operations import Operation
from .problems import Problem

MAX_BODY_BYTES = 16 * 1024
IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
JSON_CONTENT_TYPE = re.compile(r"application/([a-z0-9.+-]+\+)?json\s*(;.*)?", re.IGNORECASE)


def refusal(event: dict, operation: Operation) -> Problem | None:
    """Checks API Gateway does not do, before the body is parsed: size, media type, JSON, keys, and
    the scope the operation needs (before anything of the request is looked at)."""
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    body = event.get("body")
    if body:
        raw = body.encode() if isinstance(body, str) else body
        if event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                return problems.bad_request("malformed_body", "the body is not valid base64")
        if len(raw) > MAX_BODY_BYTES:
            return Problem(413, "payload_too_large", "Payload too large", f"the body exceeds {MAX_BODY_BYTES} bytes")
        if not JSON_CONTENT_TYPE.fullmatch(headers.get("content-type", "")):
            return Problem(415, "unsupported_media_type", "Unsupported media type", "send the body as application/json")
        try:
            json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
        except _DuplicateKey as duplicate:
            return problems.bad_request("malformed_json", f"the key {duplicate.args[0]!r} appears twice in one object")
        except (ValueError, UnicodeDecodeError) as error:
            return problems.bad_request("malformed_json", f"the body is not valid JSON: {error}")
    if operation.scope:
        try:
            if not caller_of(event).may(operation.scope):
                return problems.forbidden(f"this operation needs the {scope(operation.scope)} scope")
        except Problem as unauthorized:
            return unauthorized
    key = headers.get("idempotency-key")
    if key is None and operation.needs_idempotency_key:
        return problems.bad_request("missing_idempotency_key", "money-moving requests need an Idempotency-Key header")
    # Optional elsewhere (opening a wallet), but always well formed.
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        return problems.bad_request(
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters",
        )
    return None


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen
