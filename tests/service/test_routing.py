"""Every document the service writes for an owner carries its routing key (docs/sharding.md):
`bucket`, the bucket of the owner it goes with, read from each insert command as it was sent and
checked against owners found independently (the wallets' owners in the database)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from bson import ObjectId

from wallet_service import InsufficientFunds, Request, WalletService
from wallet_service.storage.documents import ACCOUNTS, CHECKPOINT, LEDGER, WALLETS
from wallet_service.storage.routing import BUCKETS, bucket_in, bucket_of, new_id

# The platform's checkpoints belong to no owner: one per zone, each on its zone's shard (with the
# zone's first bucket: tests/service/test_shards.py); on a replica set, one zone, the checkpoint of
# every bucket carries none. The opened accounts are in a registry of their own, `accounts`, which
# is never sharded.
UNROUTED_KINDS = {CHECKPOINT}


def every_kind_of_write(service: WalletService, clock: list) -> None:
    """Every operation that writes: wallets (with an opening balance, a key), movements, a kept
    refusal, holds raised, captured in parts and split, refunded, released and expired, a freeze,
    a platform account and its checkpoint."""
    rider = service.create_wallet("rider", "USD", Request(idempotency_key="open"), opening_balance=5_000).wallet.id
    driver = service.create_wallet("driver", "USD").wallet.id
    service.deposit(rider, 1_000, Request(idempotency_key="d1", reference_type="card", reference_id="c1"))
    service.withdraw(rider, 100, Request(owner_id="rider"))
    with pytest.raises(InsufficientFunds):
        service.withdraw(driver, 10_000, Request(idempotency_key="too-much"))
    service.transfer(rider, driver, 250, Request(idempotency_key="t1"))
    service.open_account("@tips", "USD")
    held = service.create_reservation(rider, 2_000).reservation.id
    service.increment_reservation(held, 300)
    splits = [{"walletId": driver, "amount": 800}, {"account": "@tips", "amount": 200}]
    service.capture_reservation(held, 1_000, splits=splits, final=False)
    service.capture_reservation(held, 500)
    service.refund_reservation(held, 300)
    service.release_reservation(service.create_reservation(rider, 100).reservation.id)
    service.create_reservation(rider, 50, ttl_seconds=1, on_expiry="capture", capture_to={"walletId": driver})
    service.create_reservation(driver, 40, ttl_seconds=1)
    service.freeze_wallet(driver)
    clock[0] += timedelta(seconds=5)
    assert service.expire_reservations().expired == 2
    service.roll_checkpoints()


def test_every_document_written_for_an_owner_carries_the_owners_bucket(
    service, service_database, clock, database, service_commands
):
    every_kind_of_write(WalletService(service_database, clock=lambda: clock[0]), clock)
    owners = {wallet["_id"]: wallet["ownerId"] for wallet in database[WALLETS].find()}
    inserted = [
        document
        for sent in service_commands.sent
        if sent.get("insert") in (WALLETS, LEDGER)
        for document in sent["documents"]
    ]
    kinds = set()
    for document in inserted:
        kind = document.get("kind", "wallet")
        kinds.add(kind if kind != "entry" else "account entry" if "account" in document else "wallet entry")
        if kind in UNROUTED_KINDS:
            assert "bucket" not in document
            continue
        assert 0 <= document["bucket"] < BUCKETS
        if document.get("operation") == "expire_reservations":  # a batch: with its first hold's owner
            assert document["bucket"] in {bucket_of(owner) for owner in owners.values()}
            continue
        claimed = document["_id"].get("ownerId") if isinstance(document["_id"], dict) else None
        owner = (
            document.get("ownerId") or claimed or owners[document.get("walletId", document.get("counterpartyWalletId"))]
        )
        assert document["bucket"] == bucket_of(owner), document["_id"]
        if kind in ("wallet", "reservation"):  # ids a route names alone carry their bucket
            assert bucket_in(document["_id"]) == document["bucket"]
    # The scenario wrote every kind of document there is.
    assert kinds == {
        "wallet",
        "wallet_claim",
        "operation",
        "wallet entry",
        "account entry",
        "event",
        "reservation",
        CHECKPOINT,
    }
    registered = [sent["documents"] for sent in service_commands.sent if sent.get("insert") == ACCOUNTS]
    assert registered == [
        [{"_id": {"account": "@tips", "currency": "USD"}, "createdAt": registered[0][0]["createdAt"]}]
    ]


def test_an_owners_bucket_is_stable_and_spread():
    assert bucket_of("rider-1") == bucket_of("rider-1")
    spread = {bucket_of(f"owner-{number}") for number in range(5_000)}
    assert len(spread) > BUCKETS * 0.95  # 5,000 owners reach nearly every bucket


def test_a_minted_id_carries_its_bucket_and_stays_unique():
    minted = [new_id(bucket) for bucket in (0, 1, 511, BUCKETS - 1) for _ in range(2_500)]
    assert len(set(minted)) == len(minted)
    assert {bucket_in(oid) for oid in minted[:2_500]} == {0}
    assert [bucket_in(oid) for oid in minted[::2_500]] == [0, 1, 511, BUCKETS - 1]
    assert all(len(str(oid)) == 24 for oid in minted)  # still an id the API takes


def test_an_id_minted_before_rarely_looks_as_if_it_carried_one():
    """A random ObjectId has the tag and a bucket-sized value by chance about 1 time in 16,384: a
    reader confirms a miss (sharding.md), never trusts the id alone."""
    # Ids minted before came from many processes, each with random bytes of its own.
    now = int(time.time()).to_bytes(4, "big")
    carrying = sum(bucket_in(ObjectId(now + os.urandom(8))) is not None for _ in range(20_000))
    assert carrying <= 10  # about 1.2 expected
