"""The simulated router plays mongos on a cluster sharded by the routing key: zones of whole bucket
ranges, a filter's bucket (or an $in of them) targets, anything else reaches every shard, and a
transaction's shards are those of all its commands."""

from __future__ import annotations

import json

import pytest
from bson import Int64

from devtools.shard_plan import plan
from devtools.shard_router import PRIMARY, Router, route
from wallet_service.storage.routing import BUCKETS, SHARD_KEYS, zone_of, zones


@pytest.mark.parametrize("shards", [1, 2, 3, 4, 7, 64])
def test_zones_cover_every_bucket_once_in_whole_ranges(shards):
    covered = [bucket for zone in zones(shards) for bucket in zone]
    assert covered == list(range(BUCKETS))
    assert max(len(zone) for zone in zones(shards)) - min(len(zone) for zone in zones(shards)) <= 1
    assert [zone_of(bucket, shards) for bucket in range(BUCKETS)] == [
        number for number, zone in enumerate(zones(shards)) for _ in zone
    ]
    assert zone_of(None, shards) == 0  # no bucket sorts with MinKey, in the first zone


def test_a_command_reaches_the_shards_its_filter_or_documents_name():
    router = Router(4)  # buckets 0-255, 256-511, 512-767, 768-1023
    assert router.targets("findAndModify", {"findAndModify": "wallets", "query": {"_id": 1, "bucket": 300}}) == {1}
    assert router.targets("find", {"find": "ledger", "filter": {"bucket": {"$in": [0, 900]}}}) == {0, 3}
    assert router.targets("find", {"find": "ledger", "filter": {"_id": "x"}}) == {0, 1, 2, 3}
    assert router.targets(
        "update", {"update": "ledger", "updates": [{"q": {"bucket": 600}}, {"q": {"bucket": 5}}]}
    ) == {
        0,
        2,
    }
    inserted = {"insert": "ledger", "documents": [{"bucket": 1000}, {"bucket": 1001}, {"_id": "no bucket"}]}
    assert router.targets("insert", inserted) == {3, 0}  # one without a bucket sorts with MinKey, in the first zone
    assert router.targets("aggregate", {"aggregate": "ledger", "pipeline": [{"$match": {"bucket": 256}}]}) == {1}
    assert router.targets("find", {"find": "accounts", "filter": {}}) == {PRIMARY}  # unsharded
    assert router.targets("commitTransaction", {"commitTransaction": 1}) == set()


def test_commands_are_grouped_into_transactions_by_session_and_number():
    session = {"id": b"s1"}
    sent = [
        (
            "findAndModify",
            {"findAndModify": "wallets", "query": {"bucket": 10}, "lsid": session, "txnNumber": Int64(1)},
        ),
        ("insert", {"insert": "ledger", "documents": [{"bucket": 700}], "lsid": session, "txnNumber": Int64(1)}),
        ("commitTransaction", {"commitTransaction": 1, "lsid": session, "txnNumber": Int64(1)}),
        ("find", {"find": "ledger", "filter": {"bucket": 10}, "lsid": session}),  # outside any transaction
        ("insert", {"insert": "ledger", "documents": [{"bucket": 11}], "lsid": session, "txnNumber": Int64(2)}),
    ]
    units = route(Router(4), sent)
    assert [(unit.transaction, unit.shards, len(unit.commands)) for unit in units] == [
        (True, {0, 2}, 3),  # a two-phase commit
        (False, {0}, 1),
        (True, {0}, 1),
    ]


def test_the_shard_plan_prints_the_keys_then_the_commands():
    lines = plan(3, "wallet")
    assert json.loads(lines[0]) == SHARD_KEYS
    for collection in SHARD_KEYS:
        assert f'sh.shardCollection("wallet.{collection}", {{bucket: 1, _id: 1}})' in lines
        ranges = [line for line in lines if line.startswith(f'sh.updateZoneKeyRange("wallet.{collection}"')]
        assert len(ranges) == 3
        assert "{bucket: MinKey, _id: MinKey}, {bucket: 341, _id: MinKey}" in ranges[0]
        assert "{bucket: 682, _id: MinKey}, {bucket: MaxKey, _id: MinKey}" in ranges[2]
    assert lines[-1].startswith("// then deploy with ShardZones=3 (SHARD_ZONES=3)")  # the jobs' zones, said once
    assert [line for line in lines if "addShardToZone" in line] == [
        f'sh.addShardToZone("shard{number}", "buckets{number}")' for number in range(3)
    ]
