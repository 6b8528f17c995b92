"""`make shard-plan`: the shard keys as JSON on the first line, then the mongosh commands that shard
`wallets` and `ledger` by them, with SHARDS zones of whole bucket ranges (wallet_service.storage.routing.zones,
what the simulated router assumes), one per shard named shard0, shard1, ...

SHARDS (default 4) and MONGODB_DATABASE (default wallet, as the functions read it) choose the plan.
The keys are wallet_service.storage.routing.SHARD_KEYS, the only place they are written.
"""

from __future__ import annotations

import json
import os
import sys

from wallet_service.storage.routing import SHARD_KEYS, zones


def plan(shards: int, database: str) -> list[str]:
    lines = [json.dumps(SHARD_KEYS, separators=(",", ":"))]
    for number in range(shards):
        lines.append(f'sh.addShardToZone("shard{number}", "buckets{number}")')
    for collection, key in SHARD_KEYS.items():
        namespace = f"{database}.{collection}"
        for number, buckets in enumerate(zones(shards)):
            # The first zone starts at MinKey (documents without a bucket sort there), the last ends at MaxKey.
            low = "MinKey" if number == 0 else str(buckets.start)
            high = "MaxKey" if number == shards - 1 else str(buckets.stop)
            lines.append(
                f'sh.updateZoneKeyRange("{namespace}", {{bucket: {low}, _id: MinKey}}, '
                f'{{bucket: {high}, _id: MinKey}}, "buckets{number}")'
            )
        shell_key = json.dumps(key).replace(chr(34), "")
        # A collection with documents needs an index on the key before it is sharded.
        lines.append(f'db.getSiblingDB("{database}").{collection}.createIndex({shell_key})')
        lines.append(f'sh.shardCollection("{namespace}", {shell_key})')
    # The functions' jobs batch by the same zones: each expiry batch and publishing round on one shard.
    lines.append(f"// then deploy with ShardZones={shards} (SHARD_ZONES={shards}), so the jobs batch by these zones")
    return lines


def main() -> int:
    shards = int(os.environ.get("SHARDS", "4"))
    print("\n".join(plan(shards, os.environ.get("MONGODB_DATABASE", "wallet"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
