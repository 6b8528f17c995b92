"""Input checks that run before any database call.

Every public operation builds a `Checks`, feeds it each argument and calls `done()`, so a
caller learns about every bad field at once. Only exact types pass: a bool is not an
amount, a float is not an amount even when whole, a dict is never a string (which also
keeps MongoDB operator objects such as {"$gt": ""} out of every query).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from enum import StrEnum

from bson import ObjectId

from .currencies import ISO_4217_CURRENCIES
from .errors import FieldError, InvalidCursor, ValidationFailed
from .limits import (
    ACCOUNT_NAME_PATTERN,
    MAX_AMOUNT,
    MAX_CURSOR_LENGTH,
    MAX_INT64,
    MAX_METADATA_KEYS,
    MAX_METADATA_STRING,
    METADATA_KEY_PATTERN,
    OBJECT_ID_PATTERN,
    TEXT_PATTERN,
    VISIBLE_ASCII_PATTERN,
)

_OBJECT_ID = re.compile(OBJECT_ID_PATTERN)
_ACCOUNT_NAME = re.compile(ACCOUNT_NAME_PATTERN)
_TEXT = re.compile(TEXT_PATTERN)
_VISIBLE_ASCII = re.compile(VISIBLE_ASCII_PATTERN)
_METADATA_KEY = re.compile(METADATA_KEY_PATTERN)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Checks:
    def __init__(self) -> None:
        self._errors: list[FieldError] = []

    def fail(self, field: str, message: str) -> None:
        self._errors.append(FieldError(field, message))

    def done(self) -> None:
        if self._errors:
            only_cursor = {error.field for error in self._errors} == {"cursor"}
            raise (InvalidCursor if only_cursor else ValidationFailed)(self._errors)

    def amount(self, field: str, value: object) -> int:
        if not is_int(value):
            self.fail(field, "must be an integer number of minor units")
        elif not 0 < value <= MAX_AMOUNT:
            self.fail(field, f"must be greater than 0 and at most {MAX_AMOUNT}")
        return value  # type: ignore[return-value]

    def optional_amount(self, field: str, value: object) -> int | None:
        return None if value is None else self.amount(field, value)

    def opening_balance(self, field: str, value: object) -> int:
        if not is_int(value):
            self.fail(field, "must be an integer number of minor units")
        elif not 0 <= value <= MAX_AMOUNT:
            self.fail(field, f"must be between 0 and {MAX_AMOUNT}")
        return value  # type: ignore[return-value]

    def currency(self, field: str, value: object) -> str:
        if not isinstance(value, str) or value not in ISO_4217_CURRENCIES:
            self.fail(field, "must be an active ISO 4217 currency code such as USD")
        return value  # type: ignore[return-value]

    def account_name(self, field: str, value: object) -> str:
        if not isinstance(value, str) or not _ACCOUNT_NAME.fullmatch(value):
            self.fail(field, "must be a platform account name: @ then 1 to 63 of a-z, 0-9, - and _")
        return value  # type: ignore[return-value]

    def object_id(self, field: str, value: object) -> ObjectId:
        if not isinstance(value, str) or not _OBJECT_ID.fullmatch(value):
            self.fail(field, "must be a 24-character lower-case hexadecimal id")
            return ObjectId("0" * 24)
        return ObjectId(value)

    def token(self, field: str, value: object, *, max_length: int) -> str:
        """An identifier-like string: 1..max_length visible ASCII characters."""
        if not isinstance(value, str) or not 1 <= len(value) <= max_length or not _VISIBLE_ASCII.fullmatch(value):
            self.fail(field, f"must be 1 to {max_length} visible ASCII characters")
        return value  # type: ignore[return-value]

    def optional_token(self, field: str, value: object, *, max_length: int) -> str | None:
        return None if value is None else self.token(field, value, max_length=max_length)

    def integer(self, field: str, value: object, *, low: int, high: int) -> int:
        if not is_int(value) or not low <= value <= high:
            self.fail(field, f"must be an integer from {low} to {high}")
        return value  # type: ignore[return-value]

    def optional_text(self, field: str, value: object, *, max_length: int) -> str | None:
        """Free text for people: 1..max_length characters, none of them a control character."""
        if value is None:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= max_length or not _TEXT.fullmatch(value):
            self.fail(field, f"must be 1 to {max_length} characters, none of them a control character")
        return value  # type: ignore[return-value]

    def choice[E: StrEnum](self, field: str, value: object, kind: type[E]) -> E | None:
        if value is None:
            return None
        if not isinstance(value, str) or value not in kind.__members__:
            self.fail(field, f"must be one of {', '.join(kind.__members__)}")
            return None
        return kind(value)

    def metadata(self, field: str, value: object) -> dict[str, str | int | bool | None]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(field, "must be an object")
            return {}
        if len(value) > MAX_METADATA_KEYS:
            self.fail(field, f"must have at most {MAX_METADATA_KEYS} keys")
        for key, item in value.items():
            if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
                self.fail(field, "keys must be 1 to 64 letters, digits, '_' or '-'")
            elif isinstance(item, str):
                if len(item) > MAX_METADATA_STRING:
                    self.fail(f"{field}.{key}", f"must be at most {MAX_METADATA_STRING} characters")
            elif is_int(item):
                if not -MAX_INT64 <= item <= MAX_INT64:
                    self.fail(f"{field}.{key}", "must fit in 64 bits")
            elif not (item is None or isinstance(item, bool)):
                self.fail(f"{field}.{key}", "must be a string, an integer, a boolean or null")
        return dict(value)

    def aware_datetime(self, field: str, value: object) -> datetime:
        """A timezone-aware datetime, moved to UTC (where the ledger's times are)."""
        if not isinstance(value, datetime) or value.utcoffset() is None:
            self.fail(field, "must be a timezone-aware datetime")
            return value  # type: ignore[return-value]
        try:
            return value.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00:25+12:56 is in year 0 in UTC
            self.fail(field, "must fall within the years 1 to 9999 once moved to UTC")
            return value


def encode_cursor(scope: str, position: int | str) -> str:
    return base64.urlsafe_b64encode(f"{scope}|{position}".encode()).decode().rstrip("=")


def decode_cursor(checks: Checks, cursor: object, scope: str) -> str | None:
    """The position a cursor from `encode_cursor(scope, ...)` points at; a foreign or forged cursor is an error."""
    if cursor is None:
        return None
    if isinstance(cursor, str) and 0 < len(cursor) <= MAX_CURSOR_LENGTH:
        try:
            text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            text = ""
        prefix, _, position = text.rpartition("|")
        if prefix == scope and position:
            return position
    checks.fail("cursor", "is not a cursor returned by this listing")
    return None
