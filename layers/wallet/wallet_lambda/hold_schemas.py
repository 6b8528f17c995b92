"""Request bodies of the holds: placing one, raising it, capturing (with splits), refunding and
releasing it. The same strict rules as schemas.py, whose types they use."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StrictBool, StrictStr

from wallet_service import OnExpiry
from wallet_service.ledger.limits import (
    DEFAULT_TTL_SECONDS,
    MAX_INCREMENTS,
    MAX_REASON_LENGTH,
    MAX_SPLITS,
    TEXT_PATTERN,
)

from .schemas import AccountName, Amount, Details, ObjectIdText, RequestBody, TtlSeconds


class WalletPlace(RequestBody):
    """A wallet in the hold's currency, not the hold's own (it may be frozen)."""

    wallet_id: ObjectIdText

    def as_place(self) -> dict:
        return {"walletId": self.wallet_id}


class AccountPlace(RequestBody):
    """A platform account open in the hold's currency."""

    account: AccountName

    def as_place(self) -> dict:
        return {"account": self.account}


Place = WalletPlace | AccountPlace


class WalletSplit(WalletPlace):
    """Part of a capture (or a refund's source): a wallet in the hold's currency (it may be frozen)."""

    amount: Amount

    def as_split(self) -> dict:
        return {**self.as_place(), "amount": self.amount}


class AccountSplit(AccountPlace):
    """Part of a capture (or a refund's source): a platform account open in the hold's currency."""

    amount: Amount

    def as_split(self) -> dict:
        return {**self.as_place(), "amount": self.amount}


Split = WalletSplit | AccountSplit


class ReservationRequest(Details):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"amount": 1500, "ttlSeconds": 900, "referenceType": "ride", "referenceId": "ride_42"},
                {
                    "amount": 500,
                    "ttlSeconds": 600,
                    "onExpiry": "capture",
                    "captureTo": {"walletId": "65f0c0ffee0000000000a002"},
                    "referenceType": "no_show_fee",
                    "referenceId": "ride_42",
                },
            ],
            # A captureTo (not null) goes with onExpiry capture only (the service refuses it otherwise: 422).
            "if": {"required": ["captureTo"], "properties": {"captureTo": {"type": "object"}}},
            "then": {"required": ["onExpiry"], "properties": {"onExpiry": {"const": OnExpiry.CAPTURE.value}}},
        }
    )

    amount: Amount
    ttl_seconds: TtlSeconds = DEFAULT_TTL_SECONDS
    on_expiry: OnExpiry = Field(
        OnExpiry.RELEASE,
        description="what the expiry does with what the hold still holds: release it to the wallet, or capture "
        "it to `captureTo`",
    )
    capture_to: Place | None = Field(
        None,
        description="onExpiry capture only: where the expiry's capture goes, a wallet in the hold's currency "
        "(not its own) or an open platform account; default @revenue",
    )

    def capture_to_place(self) -> dict | None:
        return None if self.capture_to is None else self.capture_to.as_place()


class IncrementRequest(Details):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "amount": 400,
                    "ttlSeconds": 1800,
                    "referenceType": "detour",
                    "referenceId": "ride_42",
                    "metadata": {"reason": "rider asked for a stop on the way"},
                }
            ]
        }
    )

    amount: Amount = Field(
        description=f"integer minor units (cents) held on top of the hold; at most {MAX_INCREMENTS} raises per hold"
    )
    ttl_seconds: TtlSeconds | None = Field(
        None,
        description="push the hold's expiry out to this many seconds from now (an earlier time leaves it as it "
        "was), never past 7 days after the hold was placed; default: the expiry stays",
    )


class CaptureRequest(Details):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"amount": 1200, "referenceType": "fare", "referenceId": "ride_42"},
                {
                    "amount": 1200,
                    "splits": [
                        {"walletId": "65f0c0ffee0000000000a002", "amount": 1000},
                        {"account": "@revenue", "amount": 200},
                    ],
                },
                {"amount": 700, "final": False, "referenceType": "fare_leg", "referenceId": "ride_42_leg_1"},
            ],
            # A capture that is not final names its amount (the service refuses it otherwise: 422).
            "if": {"required": ["final"], "properties": {"final": {"const": False}}},
            "then": {"required": ["amount"], "properties": {"amount": {"type": "integer"}}},
        }
    )

    amount: Amount | None = Field(
        None, description="default: all the hold still holds; a final capture releases the remainder"
    )
    splits: list[Split] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SPLITS,
        description="where the captured money goes, adding up to it; default: all to @revenue",
    )
    final: StrictBool = Field(
        True,
        description="false takes `amount` (then required) and leaves the rest held; more captures may follow. "
        "True (the default) releases the rest and ends the hold",
    )

    def split_list(self) -> list[dict] | None:
        return None if self.splits is None else [split.as_split() for split in self.splits]


class RefundRequest(Details):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"amount": 300, "reason": "driver took a longer route"},
                {"amount": 200, "from": [{"account": "@revenue", "amount": 200}]},
            ]
        }
    )

    amount: Amount
    reason: (
        Annotated[StrictStr, Field(min_length=1, max_length=MAX_REASON_LENGTH, pattern=f"^{TEXT_PATTERN}$")] | None
    ) = None
    sources: list[Split] | None = Field(
        None,
        alias="from",
        min_length=1,
        max_length=MAX_SPLITS,
        description="where the money comes back from, adding up to the amount; default: the capture's "
        "destinations, in proportion to what each still holds of it",
    )

    def source_list(self) -> list[dict] | None:
        return None if self.sources is None else [source.as_split() for source in self.sources]


class ReleaseRequest(Details):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"referenceType": "ride_cancelled", "referenceId": "ride_42"}]}
    )
