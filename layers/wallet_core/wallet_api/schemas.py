"""Request bodies: strict, camelCase, unknown fields refused.

Strict types are what make the HTTP contract hold: a JSON number that is not an integer (1.5,
1e3, NaN), a string or a boolean is never an amount, and a JSON object is never a string (which
keeps MongoDB operators such as {"$gt": ""} out of every field).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

from wallet_core.validation import MAX_AMOUNT, MAX_TTL_SECONDS, MIN_TTL_SECONDS

VISIBLE_ASCII = r"^[\x21-\x7e]+$"

Amount = Annotated[StrictInt, Field(gt=0, le=MAX_AMOUNT, description="integer minor units (cents)")]
ObjectIdText = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{24}$", description="24 lower-case hex digits")]
MetadataValue = StrictStr | StrictInt | StrictBool | None


class RequestBody(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, extra="forbid", frozen=True)


class Details(RequestBody):
    reference_type: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=VISIBLE_ASCII)] | None = None
    reference_id: Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=VISIBLE_ASCII)] | None = None
    metadata: dict[StrictStr, MetadataValue] | None = Field(
        None, description="at most 32 keys of letters, digits, '_' or '-'; string, integer, boolean or null values"
    )

    def details(self) -> dict:
        return {"reference_type": self.reference_type, "reference_id": self.reference_id, "metadata": self.metadata}


class CreateWalletRequest(RequestBody):
    currency: Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
    owner_id: Annotated[StrictStr, Field(min_length=1, max_length=256, pattern=VISIBLE_ASCII)] | None = Field(
        None, description="the wallet's owner; only `wallet:admin` may name someone other than the caller"
    )
    opening_balance: Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT)] = Field(
        0, description="journaled as a DEPOSIT; only `wallet:admin` may open a wallet with money in it"
    )
    metadata: dict[StrictStr, MetadataValue] | None = None


class AmountRequest(Details):
    amount: Amount


class TransferRequest(Details):
    from_wallet_id: ObjectIdText
    to_wallet_id: ObjectIdText
    amount: Amount


class ReservationRequest(Details):
    amount: Amount
    ttl_seconds: Annotated[StrictInt, Field(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)] = 1800


class CaptureRequest(Details):
    amount: Amount | None = Field(None, description="default: the whole hold; the remainder is released")


class ReleaseRequest(Details):
    pass


class Health(BaseModel):
    status: str
