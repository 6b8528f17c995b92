"""Request bodies: strict, camelCase, unknown fields refused.

Strict types are what make the HTTP contract hold: a JSON number that is not an integer (1.5,
1e3, NaN), a string or a boolean is never an amount, and a JSON object is never a string (which
keeps MongoDB operators such as {"$gt": ""} out of every field).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from wallet_service.ledger.currencies import ISO_4217_CURRENCIES
from wallet_service.ledger.limits import (
    ACCOUNT_NAME_PATTERN,
    MAX_AMOUNT,
    MAX_INT64,
    MAX_METADATA_KEYS,
    MAX_METADATA_STRING,
    MAX_OWNER_ID_LENGTH,
    MAX_REFERENCE_ID_LENGTH,
    MAX_REFERENCE_TYPE_LENGTH,
    MAX_TTL_SECONDS,
    METADATA_KEY_PATTERN,
    MIN_TTL_SECONDS,
    OBJECT_ID_PATTERN,
    VISIBLE_ASCII_PATTERN,
)

VISIBLE_ASCII = f"^{VISIBLE_ASCII_PATTERN}$"
OBJECT_ID = f"^{OBJECT_ID_PATTERN}$"

Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT, description="integer minor units (cents)")]
ObjectIdText = Annotated[StrictStr, Field(pattern=OBJECT_ID, description="24 lower-case hex digits")]
# The document says what the service checks (wallet_service.ledger.validation.Checks.metadata), so a client
# (or a generator) that follows the schema is never refused for metadata.
METADATA_KEY = f"^{METADATA_KEY_PATTERN}$"
MetadataKey = Annotated[StrictStr, Field(pattern=METADATA_KEY)]
METADATA_VALUE_RULE = (
    f"must be a string of at most {MAX_METADATA_STRING} characters, a 64-bit integer, a boolean or null"
)


def _one_metadata_error(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """One error in our words for a value no branch of the union takes (pydantic gives one per branch,
    named after its internal validators)."""
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError("metadata_value", METADATA_VALUE_RULE) from None


MetadataValue = Annotated[
    Annotated[StrictStr, Field(max_length=MAX_METADATA_STRING)]
    # -2**63 < value < 2**63 is the service's -MAX_INT64 <= value <= MAX_INT64, with bounds a float
    # holds exactly: the OpenAPI generator passes bounds through floats, which made MAX_INT64 2**63.
    | Annotated[StrictInt, Field(gt=-(MAX_INT64 + 1), lt=MAX_INT64 + 1)]
    | StrictBool
    | None,
    WrapValidator(_one_metadata_error),
]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(
        max_length=MAX_METADATA_KEYS,
        # pydantic writes the key pattern as patternProperties, which leaves other keys allowed
        json_schema_extra={"propertyNames": {"pattern": METADATA_KEY}},
        description=(
            f"at most {MAX_METADATA_KEYS} keys of letters, digits, '_' or '-'; string (at most "
            f"{MAX_METADATA_STRING} characters), 64-bit integer, boolean or null values"
        ),
    ),
]


def _active_currency(code: str) -> str:
    if code not in ISO_4217_CURRENCIES:
        raise PydanticCustomError("currency", "must be an active ISO 4217 currency code such as USD")
    return code


# Checked like the service checks it, and listed in the document (a pattern alone would let
# "AAA" through the schema and have the service refuse it).
# The currency of a query parameter (a platform account's), as an enumeration the document lists.
CurrencyCode = StrEnum("CurrencyCode", {code: code for code in sorted(ISO_4217_CURRENCIES)})

Currency = Annotated[
    StrictStr,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="active ISO 4217 code",
        json_schema_extra={"enum": sorted(ISO_4217_CURRENCIES)},
    ),
    AfterValidator(_active_currency),
]


OwnerId = Annotated[StrictStr, Field(min_length=1, max_length=MAX_OWNER_ID_LENGTH, pattern=VISIBLE_ASCII)]


class RequestBody(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", frozen=True)


class Details(RequestBody):
    reference_type: (
        Annotated[StrictStr, Field(min_length=1, max_length=MAX_REFERENCE_TYPE_LENGTH, pattern=VISIBLE_ASCII)] | None
    ) = None
    reference_id: (
        Annotated[StrictStr, Field(min_length=1, max_length=MAX_REFERENCE_ID_LENGTH, pattern=VISIBLE_ASCII)] | None
    ) = None
    metadata: Metadata | None = None

    def details(self) -> dict:
        return {"reference_type": self.reference_type, "reference_id": self.reference_id, "metadata": self.metadata}


class AlertsRequest(RequestBody):
    """A wallet's balance alert: its events say when its available money drops below `availableBelow`."""

    available_below: Amount = Field(
        description="integer minor units (cents): a movement that takes the available money from this or more "
        "to below it adds `wallet.balance.low` to its events, and one that brings it back adds "
        "`wallet.balance.restored`"
    )

    def as_alerts(self) -> dict:
        return {"availableBelow": self.available_below}


class SetAlertsRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"availableBelow": 1000}, {"availableBelow": None}]})

    available_below: Amount | None = Field(
        description="integer minor units (cents): the events say when the available money drops below it "
        "(`wallet.balance.low`) and when it is back (`wallet.balance.restored`); null removes the alert"
    )

    def alerts(self) -> dict | None:
        return None if self.available_below is None else {"availableBelow": self.available_below}


class CreateWalletRequest(RequestBody):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"currency": "USD"}, {"currency": "USD", "alerts": {"availableBelow": 1000}}]}
    )

    currency: Currency
    owner_id: (
        Annotated[StrictStr, Field(min_length=1, max_length=MAX_OWNER_ID_LENGTH, pattern=VISIBLE_ASCII)] | None
    ) = Field(None, description="the wallet's owner; only `wallet:admin` may name someone other than the caller")
    opening_balance: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT)] = Field(
        0, description="journaled as a DEPOSIT; only `wallet:admin` may open a wallet with money in it"
    )
    metadata: Metadata | None = None
    alerts: AlertsRequest | None = Field(None, description="a balance alert (PUT .../alerts changes it later)")

    def alerts_document(self) -> dict | None:
        return None if self.alerts is None else self.alerts.as_alerts()

    def details(self) -> dict:
        return {"metadata": self.metadata}


class AmountRequest(Details):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": 2500, "referenceType": "top_up", "referenceId": "pay_8f2k1"}]}
    )

    amount: Amount


class TransferRequest(Details):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"fromWalletId": "65f1c0ffee0000000000a001", "toWalletId": "65f1c0ffee0000000000b002", "amount": 1000}
            ]
        }
    )

    from_wallet_id: ObjectIdText
    to_wallet_id: ObjectIdText
    amount: Amount


TtlSeconds = Annotated[StrictInt, Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)]
AccountName = Annotated[
    StrictStr, Field(pattern=f"^{ACCOUNT_NAME_PATTERN}$", description="a platform account: @ and a name")
]


class OpenAccountRequest(RequestBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "@tips", "currency": "USD"}]})

    name: AccountName
    currency: Currency


class Health(BaseModel):
    status: str
